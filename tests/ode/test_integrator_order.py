"""Solvers against closed forms: the convergence order of each fixed-step scheme, fitted by a
regression of log error on log step; the error of each adaptive solver, in proportion to its
tolerance; and exactness of few steps along straight paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sitransport import ODEOptions
from sitransport.flow import TransportFlow
from sitransport.metrics import gaussian_ot_map
from sitransport.ode import ORDERS, SOLVERS
from tests.helpers import J, displacement_velocity, rotation
from tests.strategies import spd_matrices

# (velocity, exact map x0 -> x1): a non-autonomous rotation by t + t^2 (speed 1 + 2t) and
# exponential growth x e^t. Both are generic for every scheme: no order is exceeded by
# symmetry, unlike the linear-interpolant Gaussian velocity, on which midpoint reaches ~3.
PROBLEMS = {
    "accelerating-rotation": (
        lambda x, t: (1 + 2 * t) * x @ J.T.to(x),
        lambda x: x @ rotation(2.0).T,
    ),
    "exponential": (lambda x, t: x, lambda x: np.e * x),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("method", sorted(ORDERS))
def test_fixed_step_convergence_order(method, problem):
    """log(error) against log(1 / steps) has the slope of the scheme's order (+-0.3).

    float64 throughout: rk4's error at 64 steps (~1e-8) is below float32 resolution.
    """
    velocity, exact = PROBLEMS[problem]
    flow = TransportFlow(velocity, "linear", shape=(2,))
    x = np.random.default_rng(0).standard_normal((10, 2))
    steps = np.array([4, 8, 16, 32, 64])
    errors = [
        np.abs(flow.push_forward(x, ode=ODEOptions(method=method, steps=int(k))) - exact(x)).max()
        for k in steps
    ]
    slope = np.polyfit(np.log(1.0 / steps), np.log(errors), 1)[0]
    assert slope == pytest.approx(ORDERS[method], abs=0.3)
    # and backward: pull_back of the exact image converges to x at the same order
    back = [
        np.abs(flow.pull_back(exact(x), ode=ODEOptions(method=method, steps=int(k))) - x).max()
        for k in steps
    ]
    assert np.polyfit(np.log(1.0 / steps), np.log(back), 1)[0] == pytest.approx(
        ORDERS[method], abs=0.3
    )


ADAPTIVE = sorted(m for m, kind in SOLVERS.items() if kind == "adaptive")


def test_every_solver_is_checked_for_convergence():
    """Each solver is checked above (fixed-step: its order) or below (adaptive: its error
    against the tolerance): a new solver must join one of the two."""
    assert set(SOLVERS) == set(ORDERS) | set(ADAPTIVE) and ADAPTIVE


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_error_scales_with_the_tolerance(method, problem):
    """With ``atol = rtol = tol`` the global error, forward and backward, is at most
    ``10 tol`` times the size of the solution, and shrinks in proportion to ``tol``: the
    slope of log(error) against log(tol), fitted over tol = 1e-5 .. 1e-10, is 1 (+-0.25)."""
    velocity, exact = PROBLEMS[problem]
    flow = TransportFlow(velocity, "linear", shape=(2,))
    x = np.random.default_rng(0).standard_normal((10, 2))
    y = exact(x)
    tols = 10.0 ** -np.arange(5, 11)
    for start, end in ((x, y), (y, x)):
        errors = []
        for tol in tols:
            ode = ODEOptions(method=method, atol=float(tol), rtol=float(tol))
            out = flow.push_forward(x, ode=ode) if start is x else flow.pull_back(y, ode=ode)
            errors.append(np.abs(out - end).max())
        size = 1 + np.abs(end).max()
        assert max(e / (t * size) for e, t in zip(errors, tols, strict=True)) < 10
        slope = np.polyfit(np.log(tols), np.log(errors), 1)[0]
        assert slope == pytest.approx(1.0, abs=0.25)


@pytest.mark.parametrize("nfe", [1, 2, 3, 4, 8])
def test_few_steps_are_exact_for_a_constant_velocity(nfe):
    c = torch.tensor([1.5, -0.5], dtype=torch.float64)
    flow = TransportFlow(lambda z, t: c.to(z).expand_as(z), "linear", shape=(2,))
    x = np.random.default_rng(0).standard_normal((5, 2))
    res = flow.transport(x, nfe=nfe)
    np.testing.assert_allclose(res.x, x + c.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(flow.pull_back(res.x, nfe=nfe), x, rtol=0, atol=1e-12)


@settings(max_examples=5)
@given(
    st.sampled_from([2, 5]).flatmap(lambda d: st.tuples(st.just(d), spd_matrices(d))),
    st.sampled_from([1, 2, 3, 4, 8]),
)
def test_few_steps_are_exact_on_the_gaussian_ot_path(problem, nfe):
    """Displacement interpolation N(0, I) -> N(m, S) moves each point at constant speed on a
    straight line, so every consistent Runge-Kutta stage lands on the path: one Euler step
    (and any budget) gives the OT map x -> A x + b forward and its inverse backward."""
    d, S = problem
    m = np.linspace(-1.0, 2.0, d)
    A, b = gaussian_ot_map(np.zeros(d), np.eye(d), m, S)
    flow = TransportFlow(displacement_velocity(A, b), "linear", shape=(d,))
    x = np.random.default_rng(d).standard_normal((20, d))
    res = flow.transport(x, nfe=nfe)
    assert res.nfe == ODEOptions.budget(nfe).nfe
    np.testing.assert_allclose(res.x, x @ A.T + b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(flow.pull_back(x @ A.T + b, nfe=nfe), x, rtol=0, atol=1e-9)
