"""Boundary values and time derivatives of every interpolant family."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st_

from sitransport.interpolants import Custom, Fourier, Trig, get_interpolant, interpolant_names
from tests.strategies import INTERPOLANTS, batches
from tests.strategies import interpolant_names as names


@given(names, batches())
def test_boundary_values(name, batch):
    x0, x1, _ = batch
    interp = INTERPOLANTS[name]()
    torch.testing.assert_close(interp.interpolate(x0, x1, 0.0), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(interp.interpolate(x0, x1, 1.0), x1, rtol=0, atol=1e-12)


@given(names, batches())
def test_velocity_target_is_time_derivative(name, batch):
    """velocity_target equals the forward-mode derivative of interpolate in t."""
    x0, x1, t = batch
    interp = INTERPOLANTS[name]()
    _, jvp = torch.func.jvp(lambda s: interp.interpolate(x0, x1, s), (t,), (torch.ones_like(t),))
    torch.testing.assert_close(interp.velocity_target(x0, x1, t), jvp, rtol=1e-10, atol=1e-10)


@given(batches())
def test_closed_form_matches_autodiff(batch):
    """Trig's closed-form derivatives equal those a Custom with the same callables derives."""
    _, _, t = batch
    trig = Trig()
    auto = Custom(trig.alpha, trig.beta)
    torch.testing.assert_close(auto.dalpha(t), trig.dalpha(t), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(auto.dbeta(t), trig.dbeta(t), rtol=1e-12, atol=1e-12)


def test_trig_wronskian_is_constant():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    trig = Trig()
    w = trig.beta(t) * trig.dalpha(t) - trig.dbeta(t) * trig.alpha(t)
    torch.testing.assert_close(w, torch.full_like(t, -math.pi / 2))


def test_registry_round_trip():
    for name in interpolant_names():
        interp = get_interpolant(name)
        assert get_interpolant(interp.spec()).spec() == interp.spec()


def test_unknown_name_lists_valid():
    with pytest.raises(
        ValueError,
        match="unknown interpolant 'trigg'; valid values are: fourier, linear, stochastic, trig",
    ):
        get_interpolant("trigg")
    with pytest.raises(TypeError, match="interpolant must be a name"):
        get_interpolant(3)


def test_custom_checks_boundaries_and_types():
    with pytest.raises(ValueError, match=r"alpha must satisfy alpha\(0\) = 1"):
        Custom(lambda t: 1 - t / 2, lambda t: t)
    with pytest.raises(ValueError, match=r"beta\(1\) = 1"):
        Custom(lambda t: 1 - t, lambda t: t / 2)
    with pytest.raises(TypeError, match="alpha must be callable"):
        Custom(1.0, lambda t: t)
    with pytest.raises(TypeError, match="elementwise"):
        Custom(lambda t: 1.0, lambda t: t)


def test_custom_cannot_be_saved_as_data():
    with pytest.raises(TypeError, match="cannot be described as plain data"):
        Custom(lambda t: 1 - t, lambda t: t).spec()


def test_noise_argument_rules():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="z must be None"):
        Trig().interpolate(x, x, 0.5, z=x)


@given(
    st_.integers(1, 4),
    st_.integers(1, 5),
    st_.sampled_from(["linear", "trig"]),
    st_.integers(0, 2**31),
)
def test_fourier_any_coefficients(K, d, base, seed):
    """Boundary values exact and dI/dt the t-derivative, for any per-dimension coefficients."""
    g = torch.Generator().manual_seed(seed)
    path = Fourier(base, K=K, dim=d)
    with torch.no_grad():
        path.a.copy_(torch.randn(K, d, generator=g, dtype=torch.float64))
        path.b.copy_(torch.randn(K, d, generator=g, dtype=torch.float64))
    x0 = torch.randn(7, d, generator=g, dtype=torch.float64)
    x1 = torch.randn(7, d, generator=g, dtype=torch.float64)
    t = torch.rand(7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(path.interpolate(x0, x1, 0.0), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(path.interpolate(x0, x1, 1.0), x1, rtol=0, atol=1e-12)
    _, jvp = torch.func.jvp(lambda s: path.interpolate(x0, x1, s), (t,), (torch.ones_like(t),))
    torch.testing.assert_close(path.velocity_target(x0, x1, t), jvp)
    # the velocity target is differentiable in the coefficients
    path.velocity_target(x0, x1, t).pow(2).sum().backward()
    assert path.a.grad is not None and float(path.a.grad.abs().sum()) > 0


def test_fourier_zero_coefficients_is_base_and_spec_round_trips():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    path = Fourier("trig", K=2)
    torch.testing.assert_close(path.alpha(t), Trig().alpha(t))
    with torch.no_grad():
        path.a.fill_(0.1)
    again = get_interpolant(path.spec())
    torch.testing.assert_close(again.alpha(t), path.alpha(t))
    with pytest.raises(ValueError, match="unknown base 'cos'"):
        Fourier("cos")
