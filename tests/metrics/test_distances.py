"""Unit and property tests for :mod:`sitransport.metrics` (exact W2, Sinkhorn, noise floor).

Error paths, array-type acceptance, and the metric properties of the exact W2 (identity,
symmetry, translation, homogeneity, triangle inequality), plus a hypothesis strategy that
plants a permutation and therefore knows the exact answer.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
import xarray as xr
from hypothesis import given
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import cdist

from sitransport.metrics import gaussian_ot_map, gaussian_w2, noise_floor, sinkhorn_w2, w2

# ----------------------------------------------------------------------------- helpers

finite = hst.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, width=64)


@hst.composite
def samples(draw: hst.DrawFn, d: int | None = None, max_n: int = 12) -> np.ndarray:
    """Arrays of shape (n, d), n in 1..max_n, d in 1..4 (or the given d), entries in [-10, 10]."""
    d = draw(hst.integers(1, 4)) if d is None else d
    n = draw(hst.integers(1, max_n))
    return draw(hnp.arrays(np.float64, (n, d), elements=finite))


@hst.composite
def planted_permutation(draw: hst.DrawFn) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(x, y, exact W2, tolerance) with y = x[perm] + eps[perm] + c.

    x are distinct points of the integer grid (pairwise distance D >= 1) and |eps_i| <= 0.4
    (each coordinate in [-0.2, 0.2], d <= 4). For any other matching sigma, the mismatched
    points cost at least (D - 0.4)^2 >= 0.36 > 0.16 >= |eps_i|^2 each, so the planted
    matching is the unique optimum; a common shift c adds a sigma-independent term and does
    not change it. Hence W2^2 = mean_i |eps_i + c|^2 exactly.
    """
    d = draw(hst.integers(1, 4))
    n = draw(hst.integers(2, 12))
    grid = hst.tuples(*[hst.integers(-5, 5)] * d)
    pts = draw(hst.lists(grid, min_size=n, max_size=n, unique=True))
    x = np.asarray(pts, dtype=np.float64)
    eps = draw(hnp.arrays(np.float64, (n, d), elements=hst.floats(-0.2, 0.2)))
    c = draw(hnp.arrays(np.float64, (d,), elements=hst.floats(-3.0, 3.0)))
    perm = np.asarray(draw(hst.permutations(range(n))))
    y = x[perm] + eps[perm] + c
    # compute the answer from y itself so the rounding of y = x + eps + c is accounted for
    exact = float(np.sqrt(np.mean(np.sum((y - x[perm]) ** 2, axis=1))))
    return x, y, exact, 1e-10


def _resolution(x: np.ndarray, y: np.ndarray) -> float:
    """Absolute accuracy of W2^2 from POT's network simplex: it decides optimality to about
    1e-14 of the largest squared distance (see the ``w2`` docstring); 2e-14 for margin."""
    return 2e-14 * float(cdist(x, y, "sqeuclidean").max())


def _gauss(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    return rng.normal(size=(n, d)) + shift


# ----------------------------------------------------------------------------- w2 errors


def test_w2_dimension_mismatch_names_both_shapes() -> None:
    with pytest.raises(
        ValueError, match=r"same dimension.*x of shape \(3, 2\).*y of shape \(4, 3\)"
    ):
        w2(np.zeros((3, 2)), np.zeros((4, 3)))


def test_w2_nan_input() -> None:
    x = np.zeros((3, 2))
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite, got 1 NaN"):
        w2(x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"y must be finite, got 0 NaN and 1 infinite"):
        w2(np.zeros((3, 2)), np.array([[0.0, np.inf]]))


def test_w2_integer_dtype() -> None:
    with pytest.raises(TypeError, match=r"y must have a floating dtype.*int64"):
        w2(np.zeros((3, 2)), np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(TypeError, match=r"x must have a floating dtype"):
        w2(torch.zeros(3, 2, dtype=torch.int32), np.zeros((3, 2)))


def test_w2_non_array_input() -> None:
    with pytest.raises(TypeError, match=r"x must be a numpy.ndarray, torch.Tensor or xarray"):
        w2([[0.0, 1.0]], np.zeros((1, 2)))


def test_w2_one_dimensional_input() -> None:
    with pytest.raises(ValueError, match=r"x must have shape \(n, d\), got shape \(5,\)"):
        w2(np.zeros(5), np.zeros((5, 1)))


def test_w2_too_many_samples_without_subsample() -> None:
    x, y = np.zeros((12, 2)), np.zeros((5, 2))
    with pytest.raises(
        ValueError, match=r"max_samples=10 .*x has 12 samples.*O\(n\^2\) memory.*subsample=True"
    ) as info:
        w2(x, y, max_samples=10)
    assert "sinkhorn_w2" in str(info.value)


def test_w2_option_errors() -> None:
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"max_samples must be an integer >= 1, got 0"):
        w2(x, x, max_samples=0)
    with pytest.raises(TypeError, match=r"max_samples must be an integer"):
        w2(x, x, max_samples=10.0)
    with pytest.raises(TypeError, match=r"subsample must be True or False, got str"):
        w2(x, x, subsample="yes")
    with pytest.raises(
        TypeError, match=r"seed must be None, a numpy.random.Generator or an integer"
    ):
        w2(x, x, seed=1.5)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\], got -1"):
        w2(x, x, seed=-1)


