"""sample_quality at sample sizes where its noise floor means little, and on held-out
halves that coincide (a zero noise floor)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sitransport as st

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("m", [1, 2, 9])
def test_few_held_out_samples_warn(m):
    held = RNG.standard_normal((2 * m, 2))
    with pytest.warns(UserWarning, match=rf"held_out gives m={m} .*fewer than 10"):
        q = st.metrics.sample_quality(RNG.standard_normal((m, 2)), held)
    assert q.n == m


def test_enough_held_out_samples_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = st.metrics.sample_quality(RNG.standard_normal((10, 2)), RNG.standard_normal((20, 2)))
    assert q.n == 10 and np.isfinite(q.ratio)


def test_held_out_halves_that_coincide_are_refused():
    """A zero noise floor made the ratio inf (or 0/0 for a perfect model)."""
    held = np.ones((40, 2))
    with pytest.raises(ValueError, match=r"held_out.*noise floor.*0"):
        st.metrics.sample_quality(np.ones((20, 2)), held)
