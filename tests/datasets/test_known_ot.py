"""Pairs with a known optimal-transport map (datasets.known_ot_pair) and metrics.map_error.

The benchmark ``benchmarks/bench_ot_map.py`` scores learned maps against these maps, so the
maps must really be optimal: the gradient of a convex potential (Brenier), checked here by
exact discrete OT (POT), monotonicity and a symmetric positive semi-definite Jacobian.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

import sitransport as st
from sitransport.datasets import Gaussian, KnownOTPair, known_ot_pair

KINDS = ("gaussian", "mixture")


def _jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """Per-sample Jacobians ``(n, d, d)`` of a row-wise map, by ``d`` backward passes."""
    x = x.detach().requires_grad_(True)
    y = f(x)
    rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [2, 5, 16])
def test_identity_pairing_is_the_exact_discrete_ot_plan(kind, d):
    """For points x_i and their images T(x_i), POT's exact W2^2 equals the cost of pairing
    each point with its own image: the map is cyclically monotone (a Brenier map). A map
    that is not (e.g. a rotation) fails this by a wide margin."""
    pair = known_ot_pair(kind, d, seed=1)
    x = pair.source.sample(300, seed=2)
    y = pair.ot_map(x)
    own = float(np.square(y - x).sum(1).mean())
    w = np.full(300, 1 / 300)
    exact = ot.emd2(w, w, ot.dist(x, y), numItermax=10_000_000)
    assert exact == pytest.approx(own, rel=1e-9)
    rotated = y[:, ::-1].copy() if d == 2 else np.roll(y, 1, axis=1)
    assert ot.emd2(w, w, ot.dist(x, rotated), numItermax=10_000_000) < 0.99 * float(
        np.square(rotated - x).sum(1).mean()
    )


@pytest.mark.parametrize("kind", KINDS)
def test_map_is_the_gradient_of_the_potential_and_monotone(kind):
    pair = known_ot_pair(kind, 6, seed=0)
    x = torch.from_numpy(pair.source.sample(200, seed=3)).requires_grad_(True)
    grad = torch.autograd.grad(pair.potential(x).sum(), x)[0]
    torch.testing.assert_close(pair.ot_map(x), grad, rtol=1e-12, atol=1e-12)
    xa, xb = pair.source.sample(500, seed=4), pair.source.sample(500, seed=5)
    gap = ((pair.ot_map(xa) - pair.ot_map(xb)) * (xa - xb)).sum(1)
    floor = 0.3 if kind == "mixture" else 0.0  # the mixture's quadratic: strongly convex
    assert (gap >= floor * np.square(xa - xb).sum(1) - 1e-12).all()


@pytest.mark.parametrize("kind", KINDS)
def test_jacobian_is_symmetric_positive_semidefinite(kind):
    pair = known_ot_pair(kind, 8, seed=0)
    jac = _jacobian(pair.ot_map, torch.from_numpy(pair.source.sample(100, seed=1)))
    torch.testing.assert_close(jac, jac.transpose(1, 2), rtol=0, atol=1e-12)
    eig = torch.linalg.eigvalsh(jac)
    assert float(eig.min()) > 0.0
    if kind == "mixture":  # the ridges make it non-linear: the Jacobian varies from point to point
        assert float((jac - jac.mean(0)).abs().max()) > 0.5


def test_gaussian_pair_map_is_the_closed_form_gaussian_ot_map():
    pair = known_ot_pair("gaussian", 5, seed=3)
    src = pair.source
    a, b = pair._a, pair._b
    mean1, cov1 = a @ src.mean + b, a @ src.cov @ a  # the target N(mean1, cov1)
    a2, b2 = st.metrics.gaussian_ot_map(src.mean.copy(), src.cov.copy(), mean1, cov1)
    x = src.sample(50, seed=0)
    np.testing.assert_allclose(pair.ot_map(x), x @ a2.T + b2, rtol=1e-9, atol=1e-9)
    assert pair.target_variance == pytest.approx(float(np.trace(cov1)), rel=1e-12)
    _, x1 = pair.sample(20_000, seed=1)
    assert x1.var(0, ddof=1).sum() == pytest.approx(pair.target_variance, rel=0.05)


def test_mixture_target_variance_matches_a_fresh_sample():
    pair = known_ot_pair("mixture", 4, seed=0)
    _, x1 = pair.sample(50_000, seed=7)
    assert x1.var(0, ddof=1).sum() == pytest.approx(pair.target_variance, rel=0.03)


def test_sample_draws_the_two_ends_independently_and_reproducibly():
    pair = known_ot_pair("mixture", 3, seed=0)
    x0, x1 = pair.sample(400, seed=1)
    assert x0.shape == x1.shape == (400, 3)
    assert not np.allclose(x1, pair.ot_map(x0))  # x1 is not the image of x0
    again = pair.sample(400, seed=1)
    np.testing.assert_array_equal(x0, again[0])
    np.testing.assert_array_equal(x1, again[1])
    np.testing.assert_array_equal(known_ot_pair("mixture", 3, seed=0).ot_map(x0), pair.ot_map(x0))
    assert not np.allclose(known_ot_pair("mixture", 3, seed=1).ot_map(x0), pair.ot_map(x0))


def test_array_types_are_kept():
    pair = known_ot_pair("mixture", 2, seed=0)
    x = np.zeros((3, 2))
    assert isinstance(pair.ot_map(x), np.ndarray)
    out = pair.ot_map(torch.zeros(3, 2, dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="kind"):
        known_ot_pair("banana", 2)
    with pytest.raises(ValueError, match="dim"):
        known_ot_pair("mixture", 0)
    src = Gaussian(np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="quadratic must be symmetric positive semi-definite"):
        KnownOTPair(src, -np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="quadratic and linear must have shapes"):
        KnownOTPair(src, np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match="directions and offsets"):
        KnownOTPair(src, np.eye(2), np.zeros(2), np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="amplitude"):
        KnownOTPair(src, np.eye(2), np.zeros(2), np.ones((1, 2)), np.zeros(1), amplitude=-1.0)
    with pytest.raises(TypeError, match="source"):
        KnownOTPair(np.zeros(2), np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="x must have trailing shape"):
        known_ot_pair("mixture", 2).ot_map(np.zeros((3, 4)))


# ------------------------------------------------------------------------- map_error


def test_map_error_of_the_optimal_map_is_zero_and_of_the_mean_is_one_hundred():
    pair = known_ot_pair("mixture", 4, seed=0)
    x = pair.source.sample(20_000, seed=1)
    y = pair.ot_map(x)
    perfect = st.metrics.map_error(x, y, y, pair.target_variance)
    assert perfect.l2_uvp == 0.0 and perfect.cosine == pytest.approx(1.0) and perfect.n == 20_000
    constant = np.broadcast_to(y.mean(0), y.shape)  # the best constant map: UVP = 100 %
    assert st.metrics.map_error(x, constant, y).l2_uvp == pytest.approx(100.0, rel=1e-3)
    backwards = x - (y - x)  # the opposite displacement
    assert st.metrics.map_error(x, backwards, y).cosine == pytest.approx(-1.0)


def test_map_error_bad_input():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="mapped must have the shape of x"):
        st.metrics.map_error(x, np.zeros((4, 2)), x)
    with pytest.raises(ValueError, match="target_variance"):
        st.metrics.map_error(x, x, x + 1.0, target_variance=0.0)
