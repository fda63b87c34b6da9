"""Latent (PCA) flows: encoder isometry, ambient densities via the unit Jacobian, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import sitransport as st
from sitransport.latent import LatentFlow, PCAEncoder
from tests.helpers import TINY_MLP, gaussian_flow, tiny_mlp


def subspace_data(n=2000, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (rng.normal(size=(n, k)) * [3.0, 2.0, 1.0][:k]) @ q[:, :k].T + rng.normal(size=d)


def test_encoder_is_an_isometry_onto_the_data_subspace():
    x = torch.from_numpy(subspace_data())
    enc = PCAEncoder.fit(x)
    assert enc.latent_dim == 3 and enc.dim == 6
    torch.testing.assert_close(enc.components.T @ enc.components, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(enc.decode(enc.encode(x)), x)
    assert float(enc.explained.sum()) == pytest.approx(1.0)
    assert PCAEncoder.fit(x, k=2).latent_dim == 2
    with pytest.raises(ValueError, match="latent must be at most the dimension 6"):
        PCAEncoder.fit(x, k=7)


def test_full_rank_latent_flow_density_is_exact():
    """k = d: rotating by W has unit Jacobian; the ambient law N(mu + W m, W S W^T) is exact."""
    d = 3
    rng = np.random.default_rng(1)
    W, _ = np.linalg.qr(rng.normal(size=(d, d)))
    mu = rng.normal(size=d)
    m, S = rng.normal(size=d), np.diag([0.5, 1.0, 2.0])
    ode = st.ODEOptions(atol=1e-8, rtol=1e-8)
    inner = gaussian_flow(np.zeros(d), np.eye(d), m, S, "trig", base="gaussian", ode=ode)
    enc = PCAEncoder(torch.from_numpy(mu), torch.from_numpy(W), torch.ones(d) / d)
    flow = LatentFlow(inner, enc, source_is_latent=True)
    y = rng.multivariate_normal(mu + W @ m, W @ S @ W.T, size=20)
    exact = stats.multivariate_normal(mu + W @ m, W @ S @ W.T).logpdf(y)
    np.testing.assert_allclose(flow.log_prob(y), exact, atol=1e-5)
    np.testing.assert_allclose(flow.push_forward(flow.pull_back(y)), y, atol=1e-5)


def test_low_rank_latent_fit(tmp_path):
    x = subspace_data()
    flow = st.fit("gaussian", x, latent="pca", steps=50, network=tiny_mlp(width=16), progress=False)
    assert isinstance(flow, LatentFlow) and flow.encoder.latent_dim == 3
    y = flow.sample(200, seed=0)
    assert y.shape == (200, 6) and np.linalg.matrix_rank(np.cov(y.T), tol=1e-8) == 3
    assert flow.pull_back(x[:4]).shape == (4, 3)
    assert flow.latent_log_prob(x[:4]).shape == (4,)
    with pytest.raises(ValueError, match="no density on R\\^6.*3-dimensional"):
        flow.log_prob(x[:4])
    flow.save(tmp_path / "l.sit")
    np.testing.assert_array_equal(
        st.load(tmp_path / "l.sit").sample(5, seed=1), flow.sample(5, seed=1)
    )
    # samples at both ends: ambient in, ambient out
    both = st.fit(x, subspace_data(seed=2), latent=3, steps=20, network=TINY_MLP, progress=False)
    assert both.push_forward(x[:5]).shape == (5, 6) and both.pull_back(x[:5]).shape == (5, 6)


@pytest.mark.parametrize(
    ("latent", "exc", "match"),
    [
        ("pcb", ValueError, "unknown latent 'pcb'"),
        (0, ValueError, "latent must be an integer >= 1"),
        (2.5, TypeError, "latent must be an integer"),
    ],
)
def test_latent_errors(latent, exc, match):
    with pytest.raises(exc, match=match):
        st.fit("gaussian", subspace_data(), latent=latent, steps=5, progress=False)
