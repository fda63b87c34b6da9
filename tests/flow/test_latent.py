"""Latent (PCA) flows: encoder isometry, ambient densities via the unit Jacobian, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import sitransport as st
from sitransport.latent import LatentFlow, PCAEncoder
from tests.helpers import TINY, TINY_MLP, gaussian_flow, tiny_mlp


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


def labelled_subspace_data(n=600, seed=0):
    """Rank-3 data in R^6 whose mean moves with a label in {0, 1, 2} (within the subspace)."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, n)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    z = rng.normal(size=(n, 3)) * [1.0, 0.5, 0.3] + c[:, None] * [3.0, 0.0, 0.0]
    return z @ q[:, :3].T, c


def test_conditional_latent_fit_passes_the_condition_everywhere(tmp_path):
    """fit(condition=c, latent=) reaches the inner fit; every method of the LatentFlow takes
    condition= and hands it to the latent flow; the file keeps the conditions."""
    x, c = labelled_subspace_data()
    flow = st.fit("gaussian", x, condition=c, latent="pca", steps=30, network=TINY_MLP,
                  progress=False)  # fmt: skip
    assert isinstance(flow, LatentFlow) and flow.encoder.latent_dim == 3
    assert flow.condition is flow.flow.condition and flow.condition.labels == (0, 1, 2)
    assert flow.config.condition == "labels" and flow.config.latent is not None
    y0, y2 = flow.sample(50, seed=0, condition=0), flow.sample(50, seed=0, condition=2)
    assert y0.shape == (50, 6) and not np.allclose(y0, y2)
    # the latent flow's own map, decoded: same condition, same numbers
    z = np.random.default_rng(1).normal(size=(4, 3))
    inner = flow.encoder.decode(torch.from_numpy(flow.flow.push_forward(z, condition=c[:4])))
    np.testing.assert_allclose(flow.push_forward(z, condition=c[:4]), inner.numpy())
    back = flow.pull_back(x[:4], condition=c[:4])
    x4 = flow.encoder.decode(flow.encoder.encode(torch.from_numpy(x[:4]))).numpy()
    np.testing.assert_allclose(flow.push_forward(back, condition=c[:4]), x4, atol=1e-3)
    assert not np.allclose(flow.pull_back(x[:4], condition=2), back)
    lp = flow.latent_log_prob(x[:4], condition=c[:4])
    assert lp.shape == (4,) and not np.allclose(flow.latent_log_prob(x[:4], condition=2), lp)
    traj = flow.trajectory(z, np.linspace(0, 1, 3), condition=1)
    assert traj.dims == ("time", "sample", "dim") and traj.shape == (3, 4, 6)
    np.testing.assert_allclose(traj.values[-1], flow.push_forward(z, condition=1), atol=1e-4)
    for call in (lambda: flow.sample(3, seed=0), lambda: flow.push_forward(z)):
        with pytest.raises(ValueError, match="condition: this flow is conditional"):
            call()
    with pytest.raises(ValueError, match="never seen in training: \\[7\\]"):
        flow.sample(3, seed=0, condition=7)
    flow.save(tmp_path / "c.sit")
    again = st.load(tmp_path / "c.sit")
    assert again.condition == flow.condition
    np.testing.assert_array_equal(
        again.sample(5, seed=1, condition=1), flow.sample(5, seed=1, condition=1)
    )


def test_full_rank_conditional_latent_density_and_estimate():
    """k = d: log_prob and log_prob_estimate take condition= (the latent flow's density)."""
    rng = np.random.default_rng(3)
    x, c = rng.normal(size=(300, 2)), rng.integers(0, 2, 300)
    x = x + c[:, None]
    flow = st.fit("gaussian", x, condition=c, latent=2, steps=10, network=TINY_MLP,
                  progress=False)  # fmt: skip
    est = flow.log_prob_estimate(x[:5], condition=c[:5], method="exact")
    np.testing.assert_allclose(flow.log_prob(x[:5], condition=c[:5], method="exact"),
                               est.log_prob)  # fmt: skip
    assert est.stderr.shape == (5,)
    low = st.fit("gaussian", labelled_subspace_data()[0], latent=3, **dict(TINY, steps=2))
    with pytest.raises(ValueError, match="no density on R\\^6"):
        low.log_prob_estimate(np.zeros((2, 6)))
