"""Likelihoods: bits per dimension, batched log-densities, exact vs Hutchinson, known densities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

import sitransport as st
from sitransport.flow import TransportFlow

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


# ----------------------------------------------------------------- flows with known densities


def scaling_flow(s: float, d: int) -> TransportFlow:
    """x_t = (1 + (s - 1) t) x_0 from N(0, I): rho1 = N(0, s^2 I) exactly."""
    return TransportFlow(
        lambda z, t: (s - 1.0) * z / (1.0 + (s - 1.0) * t),
        "linear",
        base="gaussian",
        shape=(d,),
        ode=st.ODEOptions(atol=1e-8, rtol=1e-8),
    )


def twisted_flow(d: int) -> TransportFlow:
    """A nonlinear field with a non-symmetric Jacobian: exact and Hutchinson traces differ."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    b = torch.randn(d, generator=g, dtype=torch.float64)
    return TransportFlow(
        lambda z, t: torch.tanh(z @ a.T.to(z) + b.to(z) * t) + 0.3 * z,
        "linear",
        base="gaussian",
        shape=(d,),
    )


def gaussian_log_prob(x: np.ndarray, s: float) -> np.ndarray:
    d = x.shape[1]
    return -0.5 * d * math.log(2 * math.pi * s**2) - 0.5 * (x**2).sum(1) / s**2


def test_log_prob_of_exact_gaussian_flow():
    flow = scaling_flow(1.7, 3)
    y = np.random.default_rng(0).standard_normal((40, 3)) * 1.7
    est = flow.log_prob_estimate(y)
    np.testing.assert_allclose(est.log_prob, gaussian_log_prob(y, 1.7), atol=1e-6)
    np.testing.assert_array_equal(est.stderr, 0.0)  # exact divergence: no sampling error
    assert est.nfe > 0


@pytest.mark.parametrize("method", ["exact", "hutchinson"])
def test_batched_log_prob_matches_one_batch(method):
    flow = twisted_flow(4)
    y = np.random.default_rng(1).standard_normal((25, 4))
    one = flow.log_prob_estimate(y, method=method, probes=4, seed=5)
    for batch_size in (1, 7, 25, 1000):
        many = flow.log_prob_estimate(
            y, method=method, probes=4, seed=5, batch_size=batch_size, progress=False
        )
        # adaptive steps are chosen per batch: agreement at the solver tolerance (1e-5);
        # Hutchinson probes are drawn batch by batch, so only the exact values must agree
        if method == "exact":
            np.testing.assert_allclose(many.log_prob, one.log_prob, atol=2e-4)
        assert many.log_prob.shape == (25,) and many.stderr.shape == (25,)
    # same probes when the batching is the same: deterministic given the seed
    a = flow.log_prob_estimate(y, method=method, probes=4, seed=5, batch_size=7, progress=False)
    b = flow.log_prob_estimate(y, method=method, probes=4, seed=5, batch_size=7, progress=False)
    np.testing.assert_array_equal(a.log_prob, b.log_prob)


def test_batched_log_prob_shows_progress_and_keeps_array_type(capsys):
    flow = scaling_flow(2.0, 2)
    y = torch.randn(30, 2, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    lp = flow.log_prob(y, batch_size=10, progress=True)
    assert isinstance(lp, torch.Tensor) and lp.dtype == torch.float32 and lp.shape == (30,)
    assert "log_prob" in capsys.readouterr().err  # tqdm writes to stderr
    flow.log_prob(y, batch_size=10, progress=False)
    flow.log_prob(y, progress=True)  # a single batch: no bar
    assert capsys.readouterr().err == ""
    lp_x = flow.log_prob(xr.DataArray(y.double().numpy(), dims=("sample", "dim")), batch_size=7)
    assert isinstance(lp_x, xr.DataArray) and lp_x.shape == (30,)
    ref = gaussian_log_prob(y.double().numpy(), 2.0)
    np.testing.assert_allclose(lp_x.values, ref, atol=1e-5)
    nll = st.metrics.nll(flow, y.double().numpy(), batch_size=4, progress=False)
    assert nll == pytest.approx(-ref.mean(), abs=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
        ({"progress": "yes"}, TypeError, "progress must be a bool"),
        ({"method": "hutchinson", "probes": 0}, ValueError, "probes must be an integer >= 1"),
        ({"method": "trace"}, ValueError, "valid values are: auto, exact, hutchinson"),
    ],
)
def test_log_prob_rejects_bad_options(kwargs, err, match):
    flow = scaling_flow(2.0, 2)
    with pytest.raises(err, match=match):
        flow.log_prob_estimate(np.zeros((3, 2)), **kwargs)


