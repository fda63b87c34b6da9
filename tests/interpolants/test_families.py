"""Boundary values and time derivatives of every interpolant family."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st_

from sitransport.interpolants import (
    Custom,
    Fourier,
    NeuralPath,
    Normalized,
    Stochastic,
    Trig,
    get_interpolant,
    interpolant_names,
)
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
    for name in set(interpolant_names()) - {"neural"}:  # neural: below (needs dim)
        interp = get_interpolant(name)
        assert get_interpolant(interp.spec()).spec() == interp.spec()


def test_unknown_name_lists_valid():
    with pytest.raises(
        ValueError,
        match="unknown interpolant 'trigg'; valid values are: fourier, linear, neural, "
        "stochastic, trig",
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


@given(
    st_.sampled_from(["linear", "trig", "custom", "fourier", "stochastic"]),
    batches(),
    st_.floats(-5.0, 5.0),
    st_.floats(0.1, 10.0),
)
def test_normalized_path_is_the_named_path_in_other_coordinates(name, batch, m, s):
    """u_t of Normalized(path, m, s) is (x_t - m) / s, and its velocity target the derivative
    of u_t: a network trained in u learns the caller's path, not another one."""
    x0, x1, t = batch
    path = Stochastic("trig", "sin2", 0.7) if name == "stochastic" else INTERPOLANTS[name]()
    shift = m + torch.arange(x0.shape[1], dtype=torch.float64)
    u_path = Normalized(path, shift, s)
    z = torch.randn(x0.shape, dtype=torch.float64) if path.stochastic else None
    u0, u1 = (x0 - shift) / s, (x1 - shift) / s
    expected = (path.interpolate(x0, x1, t, z) - shift) / s
    torch.testing.assert_close(u_path.interpolate(u0, u1, t, z), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        u_path.velocity_target(u0, u1, t, z),
        path.velocity_target(x0, x1, t, z) / s,
        rtol=1e-10,
        atol=1e-10,
    )
    if name != "custom":  # user callables have no spec
        assert u_path.spec() == path.spec()
    assert list(u_path.parameters()) == list(path.parameters())  # learnable paths share them


def test_normalized_checks_its_arguments():
    with pytest.raises(TypeError, match="path must be an Interpolant, got str"):
        Normalized("trig", torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="scale must be finite and > 0, got inf"):
        Normalized(Trig(), torch.zeros(2), math.inf)


def _random_neural_path(d: int, seed: int) -> NeuralPath:
    path = NeuralPath(d, base="trig", K=3, width=16)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in path.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return path


@given(batches(), st_.integers(0, 1000))
def test_neural_path_boundaries_and_derivative(batch, seed):
    x0, x1, t = batch
    path = _random_neural_path(x0.shape[1], seed)
    with torch.no_grad():
        torch.testing.assert_close(path.interpolate(x0, x1, 0.0), x0, rtol=0, atol=1e-12)
        torch.testing.assert_close(path.interpolate(x0, x1, 1.0), x1, rtol=0, atol=1e-12)
    _, jvp = torch.func.jvp(lambda s: path.interpolate(x0, x1, s), (t,), (torch.ones_like(t),))
    torch.testing.assert_close(path.velocity_target(x0, x1, t), jvp, rtol=1e-10, atol=1e-10)
    assert path.interpolate(x0, x1, 0.5).requires_grad  # the ascent reaches h


def test_neural_path_spec_round_trip_and_errors():
    path = _random_neural_path(3, 0)
    again = get_interpolant(path.spec())
    x0, x1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(again.interpolate(x0, x1, 0.3), path.interpolate(x0, x1, 0.3))
    with pytest.raises(ValueError, match=r"NeuralPath\(dim=3\) takes \(n, 3\), got"):
        path.interpolate(torch.zeros(4, 2), torch.zeros(4, 2), 0.5)
    with pytest.raises(ValueError, match="dim must be"):
        NeuralPath(0)
