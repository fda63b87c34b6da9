"""The contract every registered interpolant family keeps: boundary values, shapes, the
velocity target as the time derivative of the path, spec round trips (``get_interpolant``,
``read_interpolant``, ``check_spec``) and a saved flow that loads with the same path.

Parametrised over :func:`~sitransport.interpolants.interpolant_names`: a family registered
without an entry in :data:`ARGUMENTS` fails every test of the suite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.interpolants import (
    Interpolant,
    get_interpolant,
    interpolant_names,
    read_interpolant,
)
from sitransport.nn import MLPVelocity
from tests.conftest import TOLERANCES

#: Sample dimension of every test.
D = 3

#: Constructor arguments of each registered family, one or more variants per name.
ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "fourier": [{"base": "trig", "K": 2}, {"base": "linear", "K": 2, "dim": D}],
    "linear": [{}],
    "neural": [{"dim": D, "K": 2, "width": 4}],
    "stochastic": [
        {"base": "linear", "gamma": "sin2", "a": 0.5},
        {"base": "trig", "gamma": "sqrt", "a": 1.5},
    ],
    "trig": [{}],
}

CASES = [
    pytest.param(name, kwargs, id=f"{name}-{i}")
    for name in interpolant_names()
    for i, kwargs in enumerate(ARGUMENTS.get(name, [None]))
]


def build(name: str, kwargs: dict[str, Any] | None) -> Interpolant:
    """The interpolant of ``name``, its learnable parameters (if any) moved off their zero
    start so the path differs from its base path."""
    if kwargs is None:
        pytest.fail(f"interpolant family {name!r} has no entry in ARGUMENTS of this suite")
    path = get_interpolant({"name": name, **kwargs})
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in path.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return path


def samples(path: Interpolant, dtype: torch.dtype, n: int = 5) -> tuple:
    """``(x0, x1, z)`` of shape ``(n, D)``; ``z`` is ``None`` for a deterministic path."""
    g = torch.Generator().manual_seed(0)
    x0, x1, z = (torch.randn(n, D, generator=g, dtype=dtype) for _ in range(3))
    return x0, x1, (z if path.stochastic else None)


def same_spec(a: Any, b: Any) -> bool:
    """Specs equal as plain data, tensors (a neural path's weights) compared by value."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_spec(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    return a == b


def assert_same_path(p: Interpolant, q: Interpolant, dtype: torch.dtype) -> None:
    """Same coefficients, same samples of the path and same velocity targets."""
    tol = TOLERANCES[torch.float64]
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    for coefficient in ("alpha", "beta", "gamma"):
        torch.testing.assert_close(
            getattr(q, coefficient)(t).detach(), getattr(p, coefficient)(t).detach(), **tol
        )
    x0, x1, z = samples(p, dtype)
    s = torch.linspace(0.1, 0.9, x0.shape[0], dtype=dtype)
    for method in ("interpolate", "velocity_target"):
        torch.testing.assert_close(
            getattr(q, method)(x0, x1, s, z).detach(),
            getattr(p, method)(x0, x1, s, z).detach(),
            **TOLERANCES[dtype],
        )


def test_every_registered_family_has_arguments():
    assert sorted(ARGUMENTS) == interpolant_names()


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_boundary_values(name, kwargs, dtype):
    path = build(name, kwargs)
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    exact = {"alpha": [1.0, 0.0], "beta": [0.0, 1.0], "gamma": [0.0, 0.0]}
    for coefficient, want in exact.items():
        got = getattr(path, coefficient)(ends).detach()  # (2,), or (2, D) per dimension
        want = torch.tensor(want).to(got).reshape(2, *[1] * (got.ndim - 1)).expand_as(got)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    x0, x1, z = samples(path, dtype)
    atol = TOLERANCES[dtype]["atol"]
    torch.testing.assert_close(path.interpolate(x0, x1, 0.0, z).detach(), x0, atol=atol, rtol=0)
    torch.testing.assert_close(path.interpolate(x0, x1, 1.0, z).detach(), x1, atol=atol, rtol=0)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_shapes_and_dtype(name, kwargs, dtype):
    path = build(name, kwargs)
    x0, x1, z = samples(path, dtype)
    for t in (0.3, torch.tensor(0.3, dtype=dtype), torch.rand(5, dtype=dtype)):
        for method in (path.interpolate, path.velocity_target):
            out = method(x0, x1, t, z)
            assert out.shape == x0.shape
            assert out.dtype == dtype


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_velocity_target_is_time_derivative(name, kwargs, dtype):
    path = build(name, kwargs)
    x0, x1, z = samples(path, dtype)
    t = torch.tensor([0.05, 0.3, 0.5, 0.71, 0.95], dtype=dtype)  # sqrt gamma: no end points
    _, dxt = torch.func.jvp(lambda s: path.interpolate(x0, x1, s, z), (t,), (torch.ones_like(t),))
    target = path.velocity_target(x0, x1, t, z)
    torch.testing.assert_close(target.detach(), dxt.detach(), **TOLERANCES[dtype])


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_spec_round_trip(name, kwargs, dtype):
    path = build(name, kwargs)
    again = get_interpolant(path.spec())
    assert type(again) is type(path)
    assert same_spec(again.spec(), path.spec())
    assert_same_path(path, again, dtype)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_read_interpolant_round_trip(name, kwargs, dtype):
    path = build(name, kwargs)
    spec = path.spec()
    assert type(path).check_spec(spec, (D,)) is None
    again = read_interpolant(spec, (D,))
    assert type(again) is type(path)
    assert same_spec(again.spec(), spec)
    assert_same_path(path, again, dtype)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_flow_save_load_round_trip(name, kwargs, tmp_path):
    path = build(name, kwargs)
    torch.manual_seed(0)
    ode = st.ODEOptions(method="rk4", steps=4)
    flow = st.TransportFlow(MLPVelocity(D, width=8, depth=1), path, base="gaussian", ode=ode)
    flow.save(tmp_path / "f.sit")
    again = st.load(tmp_path / "f.sit")
    assert type(again.interpolant) is type(path)
    assert same_spec(again.interpolant.spec(), path.spec())
    x = np.random.default_rng(0).normal(size=(4, D))
    np.testing.assert_allclose(again.push_forward(x), flow.push_forward(x), rtol=1e-9, atol=1e-10)
