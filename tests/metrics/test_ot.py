"""Optimal-transport diagnostics against closed forms: Gaussian displacement interpolation,
the W2 bound, and flows trained with exact minibatch OT or max-min path optimisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sitransport as st_
from sitransport import ODEOptions
from sitransport.config import FitConfig
from sitransport.flow import TransportFlow
from sitransport.metrics import gaussian_ot_map, gaussian_w2, transport_report
from sitransport.train import TrainSettings
from tests.helpers import displacement_velocity
from tests.strategies import spd_matrices


def gaussian_pair(d, S0, S1, seed):
    rng = np.random.default_rng(seed)
    m0, m1 = rng.normal(size=d), rng.normal(size=d) + 1.0
    return m0, S0, m1, S1


@settings(max_examples=5)
@given(
    st.sampled_from([2, 4, 8, 16]).flatmap(
        lambda d: st.tuples(st.just(d), spd_matrices(d), spd_matrices(d))
    ),
    st.integers(0, 1000),
)
def test_displacement_flow_is_optimal(problem, seed):
    """The closed-form OT flow: map = A x + b, straight paths, KE = Bures W2^2."""
    d, S0, S1 = problem
    m0, S0, m1, S1 = gaussian_pair(d, S0, S1, seed)
    A, b = gaussian_ot_map(m0, S0, m1, S1)
    flow = TransportFlow(
        displacement_velocity(A, b), "linear", shape=(d,), ode=ODEOptions(atol=1e-7, rtol=1e-7)
    )
    rng = np.random.default_rng(seed)
    x0 = rng.multivariate_normal(m0, S0, size=2000)
    x1 = rng.multivariate_normal(m1, S1, size=2000)
    np.testing.assert_allclose(flow.push_forward(x0[:20]), x0[:20] @ A.T + b, atol=1e-4)
    rep = transport_report(flow, x0, x1)
    exact = gaussian_w2(m0, S0, m1, S1) ** 2
    assert rep.straightness == pytest.approx(0.0, abs=1e-4 * (1 + exact))
    # KE is a Monte Carlo mean over x0: within 5 standard errors of the Bures value
    assert abs(rep.kinetic_energy - exact) <= 5 * rep.kinetic_energy_stderr + 1e-6
    # the samples' exact W2^2 is within sampling noise of the population value (mean
    # fluctuations dominate from below: |dm|^2 terms shift by ~2 |m1 - m0| sqrt(tr(S) / n))
    noise = 2 * np.sqrt(exact * np.trace(S0 + S1) / 2000) + np.trace(S0 + S1) / 2000
    assert rep.w2_squared >= exact - 5 * noise


def test_w2_bound_holds_for_a_perturbed_gaussian_flow():
    """v_hat = v* + eps B x for the displacement flow N(0, I) -> N(m, S): the pushed law is
    Gaussian, its exact W2 to the target is below the reported bound."""
    d = 2
    m0, S0 = np.zeros(d), np.eye(d)
    m1, S1 = np.array([2.0, -1.0]), np.array([[1.5, 0.4], [0.4, 0.6]])
    A, b = gaussian_ot_map(m0, S0, m1, S1)
    exact_v = displacement_velocity(A, b)
    B = torch.tensor([[0.0, 0.3], [-0.2, 0.1]], dtype=torch.float64)
    flow = TransportFlow(
        lambda y, t: exact_v(y, t) + y @ B.T,
        "linear",
        base="gaussian",
        shape=(d,),
        config=FitConfig(training=TrainSettings(batch_size=500)),
    )
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((4000, d))
    x1 = x0 @ A.T + b  # pairs along the OT map: the report's H uses the flow's own coupling
    pushed = flow.push_forward(x0)
    achieved = gaussian_w2(pushed.mean(0), np.cov(pushed.T), m1, S1)
    rep = transport_report(flow, x0, x1)
    assert achieved > 0.05  # the perturbation is visible
    assert achieved <= rep.w2_bound
    assert rep.lipschitz > 0 and rep.h_upper > 0


@pytest.fixture(scope="module")
def gaussian_problem():
    m0, S0 = np.zeros(2), np.eye(2)
    m1, S1 = np.array([3.0, 1.0]), np.array([[2.0, 0.8], [0.8, 0.7]])
    rng = np.random.default_rng(0)
    x0 = rng.multivariate_normal(m0, S0, size=6000)
    x1 = rng.multivariate_normal(m1, S1, size=6000)
    return m0, S0, m1, S1, x0, x1


def test_exact_ot_coupling_learns_the_ot_map(gaussian_problem):
    m0, S0, m1, S1, x0, x1 = gaussian_problem
    kw = dict(
        interpolant="linear",
        steps=1500,
        network=st_.MLPSpec(width=64, depth=3),
        batch_size=256,
        lr=5e-3,
        progress=False,
    )
    flow = st_.fit(x0, x1, coupling="exact_ot", **kw)
    indep = st_.fit(x0, x1, **kw)
    A, b = gaussian_ot_map(m0, S0, m1, S1)
    x = np.random.default_rng(1).multivariate_normal(m0, S0, size=2000)
    target_var = np.trace(S1)
    uvp = 100 * np.mean(np.sum((flow.push_forward(x) - (x @ A.T + b)) ** 2, 1)) / target_var
    uvp_indep = 100 * np.mean(np.sum((indep.push_forward(x) - (x @ A.T + b)) ** 2, 1)) / target_var
    assert uvp < 5.0, uvp  # L2-UVP in percent (Korotin et al. 2021)
    assert uvp < uvp_indep
    exact = gaussian_w2(m0, S0, m1, S1) ** 2
    rep = st_.metrics.transport_report(flow, x, x1[:2000])
    rep_indep = st_.metrics.transport_report(indep, x, x1[:2000])
    assert rep.kinetic_energy >= exact - 5 * rep.kinetic_energy_stderr  # Benamou-Brenier
    assert rep.npe < 0.05 < rep_indep.npe


@pytest.mark.parametrize("mode", ["alternating", "simultaneous"])
def test_max_min_does_not_raise_kinetic_energy(gaussian_problem, mode):
    _, _, _, _, x0, x1 = gaussian_problem
    kw = dict(
        steps=1500, network=st_.MLPSpec(width=64, depth=3), batch_size=256, lr=5e-3, progress=False
    )
    fixed = st_.fit("gaussian", x1, interpolant="trig", **kw)
    maxmin = st_.fit(
        "gaussian",
        x1,
        interpolant="fourier",
        optimize_path=st_.PathSettings(start=300, mode=mode, stop=750),  # frozen after half
        **kw,
    )
    x = np.random.default_rng(2).standard_normal((2000, 2))
    ke_fixed = st_.metrics.transport_report(fixed, x, x1[:2000])
    ke_maxmin = st_.metrics.transport_report(maxmin, x, x1[:2000])
    noise = 5 * np.hypot(ke_fixed.kinetic_energy_stderr, ke_maxmin.kinetic_energy_stderr)
    assert ke_maxmin.kinetic_energy <= ke_fixed.kinetic_energy + noise
    coefs = maxmin.history["path_a"].values
    assert coefs.shape[1] == 4 and np.abs(coefs[-1]).max() > 0  # the path moved