def test_w2_weight_errors() -> None:
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"weights_x must have shape \(3,\) to match x"):
        w2(x, x, weights_x=np.ones(4))
    with pytest.raises(ValueError, match=r"weights_y must be non-negative"):
        w2(x, x, weights_y=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"weights_x must have a positive sum"):
        w2(x, x, weights_x=np.zeros(3))
    with pytest.raises(ValueError, match=r"weights_x must have shape .*got shape \(3, 1\)"):
        w2(x, x, weights_x=np.ones((3, 1)))


def test_w2_non_optimal_pot_status_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """A POT result without a certified optimum must raise, never return a number."""

    def fake_emd2(a, b, m, numItermax, log):  # noqa: N803 - POT's argument name
        return 0.123, {"warning": "numItermax reached before optimality", "result_code": 3}

    monkeypatch.setattr(ot, "emd2", fake_emd2)
    with pytest.raises(RuntimeError, match=r"did not reach a certified optimum.*result_code=3"):
        w2(np.zeros((3, 2)), np.ones((3, 2)))


def test_w2_passes_a_large_iteration_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    real = ot.emd2

    def spy(a, b, m, numItermax, log):  # noqa: N803
        seen["numItermax"] = numItermax
        return real(a, b, m, numItermax=numItermax, log=log)

    monkeypatch.setattr(ot, "emd2", spy)
    w2(np.zeros((3, 2)), np.ones((3, 2)))
    assert seen["numItermax"] >= 10_000_000


# ----------------------------------------------------------------------------- w2 types


def test_w2_accepts_numpy_torch_float32_and_xarray() -> None:
    rng = np.random.default_rng(0)
    # values exactly representable in float32, so all inputs describe the same measure
    x = rng.normal(size=(20, 3)).astype(np.float32).astype(np.float64)
    y = (rng.normal(size=(15, 3)) + 1.0).astype(np.float32).astype(np.float64)
    ref = w2(x, y)
    assert isinstance(ref, float)
    values = [
        w2(torch.from_numpy(x).float(), torch.from_numpy(y).float()),
        w2(torch.from_numpy(x).requires_grad_(True), y),
        w2(xr.DataArray(x, dims=("sample", "dim")), xr.DataArray(y, dims=("sample", "dim"))),
        w2(x.astype(np.float32), xr.DataArray(y.astype(np.float32))),
    ]
    for v in values:
        assert isinstance(v, float)
        assert v == pytest.approx(ref, rel=1e-12, abs=1e-14)