def test_exact_and_hutchinson_agree_within_error_bars():
    d, n, k = 6, 300, 16
    flow = twisted_flow(d)
    y = np.random.default_rng(2).standard_normal((n, d))
    exact = flow.log_prob_estimate(y, method="exact")
    hutch = flow.log_prob_estimate(y, method="hutchinson", probes=k, seed=0)
    diff, se = hutch.log_prob - exact.log_prob, hutch.stderr
    assert np.all(se > 0) and np.any(np.abs(diff) > 1e-3)  # a real sampling error to bound
    # per point: |diff| / se is Student-t with k - 1 = 15 dof; P(|t| > 3.3) = 0.005
    assert np.mean(np.abs(diff) <= 3.3 * se) >= 0.97
    # unbiased: the mean difference over independent points is within 4 of its standard errors
    assert abs(diff.mean()) <= 4 * np.sqrt(np.sum(se**2)) / n
    # and the error bars are honest: their scale matches the spread of the errors
    assert 0.7 <= np.std(diff / se) <= 1.4


def test_bits_per_dim_of_discretised_gaussian_matches_closed_form():
    """Grid data: x = h k + uniform cell noise with k ~ the discretised N(0, s^2) per axis."""
    from scipy.stats import norm

    s, h, d, n = 1.5, 0.25, 2, 4000
    rng = np.random.default_rng(7)
    k = np.rint(rng.standard_normal((n, d)) * s / h)
    x = h * k + h * (rng.random((n, d)) - 0.5)  # dequantised
    # closed form per axis: cell probabilities P_j and E[x^2] of the dequantised law
    j = np.arange(-40, 41)  # +-6.7 sigma
    p = norm.cdf((j + 0.5) * h / s) - norm.cdf((j - 0.5) * h / s)
    ex2 = np.sum(p * (j * h) ** 2) + h**2 / 12
    nll_expected = d * (0.5 * math.log(2 * math.pi * s**2) + ex2 / (2 * s**2))
    bpd_expected = st.metrics.bits_per_dim(nll_expected, d, bin_width=h)
    entropy_bits = -np.sum(p * np.log2(p))  # discrete entropy per dimension
    # dequantised bpd upper-bounds the discrete code length, tightly for h << s
    assert 0.0 <= bpd_expected - entropy_bits <= 0.01

    flow = scaling_flow(s, d)
    nll_flow = st.metrics.nll(flow, x, batch_size=1000, progress=False)
    nll_true = float(-gaussian_log_prob(x, s).mean())
    assert nll_flow == pytest.approx(nll_true, abs=1e-5)  # the ODE reproduces the density
    se = float(gaussian_log_prob(x, s).std() / math.sqrt(n))
    assert abs(nll_flow - nll_expected) <= 4 * se  # and the sample mean its expectation
    bpd = st.metrics.bits_per_dim(nll_flow, d, bin_width=h)
    assert abs(bpd - bpd_expected) <= 4 * se / (d * math.log(2))


def test_one_probe_has_no_standard_error():
    """One probe measures no spread: the standard error used to come back nan."""
    flow = scaling_flow(2.0, 2)
    with pytest.raises(ValueError, match=r"probes must be at least 2 .*got probes=1"):
        flow.log_prob_estimate(np.zeros((3, 2)), method="hutchinson", probes=1, progress=False)


def test_log_prob_takes_one_probe():
    """log_prob returns no standard error: one probe is an unbiased estimate."""
    flow = scaling_flow(2.0, 2)
    one = flow.log_prob(np.zeros((3, 2)), method="hutchinson", probes=1, progress=False)
    exact = flow.log_prob(np.zeros((3, 2)), method="exact", progress=False)
    np.testing.assert_allclose(one, exact, atol=1e-4)  # a linear field: every probe is exact
