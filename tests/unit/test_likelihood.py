"""Likelihoods: bits per dimension, batched log-densities, exact vs Hutchinson, known densities."""

from __future__ import annotations

import math

import numpy as np
import pytest

import sitransport as st

# --------------------------------------------------------------------------- bits_per_dim


@pytest.mark.parametrize("levels", [2, 256, 1000])
@pytest.mark.parametrize("d", [1, 3, 784])
def test_bits_per_dim_of_uniform_grid_is_log2_levels(levels, d):
    # dequantised uniform on `levels` cells of width 1/levels: continuous density 1 on [0,1]^d,
    # NLL = 0 nats, and the discrete code length is log2(levels) bits per dimension
    assert st.metrics.bits_per_dim(0.0, d, bin_width=1.0 / levels) == pytest.approx(
        math.log2(levels), rel=1e-12
    )


def test_bits_per_dim_closed_form():
    nll, d, h = 12.5, 5, 0.03
    expected = (nll - d * math.log(h)) / (d * math.log(2.0))
    assert st.metrics.bits_per_dim(nll, d, bin_width=h) == pytest.approx(expected, rel=1e-14)
    # rescaling the data by c changes the NLL by d log c and the bin width by c: bpd invariant
    c = 7.0
    assert st.metrics.bits_per_dim(nll + d * math.log(c), d, bin_width=h * c) == pytest.approx(
        expected, rel=1e-12
    )
    assert isinstance(st.metrics.bits_per_dim(np.float64(1.0), 2, bin_width=0.5), float)


@pytest.mark.parametrize(
    ("args", "kwargs", "err", "match"),
    [
        (("1.0", 2), {"bin_width": 0.1}, TypeError, "nll must be a real number"),
        ((True, 2), {"bin_width": 0.1}, TypeError, "nll must be a real number"),
        ((float("nan"), 2), {"bin_width": 0.1}, ValueError, "nll must be finite"),
        ((float("inf"), 2), {"bin_width": 0.1}, ValueError, "nll must be finite"),
        ((1.0, 0), {"bin_width": 0.1}, ValueError, "d must be an integer >= 1, got 0"),
        ((1.0, 2.0), {"bin_width": 0.1}, TypeError, "d must be an integer"),
        ((1.0, 2), {"bin_width": 0.0}, ValueError, "bin_width must be finite and > 0"),
        ((1.0, 2), {"bin_width": -1.0}, ValueError, "bin_width must be finite and > 0"),
        ((1.0, 2), {"bin_width": float("inf")}, ValueError, "bin_width must be finite"),
        ((1.0, 2), {"bin_width": "a"}, TypeError, "bin_width must be a real number"),
    ],
)
def test_bits_per_dim_rejects_bad_input(args, kwargs, err, match):
    with pytest.raises(err, match=match):
        st.metrics.bits_per_dim(*args, **kwargs)


def test_bits_per_dim_bin_width_is_keyword_only():
    with pytest.raises(TypeError):
        st.metrics.bits_per_dim(1.0, 2, 0.1)
