"""Divergence estimators: exact trace vs closed form, Hutchinson unbiased within its error."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from sitransport.ode import ODEOptions, divergence_exact, divergence_hutchinson, integrate_logdet


def _field(d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)

    def v(x, t):  # nonlinear field with known divergence: tr(A) (1 + t) - 2 * sum(x)
        return (1 + t) * x @ A.T + b - x.pow(2)

    def div(x, t):
        return torch.trace(A) * (1 + t) - 2 * x.sum(1)

    return v, div


@given(st.integers(1, 6), st.integers(0, 10_000))
def test_exact_divergence_matches_closed_form(d, seed):
    v, div = _field(d, seed)
    x = torch.randn(32, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    t = torch.tensor(0.3, dtype=torch.float64)
    vel, got = divergence_exact(v, x, t)
    torch.testing.assert_close(got, div(x, t))
    torch.testing.assert_close(vel, v(x, t))


@given(st.integers(2, 6), st.integers(0, 10_000))
def test_hutchinson_is_unbiased(d, seed):
    v, div = _field(d, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, d, dtype=torch.float64, generator=g)
    t = torch.tensor(0.7, dtype=torch.float64)
    k = 2000
    probes = torch.randint(0, 2, (k, 8, d), generator=g).to(x) * 2 - 1
    _, est = divergence_hutchinson(v, x, t, probes)
    mean, se = est.mean(1), est.std(1) / k**0.5
    assert bool(((mean - div(x, t)).abs() <= 5 * se + 1e-12).all())


def test_logdet_hutchinson_agrees_with_exact_within_error():
    """The integrated divergence along the ODE: Hutchinson mean within 5 SE of the exact one."""
    v, _ = _field(4, 3)
    x = torch.randn(16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    opts = ODEOptions(method="rk4", steps=20)
    exact = integrate_logdet(v, x, 0.0, 0.5, opts)
    hutch = integrate_logdet(
        v,
        x,
        0.0,
        0.5,
        opts,
        divergence="hutchinson",
        probes=64,
        generator=torch.Generator().manual_seed(1),
    )
    torch.testing.assert_close(hutch.x, exact.x)
    assert bool(((hutch.delta_logp - exact.delta_logp).abs() <= 5 * hutch.stderr).all())
    assert float(hutch.stderr.max()) > 0 and float(exact.stderr.abs().max()) == 0


def test_linear_field_logdet_closed_form():
    """For v = A x the log-determinant over [0, T] is T tr(A), exactly."""
    A = torch.tensor([[0.3, 1.0], [-0.5, -0.1]], dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = integrate_logdet(lambda y, t: y @ A.T, x, 0.0, 1.0, ODEOptions(atol=1e-10, rtol=1e-10))
    torch.testing.assert_close(res.delta_logp, torch.full((5,), 0.2, dtype=torch.float64))
    expected = x @ torch.linalg.matrix_exp(A).T
    torch.testing.assert_close(res.x, expected, rtol=1e-8, atol=1e-8)
    back = integrate_logdet(
        lambda y, t: y @ A.T, res.x, 1.0, 0.0, ODEOptions(atol=1e-10, rtol=1e-10)
    )
    torch.testing.assert_close(back.delta_logp, torch.full((5,), -0.2, dtype=torch.float64))
    torch.testing.assert_close(back.x, x, rtol=1e-8, atol=1e-8)


def test_constant_field_has_zero_divergence():
    """A velocity that ignores x (no autograd graph) has divergence 0, not an error."""
    x = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor(0.5, dtype=torch.float64)
    _, div = divergence_exact(lambda y, s: torch.ones_like(y), x, t)
    torch.testing.assert_close(div, torch.zeros(4, dtype=torch.float64))
    _, est = divergence_hutchinson(lambda y, s: torch.ones_like(y), x, t, torch.ones(2, 4, 3).to(x))
    torch.testing.assert_close(est, torch.zeros(4, 2, dtype=torch.float64))
