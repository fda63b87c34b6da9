"""Boundary values and time derivatives of every interpolant family."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given

from sitransport.interpolants import Custom, Trig, get_interpolant, interpolant_names
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
        ValueError, match="unknown interpolant 'trigg'; valid values are: linear, trig"
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
