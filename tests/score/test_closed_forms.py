"""Scores from velocities (Gaussian base) against closed forms; SDE sampling keeps marginals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sitransport as st_
from sitransport.exact import GaussianMixtureInterpolation
from sitransport.flow import Normalization, TransportFlow
from tests.strategies import spd_matrices


def exact_flow(w1, means1, covs1, interpolant, shift=None, scale=1.0):
    """The flow a perfect fit N(0, I) -> mixture would give when trained in coordinates
    u = (x - shift) / scale: the exact velocity of the named path, written in u."""
    d = means1.shape[1]
    m = np.zeros(d) if shift is None else np.asarray(shift)
    gmi = GaussianMixtureInterpolation(
        [1.0], [np.zeros(d)], [np.eye(d)], w1, means1, covs1, interpolant
    )

    def velocity(u, t):
        return gmi.velocity(u * scale + torch.from_numpy(m).to(u), t) / scale

    norm = Normalization(torch.from_numpy(m), scale)
    return TransportFlow(velocity, interpolant, base="gaussian", shape=(d,), normalization=norm)


@settings(max_examples=10)
@given(
    st.integers(1, 3).flatmap(lambda d: st.tuples(st.just(d), spd_matrices(d), spd_matrices(d))),
    st.integers(0, 1000),
    st.sampled_from(["linear", "trig"]),
    st.booleans(),
)
def test_score_from_exact_velocity_is_exact(problem, seed, interpolant, normalised):
    d, S1, S2 = problem
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(2, d)) * 2
    gmi = GaussianMixtureInterpolation(
        [1.0], [np.zeros(d)], [np.eye(d)], [0.4, 0.6], means, np.stack([S1, S2]), interpolant
    )
    shift = rng.normal(size=d) if normalised else np.zeros(d)
    scale = 1.7 if normalised else 1.0
    flow = exact_flow([0.4, 0.6], means, np.stack([S1, S2]), interpolant, shift, scale)
    x = rng.normal(size=(64, d)) * 2
    t = rng.uniform(0.0, 0.98, size=64)
    # whatever the normalisation, the score is that of the named path alpha x0 + beta x1
    np.testing.assert_allclose(flow.score(x, t), gmi.score(x, t), rtol=1e-7, atol=1e-8)


def test_score_is_refused_where_singular():
    flow = exact_flow([1.0], np.ones((1, 2)), np.eye(2)[None], "trig")
    x = np.zeros((3, 2))
    assert np.isfinite(flow.score(x, 0.999)).all()
    with pytest.raises(ValueError, match="at t=1; it is singular at t = 1"):
        flow.score(x, 1.0)
    with pytest.raises(ValueError, match="needs a standard Gaussian base"):
        TransportFlow(
            lambda z, t: z, "trig", base=np.random.default_rng(0).normal(size=(10, 2))
        ).score(x, 0.5)


@pytest.mark.parametrize("scheme", ["heun", "euler"])
def test_sde_and_ode_samples_have_the_same_law(scheme):
    m, S = np.array([2.0, -1.0]), np.array([[1.0, 0.5], [0.5, 0.8]])
    flow = exact_flow([1.0], m[None], S[None], "trig", np.array([0.5, 0.2]), 1.3)
    n = 3000
    ode = flow.sample(n, seed=0)
    sde = flow.sample(n, seed=1, method="sde", eps=1.0, steps=200, scheme=scheme)
    for y in (ode, sde):
        assert np.all(np.abs(y.mean(0) - m) <= 5 * np.sqrt(np.diag(S) / n))
        se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / n)
        assert np.all(np.abs(np.cov(y.T) - S) <= 5 * se_cov + (0.02 if scheme == "euler" else 0.0))
    ref = np.random.default_rng(2).multivariate_normal(m, S, size=2 * n)
    floor = st_.metrics.w2(ref[:n], ref[n:])
    assert st_.metrics.w2(sde, ode) < 1.5 * floor
    assert not np.allclose(sde, flow.sample(n, seed=1))  # the noise was used


def test_learned_score_matches_exact_on_a_gaussian_target():
    m, S = np.array([1.5, -0.5]), np.array([[0.8, 0.3], [0.3, 0.5]])
    x1 = np.random.default_rng(0).multivariate_normal(m, S, size=8000)
    flow = st_.fit(
        "gaussian",
        x1,
        steps=2000,
        network=st_.MLPSpec(width=64, depth=3),
        batch_size=256,
        lr=5e-3,
        progress=False,
    )
    gmi = GaussianMixtureInterpolation.from_gaussians(np.zeros(2), np.eye(2), m, S, "trig")
    for t in (0.05, 0.3, 0.6, 0.9):
        xt = gmi.sample(2000, t, generator=torch.Generator().manual_seed(int(t * 100))).numpy()
        exact = gmi.score(torch.from_numpy(xt), t).numpy()
        got = flow.score(xt, t)
        rel = np.mean(np.sum((got - exact) ** 2, 1)) / np.mean(np.sum(exact**2, 1))
        assert rel < 0.05, (t, rel)


def test_sde_argument_errors():
    flow = exact_flow([1.0], np.ones((1, 1)), np.eye(1)[None], "linear")
    with pytest.raises(ValueError, match="unknown method 'langevin'"):
        flow.sample(3, method="langevin")
    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        flow.sample(3, method="sde", eps=-1.0)
    with pytest.raises(ValueError, match="unknown scheme 'rk4'"):
        flow.sample(3, method="sde", scheme="rk4")
