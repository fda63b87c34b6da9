"""Arrays as the caller holds them: another byte order is the same values (read, not
refused); a masked array's mask cannot be honoured, so it is refused rather than dropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport._validation import as_tensor, check_pixels, check_times
from tests.helpers import TINY

X = st.datasets.sample("moons", 200, seed=0)


@pytest.mark.parametrize("dtype", [">f8", ">f4", "<f8", "<f4"])
def test_any_byte_order_of_a_supported_dtype_is_read_as_its_values(dtype):
    """Before: ``>f8`` was refused as "not float64"."""
    other = X.astype(dtype)
    t, _ = as_tensor(other, "x")
    assert t.dtype == (torch.float64 if dtype.endswith("8") else torch.float32)
    np.testing.assert_array_equal(t.numpy(), X.astype(dtype))
    assert float(check_times(np.array([0.25, 1.0], dtype=dtype)).sum()) == 1.25
    assert st.metrics.w2(other, X + 1.0) == st.metrics.w2(X.astype(dtype[1:]), X + 1.0)


def test_a_fit_on_big_endian_data_is_the_fit_on_the_same_values():
    y = X.astype(">f8")
    big, native = st.fit("gaussian", y, **TINY), st.fit("gaussian", X, **TINY)
    np.testing.assert_array_equal(big.pull_back(y[:5]), native.pull_back(X[:5]))


def test_non_native_byte_order_of_an_unsupported_dtype_is_still_refused():
    with pytest.raises(TypeError, match=r"x must be float32 or float64, got dtype float16"):
        as_tensor(X.astype(">f2"), "x")


def test_masked_arrays_are_refused_naming_the_argument():
    """Before: accepted, with the mask silently ignored (masked values used as data)."""
    masked = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    masked.mask[3, 1] = True
    fix = r"is a numpy masked array, whose mask would be ignored.*\.filled\(value\)"
    with pytest.raises(TypeError, match="x " + fix):
        as_tensor(masked, "x")
    with pytest.raises(TypeError, match="rho1 " + fix):
        st.fit("gaussian", masked, **TINY)
    with pytest.raises(TypeError, match="t " + fix):
        check_times(np.ma.masked_array([0.1, 0.2], mask=[False, True]))
    pixels = np.ma.masked_array(np.zeros((2, 1, 2, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="pixels " + fix):
        check_pixels(pixels, "pixels", 256)
    # the suggested unmasked rows are plain data of the samples kept
    rows = masked.data[~np.ma.getmaskarray(masked).any(axis=1)]
    assert as_tensor(rows, "x")[0].shape == (199, 2)