def test_w2_different_sample_sizes_and_weights_match_duplicated_points() -> None:
    """Weight 2 on a point is the same measure as that point listed twice."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 2))
    y = rng.normal(size=(7, 2))
    dup = np.concatenate([x, x[:1]])
    weights = np.array([2.0, 1.0, 1.0, 1.0])  # unnormalised on purpose
    assert w2(x, y, weights_x=weights) == pytest.approx(w2(dup, y), rel=1e-12)
    assert w2(y, x, weights_y=torch.tensor(weights)) == pytest.approx(w2(y, dup), rel=1e-12)


# ----------------------------------------------------------------------------- w2 properties


def test_w2_of_a_sample_with_itself_is_exactly_zero() -> None:
    x = _gauss(np.random.default_rng(0), 200, 3)
    x = np.concatenate([x, x[:10]])  # with repeated points (ties in the LP)
    assert w2(x, x) == 0.0
    assert w2(x, x[::-1].copy()) == 0.0  # the same measure, rows reordered
    assert w2(torch.from_numpy(x).float(), torch.from_numpy(x).float()) == 0.0


@given(samples())
def test_w2_of_a_sample_with_itself_vanishes(x: np.ndarray) -> None:
    """Exactly 0 for ordinary data (above); with adversarial mixed scales found by
    hypothesis (1.2e-7 next to 3.0) the simplex cannot tell such near-ties apart, and the
    value is only 0 up to the solver resolution."""
    assert w2(x, x) ** 2 <= _resolution(x, x)
    assert w2(x, x[::-1].copy()) ** 2 <= _resolution(x, x)


@given(hst.data())
def test_w2_is_symmetric(data: hst.DataObject) -> None:
    x = data.draw(samples())
    y = data.draw(samples(d=x.shape[1]))
    assert abs(w2(x, y) ** 2 - w2(y, x) ** 2) <= 1e-12 * w2(x, y) ** 2 + _resolution(x, y)


@given(samples(), hst.data())
def test_w2_translation_is_the_shift_norm(x: np.ndarray, data: hst.DataObject) -> None:
    c = data.draw(hnp.arrays(np.float64, (x.shape[1],), elements=finite))
    y = x + c
    # distance from the rounded y, so the rounding of x + c does not enter the oracle
    exact = float(np.sqrt(np.mean(np.sum((y - x) ** 2, axis=1))))
    value = w2(x, y)
    # 1e-10 as long as |c| is resolved; for |c| below ~1e-7 of the diameter only W2^2 to
    # the solver resolution
    assert abs(value - exact) <= 1e-10 or abs(value**2 - exact**2) <= _resolution(x, y)
    assert abs(exact - float(np.linalg.norm(c))) <= 1e-12 * (1.0 + float(np.abs(x).max()))


@given(hst.data(), hst.floats(-100.0, 100.0).filter(lambda a: abs(a) > 1e-3))
def test_w2_is_positively_homogeneous(data: hst.DataObject, a: float) -> None:
    x = data.draw(samples())
    y = data.draw(samples(d=x.shape[1]))
    lhs, rhs = w2(a * x, a * y) ** 2, a**2 * w2(x, y) ** 2
    assert abs(lhs - rhs) <= 1e-9 * rhs + a**2 * _resolution(x, y)


@given(hst.data())
def test_w2_triangle_inequality(data: hst.DataObject) -> None:
    x = data.draw(samples())
    d = x.shape[1]
    y = data.draw(samples(d=d))
    z = data.draw(samples(d=d))
    slack = np.sqrt(_resolution(x, z)) + np.sqrt(_resolution(x, y)) + np.sqrt(_resolution(y, z))
    assert w2(x, z) <= w2(x, y) + w2(y, z) + 1e-12 + slack


@given(planted_permutation())
def test_w2_planted_permutation(problem: tuple[np.ndarray, np.ndarray, float, float]) -> None:
    x, y, exact, tol = problem
    assert abs(w2(x, y) - exact) <= tol
    assert abs(w2(y, x) - exact) <= tol


def test_w2_small_hand_case() -> None:
    x = np.array([[0.0], [2.0]])
    y = np.array([[1.0], [5.0], [6.0]])
    # optimal 1-D plan (sorted quantiles): 0->1 (1/3), 0->5 (1/6), 2->5 (1/6), 2->6 (1/3)
    expected = np.sqrt((1 * 2 + 25 * 1 + 9 * 1 + 16 * 2) / 6)
    assert w2(x, y) == pytest.approx(expected, rel=1e-14)


# ----------------------------------------------------------------------------- subsampling


def test_w2_subsampling_is_seeded_and_reproducible() -> None:
    rng = np.random.default_rng(2)
    x, y = _gauss(rng, 60, 2), _gauss(rng, 50, 2, shift=1.0)
    a = w2(x, y, max_samples=20, subsample=True, seed=7)
    b = w2(x, y, max_samples=20, subsample=True, seed=7)
    c = w2(x, y, max_samples=20, subsample=True, seed=np.random.default_rng(7))
    assert a == b == c
    assert w2(x, y, max_samples=20, subsample=True, seed=8) != a


def test_w2_subsampling_draws_without_replacement() -> None:
    """x = 0..5 (distinct), y = a point at 0, max_samples = 5: a draw without replacement
    omits exactly one point j, so 5 W2^2 = sum(x^2) - j^2 = 55 - j^2 for an integer j."""
    x = np.arange(6.0).reshape(6, 1)
    y = np.zeros((1, 1))
    omitted = set()
    for seed in range(12):
        value = w2(x, y, max_samples=5, subsample=True, seed=seed)
        j2 = 55.0 - 5.0 * value**2
        j = round(np.sqrt(max(j2, 0.0)))
        assert j2 == pytest.approx(j**2, abs=1e-9) and 0 <= j <= 5
        omitted.add(j)
    assert len(omitted) > 2  # the omitted point depends on the seed


def test_w2_same_measure_with_different_sample_counts() -> None:
    """A sample listed twice is the same measure: W2 is 0 up to the rounding of the weights
    (1/40 vs 1/20 do not sum identically, which moves ~1e-16 of mass: W2 ~ sqrt(1e-16))."""
    x = _gauss(np.random.default_rng(3), 20, 2)
    assert w2(np.concatenate([x, x]), x) <= 1e-7


def test_w2_subsample_is_a_no_op_below_the_limit() -> None:
    rng = np.random.default_rng(4)
    x, y = _gauss(rng, 30, 2), _gauss(rng, 30, 2, shift=0.5)
    assert w2(x, y, subsample=True, seed=1) == w2(x, y)


# ----------------------------------------------------------------------------- sinkhorn


def test_sinkhorn_errors() -> None:
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"blur must be finite and > 0, got 0"):
        sinkhorn_w2(x, x, blur=0.0)
    with pytest.raises(ValueError, match=r"scaling must be in \(0, 1\), got 1.0"):
        sinkhorn_w2(x, x, scaling=1.0)
    with pytest.raises(TypeError, match=r"scaling must be a number"):
        sinkhorn_w2(x, x, scaling="0.9")
    with pytest.raises(ValueError, match=r"same dimension"):
        sinkhorn_w2(x, np.zeros((3, 1)))
    with pytest.raises(TypeError, match=r"device must be None, a str or a torch.device"):
        sinkhorn_w2(x, x, device=0)


def test_sinkhorn_accepts_array_types_and_returns_float() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 2)).astype(np.float32).astype(np.float64)
    y = (rng.normal(size=(30, 2)) + 2.0).astype(np.float32).astype(np.float64)
    ref = sinkhorn_w2(x, y)
    assert isinstance(ref, float)
    assert sinkhorn_w2(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(
        ref, rel=1e-12
    )
    assert sinkhorn_w2(xr.DataArray(x), xr.DataArray(y), device="cpu") == pytest.approx(
        ref, rel=1e-12
    )


def test_sinkhorn_of_identical_samples_is_near_zero() -> None:
    x = np.random.default_rng(6).normal(size=(50, 2))
    assert sinkhorn_w2(x, x) <= 1e-6


# ----------------------------------------------------------------------------- noise floor


def test_noise_floor_errors() -> None:
    target = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"at least 2 \* n = 6 samples.*n=3, got 5 samples"):
        noise_floor(target, 3)
    with pytest.raises(ValueError, match=r"n must be at most 10000"):
        noise_floor(target, 10_001)
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got 0"):
        noise_floor(target, 0)
    with pytest.raises(ValueError, match=r"repeats must be an integer >= 1, got 0"):
        noise_floor(target, 1, repeats=0)
    with pytest.raises(TypeError, match=r"target must be a numpy.ndarray"):
        noise_floor([[0.0], [1.0]], 1)

    def bad_sampler(n: int, seed: int) -> np.ndarray:
        return np.zeros((n + 1, 2))

    with pytest.raises(ValueError, match=r"target\(n, seed\) \(draw 1\) must return 4 samples"):
        noise_floor(bad_sampler, 4)


def test_noise_floor_uses_disjoint_subsets() -> None:
    """With 2 rows and n = 1 the two subsets must be the two different rows."""
    target = np.array([[0.0, 0.0], [3.0, 4.0]])
    for seed in range(5):
        assert noise_floor(target, 1, seed=seed) == 5.0


def test_noise_floor_is_reproducible_and_averages_repeats() -> None:
    target = np.random.default_rng(7).normal(size=(200, 2))
    one = noise_floor(target, 50, seed=3)
    assert one == noise_floor(target, 50, seed=3)
    assert one > 0.0
    rng = np.random.default_rng(11)
    expected = []
    for _ in range(3):
        idx = rng.choice(200, size=100, replace=False)
        expected.append(w2(target[idx[:50]], target[idx[50:]]))
    assert noise_floor(target, 50, seed=11, repeats=3) == pytest.approx(
        np.mean(expected), rel=1e-14
    )


def test_noise_floor_callable_gets_independent_seeds() -> None:
    seeds: list[int] = []

    def sampler(n: int, seed: int) -> np.ndarray:
        seeds.append(seed)
        return np.random.default_rng(seed).normal(size=(n, 2))

    value = noise_floor(sampler, 30, seed=0, repeats=2)
    assert len(seeds) == 4 and len(set(seeds)) == 4
    assert all(isinstance(s, int) for s in seeds)
    assert value > 0.0
    assert noise_floor(sampler, 30, seed=0, repeats=2) == value

    def constant(n: int, seed: int) -> torch.Tensor:
        return torch.ones(n, 2)

    assert noise_floor(constant, 10, seed=0) == 0.0


# ----------------------------------------------------------------------------- gaussian errors


def test_gaussian_w2_rejects_non_psd_and_bad_shapes() -> None:
    m = np.zeros(2)
    eye = np.eye(2)
    with pytest.raises(ValueError, match=r"cov2 must be symmetric positive semi-definite.*-1"):
        gaussian_w2(m, eye, m, np.diag([1.0, -1.0]))
    with pytest.raises(
        ValueError,
        match=r"cov1 must be symmetric positive semi-definite, got an asymmetric matrix: max",
    ):
        gaussian_w2(m, np.array([[1.0, 0.5], [0.0, 1.0]]), m, eye)
    with pytest.raises(ValueError, match=r"cov1 must have shape \(d, d\) = \(2, 2\).*\(3, 3\)"):
        gaussian_w2(m, np.eye(3), m, eye)
    with pytest.raises(ValueError, match=r"same dimension.*mean1 of shape \(2,\).*\(3,\)"):
        gaussian_w2(m, eye, np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"mean2 must have shape"):
        gaussian_w2(m, eye, np.zeros((1, 2)), eye)
    with pytest.raises(ValueError, match=r"cov1 must be finite"):
        gaussian_w2(m, np.array([[np.nan, 0.0], [0.0, 1.0]]), m, eye)
    with pytest.raises(TypeError, match=r"cov2 must have a floating dtype"):
        gaussian_w2(m, eye, m, np.eye(2, dtype=np.int64))


def test_gaussian_ot_map_needs_positive_definite_source() -> None:
    m = np.zeros(2)
    with pytest.raises(ValueError, match=r"cov1 must be symmetric positive definite"):
        gaussian_ot_map(m, np.diag([1.0, 0.0]), m, np.eye(2))
    # a singular *target* is fine: the map is then a projection
    a, b = gaussian_ot_map(m, np.eye(2), m, np.diag([1.0, 0.0]))
    np.testing.assert_allclose(a, np.diag([1.0, 0.0]), atol=1e-15)


def test_gaussian_functions_accept_torch_and_xarray_and_keep_type() -> None:
    m1, s1 = np.array([0.0, 1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    m2, s2 = np.array([1.0, -1.0]), np.array([[1.0, -0.25], [-0.25, 0.5]])
    ref = gaussian_w2(m1, s1, m2, s2)
    t = [torch.from_numpy(v).float() for v in (m1, s1, m2, s2)]
    assert gaussian_w2(*t) == pytest.approx(ref, rel=1e-12)
    xa = [xr.DataArray(v) for v in (m1, s1, m2, s2)]
    assert gaussian_w2(*xa) == pytest.approx(ref, rel=1e-12)

    a_ref, b_ref = gaussian_ot_map(m1, s1, m2, s2)
    assert isinstance(a_ref, np.ndarray) and a_ref.dtype == np.float64
    a_t, b_t = gaussian_ot_map(*t)
    assert isinstance(a_t, torch.Tensor) and a_t.dtype == torch.float32
    assert isinstance(b_t, torch.Tensor) and b_t.shape == (2,)
    np.testing.assert_allclose(a_t.numpy(), a_ref, rtol=1e-6)
    a_x, b_x = gaussian_ot_map(
        xr.DataArray(m1, dims=("dim",)),
        xr.DataArray(s1, dims=("row", "col")),
        xr.DataArray(m2),
        xr.DataArray(s2),
    )
    assert isinstance(a_x, xr.DataArray) and a_x.dims == ("row", "col")
    assert isinstance(b_x, xr.DataArray) and b_x.dims == ("dim",)
    np.testing.assert_allclose(b_x.values, b_ref, rtol=1e-14)


def test_nll_of_identity_flow_is_base_nll() -> None:
    """A zero velocity transports nothing: the NLL is that of N(0, I), in closed form."""
    import torch

    from sitransport.flow import TransportFlow
    from sitransport.metrics import nll

    flow = TransportFlow(lambda x, t: torch.zeros_like(x), "linear", base="gaussian", shape=(2,))
    x = np.array([[0.0, 0.0], [1.0, 2.0]])
    expected = np.log(2 * np.pi) + 0.25 * (0.0 + 5.0)
    assert nll(flow, x) == pytest.approx(expected, rel=1e-12)
