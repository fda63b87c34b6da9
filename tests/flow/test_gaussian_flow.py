"""Known answers: the exact Gaussian -> Gaussian interpolant velocity plugged into
TransportFlow transports N(m0, S0) to N(m1, S1), with exact log-densities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sitransport.exact import GaussianMixtureInterpolation
from sitransport.flow import TransportFlow
from tests.helpers import TIGHT, gaussian_flow
from tests.strategies import spd_matrices


def gaussian_problem(d, S0, S1, seed, interpolant):
    rng = np.random.default_rng(seed)
    m0, m1 = rng.normal(size=d), 2.0 * rng.normal(size=d)
    return gaussian_flow(m0, S0, m1, S1, interpolant), (m0, S0, m1, S1)


@settings(max_examples=6)
@given(
    st.integers(1, 4).flatmap(lambda d: st.tuples(st.just(d), spd_matrices(d), spd_matrices(d))),
    st.integers(0, 1000),
    st.sampled_from(["linear", "trig"]),
)
def test_exact_velocity_transports_gaussians(problem, seed, interpolant):
    d, S0, S1 = problem
    flow, (m0, S0, m1, S1) = gaussian_problem(d, S0, S1, seed, interpolant)
    n = 2000
    y = flow.sample(n, seed=seed)
    # mean and covariance of the pushed samples: within 5 standard errors
    se_mean = np.sqrt(np.diag(S1) / n)
    assert np.all(np.abs(y.mean(0) - m1) <= 5 * se_mean)
    se_cov = np.sqrt((np.outer(np.diag(S1), np.diag(S1)) + S1**2) / n)
    assert np.all(np.abs(np.cov(y.T).reshape(d, d) - S1) <= 5 * se_cov)
    # log_prob of the flow equals the exact density of N(m1, S1) up to the ODE tolerance
    lp = flow.log_prob(y[:20])
    exact = stats.multivariate_normal(m1, S1).logpdf(y[:20]).reshape(-1)
    np.testing.assert_allclose(lp, exact, atol=1e-4)
    # round trip
    np.testing.assert_allclose(flow.push_forward(flow.pull_back(y[:20])), y[:20], atol=1e-4)


@pytest.mark.parametrize("interpolant", ["linear", "trig"])
def test_hutchinson_log_prob_matches_exact_density(interpolant):
    d = 6
    S0 = np.eye(d)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
    S1 = (q * np.linspace(0.3, 2.0, d)) @ q.T  # not diagonal: Rademacher probes have variance
    flow, (_, _, m1, S1) = gaussian_problem(d, S0, S1, 0, interpolant)
    y = np.random.default_rng(1).multivariate_normal(m1, S1, size=20)
    est = flow.log_prob_estimate(y, method="hutchinson", probes=64, seed=0)
    exact = stats.multivariate_normal(m1, S1).logpdf(y)
    assert np.all(est.stderr > 0)
    z = (est.log_prob - exact) / est.stderr
    assert np.all(np.abs(z) < 5), z


def test_gaussian_mixture_target_density():
    """A 2-component mixture target from N(0, I): the flow's log_prob is the mixture's."""
    gmi = GaussianMixtureInterpolation(
        [1.0],
        [[0.0, 0.0]],
        [np.eye(2)],
        [0.3, 0.7],
        [[-2.0, 0.0], [2.0, 1.0]],
        [0.5 * np.eye(2), np.diag([0.2, 0.8])],
        interpolant="trig",
    )
    flow = TransportFlow(gmi, "trig", base="gaussian", shape=(2,), ode=TIGHT)
    y = np.random.default_rng(0).normal(size=(30, 2)) * 2
    exact = gmi.log_prob(torch.from_numpy(y), 1.0).numpy()
    np.testing.assert_allclose(flow.log_prob(y), exact, atol=1e-5)
