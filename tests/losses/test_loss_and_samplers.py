"""The quadratic loss identity, its minimiser, and the time samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from scipy import stats

import sitransport as st
from sitransport.losses import (
    AtZeroTime,
    BetaTime,
    UniformTime,
    get_time_sampler,
    quadratic_loss,
)
from tests.strategies import INTERPOLANTS, batches, interpolant_names


@given(interpolant_names, batches())
def test_quadratic_equals_flow_matching_minus_constant(name, batch):
    """G(v) = E|v - dI|^2 - E|dI|^2 holds exactly on every batch, for any v."""
    x0, x1, t = batch
    interp = INTERPOLANTS[name]()
    A = torch.randn(
        x0.shape[1], x0.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )

    def v(x, s):
        return x @ A + s[:, None]

    out = quadratic_loss(v, interp, x0, x1, t)
    target = interp.velocity_target(x0, x1, t)
    const = target.pow(2).sum(1).mean()
    torch.testing.assert_close(out.quadratic, out.flow_matching - const, rtol=1e-10, atol=1e-10)


@given(interpolant_names, batches())
def test_target_velocity_minimises(name, batch):
    """For a batch, v = dI/dt attains G = -E|dI|^2, below any perturbation."""
    x0, x1, t = batch
    interp = INTERPOLANTS[name]()
    target = interp.velocity_target(x0, x1, t)

    def exact(x, s):
        return target

    best = quadratic_loss(exact, interp, x0, x1, t)
    torch.testing.assert_close(best.quadratic, -target.pow(2).sum(1).mean())
    torch.testing.assert_close(best.flow_matching, torch.zeros((), dtype=torch.float64))
    worse = quadratic_loss(lambda x, s: target + 0.1, interp, x0, x1, t)
    assert float(worse.quadratic.detach()) > float(best.quadratic.detach())


def test_uniform_sampler_moments_and_antithetic():
    g = torch.Generator().manual_seed(0)
    n = 20_000
    t = UniformTime().sample(n, generator=g, dtype=torch.float64)
    assert t.shape == (n,) and float(t.min()) >= 0 and float(t.max()) <= 1
    assert abs(float(t.mean()) - 0.5) < 4 * (1 / 12) ** 0.5 / n**0.5
    ta = UniformTime().sample(n, generator=g, antithetic=True, dtype=torch.float64)
    torch.testing.assert_close(ta[: n // 2] + ta[n // 2 :], torch.ones(n // 2, dtype=torch.float64))
    odd = UniformTime().sample(7, generator=g, antithetic=True)
    assert odd.shape == (7,)


@pytest.mark.parametrize("antithetic", [False, True])
def test_beta_sampler_has_beta_marginal(antithetic):
    g = torch.Generator().manual_seed(1)
    t = BetaTime(2.0, 5.0).sample(4000, generator=g, antithetic=antithetic, dtype=torch.float64)
    assert stats.kstest(t.numpy(), stats.beta(2.0, 5.0).cdf).pvalue > 1e-3


def test_sampler_registry():
    assert isinstance(get_time_sampler("uniform"), UniformTime)
    b = get_time_sampler({"name": "beta", "a": 2, "b": 3})
    assert (b.a, b.b) == (2.0, 3.0)
    assert get_time_sampler(b.spec()).spec() == b.spec()
    with pytest.raises(
        ValueError, match="unknown time_sampler 'gamma'; valid values are: at_zero, beta, uniform"
    ):
        get_time_sampler("gamma")
    with pytest.raises(ValueError, match="a must be finite and > 0"):
        BetaTime(0.0, 1.0)


@pytest.mark.parametrize("antithetic", [False, True])
def test_at_zero_sampler_is_a_point_mass_at_zero_plus_uniform(antithetic):
    """A fraction ``weight`` of the times is exactly 0, the others are uniform on [0, 1]."""
    g = torch.Generator().manual_seed(2)
    n, w = 8000, 0.3
    t = AtZeroTime(w).sample(n, generator=g, antithetic=antithetic, dtype=torch.float64)
    zero = (t == 0).double().mean().item()
    assert abs(zero - w) < 4 * (w * (1 - w) / n) ** 0.5
    rest = t[t > 0].numpy()
    assert rest.max() <= 1 and stats.kstest(rest, "uniform").pvalue > 1e-3
    assert get_time_sampler({"name": "at_zero", "weight": w}).spec() == AtZeroTime(w).spec()


@pytest.mark.parametrize(
    ("weight", "error"),
    [(1.0, ValueError), (-0.1, ValueError), ("half", TypeError), (True, TypeError)],
)
def test_at_zero_sampler_refuses_weights_outside_the_unit_interval(weight, error):
    with pytest.raises(error, match="time_sampler weight must be"):
        AtZeroTime(weight)


def test_sampler_dtype_device():
    t = UniformTime().sample(5, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    assert t.dtype == torch.float32
    np.testing.assert_array_less(-1e-9, t.numpy())


@pytest.mark.parametrize(("a", "b"), [(1e-300, 1e-300), (1e-4, 1.0), (1.0, 2e3), (1e300, 1.0)])
def test_beta_parameters_that_make_the_times_degenerate_are_refused(a, b):
    """Before: Beta(1e-300, 1e-300) was accepted (every time exactly 0 or 1)."""
    bad = "a" if not 1e-3 <= a <= 1e3 else "b"
    message = rf"time_sampler Beta parameter {bad} must be in \[0.001, 1000\], got"
    with pytest.raises(ValueError, match=message):
        BetaTime(a, b)
    with pytest.raises(ValueError, match=message):
        st.fit(
            "gaussian",
            np.zeros((4, 2)) + np.arange(4)[:, None],
            time_sampler={"name": "beta", "a": a, "b": b},
        )


def test_beta_parameters_at_the_bounds_draw_times_in_the_unit_interval():
    for a, b in [(1e-3, 1e-3), (1e3, 1e3), (1e-3, 1e3), (0.5, 0.5)]:
        t = BetaTime(a, b).sample(64, generator=torch.Generator().manual_seed(0))
        assert bool(((t >= 0) & (t <= 1)).all())
