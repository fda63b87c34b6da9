"""ODEOptions refuses, up front and by name, settings no solve can honour."""

from __future__ import annotations

import re

import pytest

from sitransport.ode import ODEOptions
from sitransport.ode.options import MAX_STEPS, MIN_RTOL


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("max_steps", 10**15, f"an integer in [1, {MAX_STEPS}]"),
        ("steps", 10**12, f"an integer in [1, {MAX_STEPS}]"),
        ("rtol", 1e-300, f"a number >= {MIN_RTOL:.3g}"),
        ("rtol", 1e-15, f"a number >= {MIN_RTOL:.3g}"),
    ],
)
def test_settings_beyond_what_a_solve_can_honour_are_refused(field, value, valid):
    """Before: ``max_steps=10**15`` failed in the solve with torchdiffeq's int32 overflow,
    ``steps=10**12`` asked for a 4 TB time grid, and ``rtol=atol=1e-300`` ran until the
    step size underflowed and reported a non-finite state at t=nan."""
    with pytest.raises(ValueError, match=re.escape(f"{field} must be {valid}, got {value}")):
        ODEOptions(**{field: value})


def test_the_bounds_admit_every_setting_in_use():
    """The defaults, the tightest tolerances of the tests (1e-10) and the bounds themselves
    pass; a tiny ``atol`` passes too (the error bound ``atol + rtol |x|`` stays met by
    ``rtol``)."""
    assert ODEOptions() == ODEOptions(atol=1e-5, rtol=1e-5, steps=100, max_steps=10_000)
    ODEOptions(atol=1e-10, rtol=1e-10)
    ODEOptions(rtol=MIN_RTOL, atol=1e-300, steps=MAX_STEPS, max_steps=MAX_STEPS)
    assert 1e-14 < MIN_RTOL < 1e-13 and MAX_STEPS < 2**31
