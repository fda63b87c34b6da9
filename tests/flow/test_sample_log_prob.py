"""Samples with their log-densities from one augmented ODE solve: closed forms, agreement with
``log_prob`` of the same samples, the default return unchanged, and the refused combinations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import sitransport as st
from sitransport.flow import TransportFlow, integration
from sitransport.latent import LatentFlow, PCAEncoder
from tests.flow.test_likelihood import gaussian_log_prob, scaling_flow, twisted_flow
from tests.helpers import gaussian_flow


def test_gaussian_samples_carry_their_closed_form_density():
    flow = scaling_flow(1.7, 3)
    y, lp = flow.sample(300, seed=0, return_log_prob=True)
    assert isinstance(y, np.ndarray) and y.shape == (300, 3) and y.dtype == np.float64
    assert isinstance(lp, np.ndarray) and lp.shape == (300,) and lp.dtype == np.float64
    np.testing.assert_allclose(lp, gaussian_log_prob(y, 1.7), atol=1e-6)
    # the samples are those of sample() from the same base draws (to the solver's tolerance)
    np.testing.assert_allclose(y, flow.sample(300, seed=0), atol=1e-6)


def test_log_prob_of_the_samples_agrees_within_the_solver_tolerance():
    """A nonlinear field: the forward solve (sample) and the backward one (log_prob) agree."""
    flow = twisted_flow(4)  # d = 4: auto is the exact divergence, as in log_prob
    y, lp = flow.sample(200, seed=1, return_log_prob=True)
    # two solves at rtol = atol = 1e-5 (dopri5): global errors of a few 1e-5 relative
    np.testing.assert_allclose(lp, flow.log_prob(y, progress=False), rtol=1e-4, atol=1e-4)
    # a test that could fail: the density differs from that of the base at the same points
    assert np.abs(lp - gaussian_log_prob(y, 1.0)).max() > 0.1
    ode = st.ODEOptions(rtol=1e-9, atol=1e-9)
    y, lp = flow.sample(50, seed=1, return_log_prob=True, ode=ode)
    np.testing.assert_allclose(lp, flow.log_prob(y, ode=ode, progress=False), atol=1e-6)


def test_hutchinson_is_exact_for_a_multiple_of_the_identity():
    flow = scaling_flow(0.6, 5)
    y, lp = flow.sample(100, seed=2, return_log_prob=True, divergence="hutchinson", probes=1)
    np.testing.assert_allclose(lp, gaussian_log_prob(y, 0.6), atol=1e-6)


def test_hutchinson_log_prob_is_unbiased_and_seeded():
    d, n = 6, 400
    flow = twisted_flow(d)
    y, lp = flow.sample(n, seed=3, return_log_prob=True, divergence="hutchinson", probes=4)
    exact = flow.log_prob(y, method="exact", progress=False)
    diff = lp - exact
    assert np.std(diff) > 1e-3  # a real sampling error to bound
    assert abs(diff.mean()) <= 4 * np.std(diff) / np.sqrt(n)  # unbiased
    # with 16 probes the spread shrinks by about 2 (sqrt(16 / 4))
    _, lp16 = flow.sample(n, seed=3, return_log_prob=True, divergence="hutchinson", probes=16)
    assert 1.5 <= np.std(diff) / np.std(lp16 - exact) <= 2.7
    y2, lp2 = flow.sample(n, seed=3, return_log_prob=True, divergence="hutchinson", probes=4)
    np.testing.assert_array_equal(y2, y)  # the seed fixes the base draws and the probes
    np.testing.assert_array_equal(lp2, lp)


def test_default_return_is_unchanged():
    flow = twisted_flow(3)
    gen = torch.Generator().manual_seed(4)
    x0 = flow.base.sample(50, gen).numpy()
    before = integration.solve(flow, x0, "x", 0.0, 1.0, None, None, "sample").x
    np.testing.assert_array_equal(flow.sample(50, seed=4), before)
    np.testing.assert_array_equal(flow.sample(50, seed=4, return_log_prob=False), before)


def test_fixed_step_budget_and_batches():
    flow = scaling_flow(2.0, 2)
    y, lp = flow.sample(30, seed=5, return_log_prob=True, nfe=40)
    np.testing.assert_allclose(lp, gaussian_log_prob(y, 2.0), atol=1e-4)
    ode = st.ODEOptions(atol=1e-8, rtol=1e-8, batch_size=7)
    y, lp = flow.sample(30, seed=5, return_log_prob=True, ode=ode)
    np.testing.assert_allclose(lp, gaussian_log_prob(y, 2.0), atol=1e-6)


def test_float32_network():
    net = torch.nn.Linear(2, 2).float()
    with torch.no_grad():
        net.weight.copy_(torch.eye(2))
        net.bias.zero_()

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, z, t):
            return self.net(z)  # v = z: rho1 = N(0, e^2 I)

    flow = TransportFlow(Field(), "linear", base="gaussian", shape=(2,))
    y, lp = flow.sample(20, seed=6, return_log_prob=True)
    assert y.dtype == np.float64 and lp.dtype == np.float64
    np.testing.assert_allclose(lp, gaussian_log_prob(y, np.e), atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"return_log_prob": "yes"}, TypeError, "return_log_prob must be True or False"),
        ({"return_log_prob": 1}, TypeError, "return_log_prob must be True or False"),
        (
            {"return_log_prob": True, "method": "sde"},
            ValueError,
            "return_log_prob=True needs method='ode'.*no log-density",
        ),
        ({"divergence": "exact"}, ValueError, "divergence='exact' only applies with"),
        ({"probes": 4}, ValueError, "probes=4 only applies with"),
        (
            {"return_log_prob": True, "divergence": "trace"},
            ValueError,
            "valid values are: auto, exact, hutchinson",
        ),
        (
            {"return_log_prob": True, "divergence": "hutchinson", "probes": 0},
            ValueError,
            "probes must be an integer >= 1",
        ),
    ],
)
def test_bad_combinations_are_refused(kwargs, err, match):
    flow = scaling_flow(2.0, 2)
    with pytest.raises(err, match=match):
        flow.sample(3, seed=0, **kwargs)


def test_a_base_without_density_is_refused():
    flow = TransportFlow(
        lambda z, t: z, "linear", base=np.random.default_rng(0).normal(size=(10, 2)), shape=(2,)
    )
    flow.sample(3, seed=0)  # sampling alone is fine
    with pytest.raises(ValueError, match="return_log_prob=True needs a density for rho0"):
        flow.sample(3, seed=0, return_log_prob=True)


def test_latent_flow_full_rank_returns_ambient_density():
    d = 3
    rng = np.random.default_rng(1)
    W, _ = np.linalg.qr(rng.normal(size=(d, d)))
    mu = rng.normal(size=d)
    m, S = rng.normal(size=d), np.diag([0.5, 1.0, 2.0])
    ode = st.ODEOptions(atol=1e-8, rtol=1e-8)
    inner = gaussian_flow(np.zeros(d), np.eye(d), m, S, "trig", base="gaussian", ode=ode)
    enc = PCAEncoder(torch.from_numpy(mu), torch.from_numpy(W), torch.ones(d) / d)
    flow = LatentFlow(inner, enc, source_is_latent=True)
    y, lp = flow.sample(40, seed=0, return_log_prob=True)
    assert y.shape == (40, d) and lp.shape == (40,)
    exact = stats.multivariate_normal(mu + W @ m, W @ S @ W.T).logpdf(y)
    np.testing.assert_allclose(lp, exact, atol=1e-5)
    np.testing.assert_array_equal(flow.sample(40, seed=0), flow.sample(40, seed=0))


def test_latent_flow_below_full_rank_is_refused():
    x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
    inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
    flow = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
    assert flow.sample(3, seed=0).shape == (3, 3)
    with pytest.raises(ValueError, match="return_log_prob.*no density on R\\^3.*1-dimensional"):
        flow.sample(3, seed=0, return_log_prob=True)
