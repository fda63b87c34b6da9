"""Unit tests for sitransport.datasets: toy samplers, exact densities, Gaussian (mixtures)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

from sitransport import datasets as ds

EXPECTED_NAMES = [
    "2spirals",
    "8gaussians",
    "checkerboard",
    "circles",
    "line",
    "moons",
    "pinwheel",
    "spirals",
    "swissroll",
]
EXACT = ["8gaussians", "checkerboard"]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def assert_moments(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, c: float = 5.0) -> None:
    """Sample mean and covariance agree with exact ones within c standard errors (~ 1/sqrt n)."""
    n = x.shape[0]
    m = x.mean(axis=0)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(m - mean) <= c * se_mean), (m, mean, se_mean)
    centred = x - mean  # exact mean: cov estimate is then an average of iid products
    prods = centred[:, :, None] * centred[:, None, :]
    emp_cov = prods.mean(axis=0)
    se_cov = prods.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(emp_cov - cov) <= c * se_cov), (emp_cov, cov, se_cov)


def midpoint_grid(lo: float, hi: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints of a square grid of cell size h on [lo, hi]^2, shape (m * m, 2), and 1-D axis."""
    m = int(round((hi - lo) / h))
    axis = lo + h * (np.arange(m) + 0.5)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1), axis


def assert_histogram_matches_density(
    x: np.ndarray, log_prob, lo: float, hi: float, box: float, sub: int, c: float = 5.0
) -> None:
    """Fraction of samples in each box == integral of exp(log_prob) over it (binomial tol)."""
    n = x.shape[0]
    pts, _ = midpoint_grid(lo, hi, box / sub)
    dens = np.exp(log_prob(pts))
    n_box = int(round((hi - lo) / box))
    mass = (dens * (box / sub) ** 2).reshape(n_box, sub, n_box, sub).sum(axis=(1, 3))
    edges = lo + box * np.arange(n_box + 1)
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
    frac = counts / n
    tol = c * np.sqrt(mass * (1.0 - mass) / n) + 1e-4
    bad = np.abs(frac - mass) > tol
    assert not bad.any(), (frac[bad], mass[bad], tol[bad])
    assert abs(mass.sum() - frac.sum()) < 1e-3  # the region holds (almost) all the mass


# --------------------------------------------------------------------------------------
# 2D toy data sets
# --------------------------------------------------------------------------------------


def test_names_sorted_and_complete() -> None:
    assert ds.names() == EXPECTED_NAMES
    assert ds.names() is not ds.names()  # a fresh list: callers cannot mutate the registry


@pytest.mark.parametrize("name", ds.names())
def test_sample_shape_dtype_finite(name: str) -> None:
    for n in (1, 7, 1000):
        x = ds.sample(name, n, seed=0)
        assert isinstance(x, np.ndarray)
        assert x.shape == (n, 2)
        assert x.dtype == np.float64
        assert np.all(np.isfinite(x))


@pytest.mark.parametrize("name", ds.names())
def test_sample_seeds_reproducible(name: str) -> None:
    a = ds.sample(name, 500, seed=0)
    np.testing.assert_array_equal(a, ds.sample(name, 500, seed=0))
    np.testing.assert_array_equal(a, ds.sample(name, 500, seed=np.random.default_rng(0)))
    assert not np.array_equal(a, ds.sample(name, 500, seed=1))
    rng = np.random.default_rng(5)  # a shared generator advances: two draws differ
    assert not np.array_equal(ds.sample(name, 500, seed=rng), ds.sample(name, 500, seed=rng))


@pytest.mark.parametrize("name", ds.names())
def test_sample_scale_is_toy_scale(name: str) -> None:
    x = ds.sample(name, 20_000, seed=0)
    assert np.quantile(np.abs(x), 0.99) <= 4.0
    assert np.abs(x).max() < 6.0
    assert np.all(x.std(axis=0)[:1] > 0.5)  # not collapsed


@pytest.mark.parametrize("name", ds.names())
def test_sample_does_not_touch_global_rng(name: str) -> None:
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    ds.sample(name, 100)
    ds.sample(name, 100, seed=3)
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1])
    assert torch.equal(torch_state, torch.get_rng_state())


def test_spirals_is_alias_of_2spirals() -> None:
    np.testing.assert_array_equal(
        ds.sample("spirals", 300, seed=4), ds.sample("2spirals", 300, seed=4)
    )


def test_line_has_rank_exactly_one() -> None:
    x = ds.sample("line", 5000, seed=0)
    eig = np.linalg.eigvalsh(np.cov(x, rowvar=False))
    assert eig[0] == 0.0
    assert eig[1] > 1.0
    assert np.linalg.matrix_rank(x - x.mean(axis=0)) == 1
    assert x[:, 0].min() >= -4.0 and x[:, 0].max() <= 4.0


def test_checkerboard_log_prob_integrates_to_one() -> None:
    pts, _ = midpoint_grid(-5.0, 5.0, 0.05)  # no midpoint on a square's edge
    lp = ds.log_prob("checkerboard", pts)
    assert np.all((lp == -np.log(32.0)) | (lp == -np.inf))
    assert np.exp(lp).sum() * 0.05**2 == pytest.approx(1.0, abs=1e-12)


def test_eight_gaussians_log_prob_integrates_to_one() -> None:
    pts, _ = midpoint_grid(-7.0, 7.0, 0.025)
    assert np.exp(ds.log_prob("8gaussians", pts)).sum() * 0.025**2 == pytest.approx(1.0, abs=1e-8)


def test_checkerboard_log_prob_support() -> None:
    x = ds.sample("checkerboard", 20_000, seed=0)
    assert np.all(ds.log_prob("checkerboard", x) == -np.log(32.0))  # every sample in support
    on = np.array([[1.0, 1.0], [-3.0, -3.0], [-1.0, 1.0 - 2.0], [0.0, 0.0], [4.0, 4.0]])
    off = np.array([[3.0, 1.0], [-3.0, -1.0], [1.0, 3.0], [4.5, 0.5], [0.5, -4.5], [9.0, 9.0]])
    np.testing.assert_array_equal(ds.log_prob("checkerboard", on), np.full(5, -np.log(32.0)))
    np.testing.assert_array_equal(ds.log_prob("checkerboard", off), np.full(6, -np.inf))


@pytest.mark.parametrize(
    ("name", "lo", "hi", "sub"), [("checkerboard", -5.0, 5.0, 4), ("8gaussians", -5.0, 5.0, 40)]
)
def test_toy_log_prob_consistent_with_sample(name: str, lo: float, hi: float, sub: int) -> None:
    x = ds.sample(name, 200_000, seed=11)
    assert_histogram_matches_density(x, lambda p: ds.log_prob(name, p), lo, hi, 1.0, sub)


# The documented 8gaussians: centres (4 / 1.414) (cos, sin)(j pi / 4), std 0.5 / 1.414.
ANGLES = np.arange(8) * np.pi / 4
CENTRES = 4.0 / 1.414 * np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)


def test_eight_gaussians_matches_documented_definition() -> None:
    x = ds.sample("8gaussians", 200_000, seed=5)
    var = (4.0 / 1.414) ** 2 / 2 + (0.5 / 1.414) ** 2
    assert_moments(x, np.zeros(2), var * np.eye(2))
    ref = ds.GaussianMixture(
        np.full(8, 1 / 8), CENTRES, np.broadcast_to((0.5 / 1.414) ** 2 * np.eye(2), (8, 2, 2))
    )
    np.testing.assert_allclose(
        ds.log_prob("8gaussians", x[:100]), ref.log_prob(x[:100]), rtol=1e-12
    )


def test_toy_log_prob_detects_a_wrong_density() -> None:
    # The consistency check has power: a sampler with a different spread fails it.
    x = ds.GaussianMixture(
        np.full(8, 1 / 8), CENTRES, np.broadcast_to(0.2 * np.eye(2), (8, 2, 2))
    ).sample(200_000, seed=11)
    with pytest.raises(AssertionError):
        assert_histogram_matches_density(
            x, lambda p: ds.log_prob("8gaussians", p), -5.0, 5.0, 1.0, 40
        )


@pytest.mark.parametrize("name", EXACT)
def test_toy_log_prob_array_types(name: str) -> None:
    x = ds.sample(name, 50, seed=0)
    ref = ds.log_prob(name, x)
    assert isinstance(ref, np.ndarray) and ref.shape == (50,) and ref.dtype == np.float64
    out32 = ds.log_prob(name, x.astype(np.float32))
    assert out32.dtype == np.float32
    out_t = ds.log_prob(name, torch.from_numpy(x))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("name", ds.names())
def test_toy_distribution_draws_the_data_set(name: str) -> None:
    dist = ds.ToyDistribution(name)
    torch.manual_seed(0)
    x = dist.sample((30_000,))
    assert x.shape == (30_000, 2) and x.dtype == torch.float64
    ref = ds.sample(name, 30_000, seed=1)
    # same law as sample(): per-coordinate two-sample KS tests at a fixed seed
    for j in range(2):
        assert stats.ks_2samp(x[:, j].numpy(), ref[:, j]).pvalue > 1e-3
    assert dist.sample().shape == (2,) and dist.sample((3, 4)).shape == (3, 4, 2)
    assert dist.sample((0,)).shape == (0, 2)


def test_toy_distribution_is_reproducible_under_torch_seed_and_streams() -> None:
    dist = ds.ToyDistribution("checkerboard")
    torch.manual_seed(3)
    a, b = dist.sample((100,)), dist.sample((100,))
    torch.manual_seed(3)
    torch.testing.assert_close(dist.sample((100,)), a)
    assert not torch.equal(a, b)  # a stream: each call draws fresh points


@pytest.mark.parametrize("name", EXACT)
def test_toy_distribution_log_prob_is_the_exact_density(name: str) -> None:
    dist = ds.ToyDistribution(name)
    x = torch.from_numpy(ds.sample(name, 60, seed=2))
    torch.testing.assert_close(dist.log_prob(x), ds.log_prob(name, x))
    assert dist.log_prob(x.reshape(3, 20, 2)).shape == (3, 20)
    if name == "checkerboard":
        assert dist.log_prob(torch.tensor([3.0, 1.0])) == -np.inf  # off the squares


def test_toy_distribution_errors_and_repr() -> None:
    with pytest.raises(ValueError, match="dataset name"):
        ds.ToyDistribution("chequerboard")
    with pytest.raises(NotImplementedError, match="'moons' has no exact density"):
        ds.ToyDistribution("moons").log_prob(torch.zeros(1, 2))
    assert repr(ds.ToyDistribution("moons")) == "ToyDistribution('moons')"


class _CountingToy(ds.ToyDistribution):
    """A ToyDistribution that keeps every draw it hands out."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.draws: list[torch.Tensor] = []

    def sample(self, sample_shape=()) -> torch.Tensor:
        x = super().sample(sample_shape)
        self.draws.append(x.reshape(-1, 2))
        return x


def test_fit_streams_a_toy_distribution() -> None:
    """A distribution end is a stream: every training batch is a fresh draw of it (one draw
    of ``batch_size`` points per step, no point seen twice), not a resample of a fixed set."""
    from sitransport import MLPSpec, fit

    target = _CountingToy("checkerboard")
    flow = fit(
        "gaussian", target, steps=30, network=MLPSpec(width=16, depth=2), progress=False, seed=0
    )
    y = flow.push_forward(np.zeros((5, 2)))
    assert y.shape == (5, 2) and np.all(np.isfinite(y))
    batch = flow.config.training.batch_size
    batches = [x for x in target.draws if len(x) == batch]
    assert len(batches) >= 30  # one draw per step (at most one more, drawn ahead)
    seen = torch.cat(target.draws)
    assert len(torch.unique(seen, dim=0)) == len(seen) > 30 * batch  # all distinct points
    assert bool(torch.isfinite(ds.log_prob("checkerboard", seen)).all())  # the target law


# --------------------------------------------------------------------------------------
# Gaussians and mixtures
# --------------------------------------------------------------------------------------

MEAN3 = np.array([1.0, -2.0, 0.5])
COV3 = np.array([[2.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 0.5]])


def test_gaussian_sample_moments() -> None:
    x = ds.gaussian(200_000, MEAN3, COV3, seed=0)
    assert x.shape == (200_000, 3) and x.dtype == np.float64
    assert_moments(x, MEAN3, COV3)
    np.testing.assert_array_equal(x, ds.gaussian(200_000, MEAN3, COV3, seed=0))


def test_gaussian_accepts_lists_and_tensors() -> None:
    a = ds.gaussian(20, MEAN3.tolist(), COV3.tolist(), seed=1)
    b = ds.gaussian(20, torch.from_numpy(MEAN3), torch.from_numpy(COV3), seed=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("k", "d"), [(1, 1), (3, 2), (4, 3)])
def test_mixture_sample_moments(k: int, d: int) -> None:
    gm = ds.GaussianMixture.random(k, d, seed=k + d)
    assert_moments(gm.sample(200_000, seed=2), gm.mean, gm.cov)


def test_mixture_moments_closed_form() -> None:
    w = np.array([0.25, 0.75])
    mu = np.array([[0.0, 0.0], [4.0, 0.0]])
    gm = ds.GaussianMixture(w, mu, np.stack([np.eye(2), 2 * np.eye(2)]))
    np.testing.assert_allclose(gm.mean, [3.0, 0.0])
    # x-variance: 0.25 * 1 + 0.75 * 2 + Var(component mean) = 1.75 + 0.25 * 0.75 * 16 = 4.75
    np.testing.assert_allclose(gm.cov, [[4.75, 0.0], [0.0, 1.75]])
    g = ds.Gaussian(MEAN3, COV3)
    np.testing.assert_array_equal(g.mean, MEAN3)
    np.testing.assert_allclose(g.cov, COV3, rtol=0, atol=1e-15)
    assert g.dim == 3 and g.n_components == 1
    np.testing.assert_array_equal(g.weights, [1.0])


def test_mixture_2d_log_prob_integrates_to_one() -> None:
    gm = ds.GaussianMixture.random(3, 2, seed=0)
    sd = np.sqrt(np.linalg.eigvalsh(gm.covs).max())
    lo = float(np.floor(gm.means.min() - 9 * sd))
    hi = float(np.ceil(gm.means.max() + 9 * sd))
    pts, _ = midpoint_grid(lo, hi, 0.04)
    assert np.exp(gm.log_prob(pts)).sum() * 0.04**2 == pytest.approx(1.0, abs=1e-8)


def test_mixture_2d_log_prob_consistent_with_sample() -> None:
    gm = ds.GaussianMixture.random(3, 2, seed=0, scale=1.5)
    x = gm.sample(200_000, seed=3)
    lo = float(np.floor(x.min())) - 1.0
    hi = float(np.ceil(x.max())) + 1.0
    assert_histogram_matches_density(x, gm.log_prob, lo, hi, 1.0, 40)


def scipy_log_prob(gm: ds.GaussianMixture, x: np.ndarray) -> np.ndarray:
    terms = [
        np.log(w) + np.atleast_1d(stats.multivariate_normal(m, c).logpdf(x))
        for w, m, c in zip(gm.weights, gm.means, gm.covs, strict=True)
    ]
    return logsumexp(np.stack(terms), axis=0)


mixtures = st.builds(
    ds.GaussianMixture.random,
    k=st.integers(1, 4),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.1, 5.0),
)


def sample_points(gm: ds.GaussianMixture) -> np.ndarray:
    x = gm.sample(40, seed=0)
    return np.concatenate([x, 3.0 * x - 2.0])  # typical points and tail points


@given(mixtures)
def test_mixture_log_prob_matches_scipy(gm: ds.GaussianMixture) -> None:
    x = sample_points(gm)
    np.testing.assert_allclose(gm.log_prob(x), scipy_log_prob(gm, x), rtol=1e-10, atol=1e-10)


@given(st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_gaussian_log_prob_matches_scipy(d: int, seed: int) -> None:
    g = ds.Gaussian.random(1, d, seed=seed)
    assert isinstance(g, ds.Gaussian)
    x = sample_points(g)
    ref = np.atleast_1d(stats.multivariate_normal(g.mean, g.cov).logpdf(x))
    np.testing.assert_allclose(g.log_prob(x), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        g.score(x), -np.linalg.solve(g.cov, (x - g.mean).T).T, rtol=1e-9, atol=1e-9
    )


@given(mixtures)
def test_mixture_score_matches_autograd(gm: ds.GaussianMixture) -> None:
    xt = torch.from_numpy(sample_points(gm)).requires_grad_(True)
    (grad,) = torch.autograd.grad(gm.log_prob(xt).sum(), xt)
    score = gm.score(xt.detach())
    torch.testing.assert_close(score, grad, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gm.score(xt.detach().numpy()), score.numpy(), rtol=1e-14, atol=0)


@given(mixtures)
def test_to_torch_log_prob_agrees(gm: ds.GaussianMixture) -> None:
    x = sample_points(gm)
    dist = gm.to_torch()
    assert isinstance(dist, torch.distributions.MixtureSameFamily)
    np.testing.assert_allclose(
        dist.log_prob(torch.from_numpy(x)).numpy(), gm.log_prob(x), rtol=1e-10, atol=1e-10
    )


def test_gaussian_to_torch_is_multivariate_normal() -> None:
    g = ds.Gaussian(MEAN3, COV3)
    dist = g.to_torch(dtype=torch.float32)
    assert isinstance(dist, torch.distributions.MultivariateNormal)
    assert dist.loc.dtype == torch.float32
    x = g.sample(30, seed=0)
    np.testing.assert_allclose(
        g.to_torch().log_prob(torch.from_numpy(x)).numpy(), g.log_prob(x), rtol=1e-12
    )
    np.testing.assert_allclose(dist.covariance_matrix.numpy(), COV3, rtol=1e-6)


@pytest.mark.parametrize("method", ["log_prob", "score"])
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.float64])
def test_mixture_keeps_array_type(method: str, x_dtype: torch.dtype, device: torch.device) -> None:
    gm = ds.GaussianMixture.random(3, 2, seed=0)
    x64 = gm.sample(20, seed=1)
    ref = getattr(gm, method)(x64)
    assert isinstance(ref, np.ndarray) and ref.dtype == np.float64
    out_np = getattr(gm, method)(x64.astype(np.float32))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    xt = torch.tensor(x64, dtype=x_dtype, device=device, requires_grad=True)
    out = getattr(gm, method)(xt)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == x_dtype and out.device == xt.device
    assert out.shape == ((20,) if method == "log_prob" else (20, 2))
    assert out.requires_grad  # differentiable through torch ops
    rtol = 1e-12 if x_dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(out.detach().cpu().numpy(), ref, rtol=rtol, atol=rtol)


def test_parameters_read_only_and_copied() -> None:
    w = np.array([0.5, 0.5])
    mu = np.zeros((2, 2))
    covs = np.stack([np.eye(2), np.eye(2)])
    gm = ds.GaussianMixture(w, mu, covs)
    w[0], mu[0, 0], covs[0, 0, 0] = 9.0, 9.0, 9.0  # mutating inputs leaves gm intact
    np.testing.assert_array_equal(gm.weights, [0.5, 0.5])
    np.testing.assert_array_equal(gm.means, np.zeros((2, 2)))
    assert gm.covs[0, 0, 0] == 1.0
    for attr in ("weights", "means", "covs", "mean", "cov"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(gm, attr)[...] = 0.0
        with pytest.raises(AttributeError):
            setattr(gm, attr, None)
    with pytest.raises(AttributeError):
        gm.dim = 3  # type: ignore[misc]


def test_weights_tolerance_and_no_renormalisation() -> None:
    w = np.array([0.5, 0.5 + 5e-9])
    gm = ds.GaussianMixture(w, np.zeros((2, 1)), np.ones((2, 1, 1)))
    np.testing.assert_array_equal(gm.weights, w)  # kept as given


def test_random_mixture_is_well_conditioned_and_reproducible() -> None:
    gm = ds.GaussianMixture.random(5, 4, seed=7)
    eig = np.linalg.eigvalsh(gm.covs)
    assert eig.min() >= 0.25 - 1e-12 and eig.max() <= 1.0 + 1e-12
    assert gm.weights.min() >= 0.5 / 5 - 1e-12
    np.testing.assert_array_equal(gm.means, ds.GaussianMixture.random(5, 4, seed=7).means)
    assert type(gm) is ds.GaussianMixture
    assert "n_components=5" in repr(gm) and "dim=4" in repr(gm)


# --------------------------------------------------------------------------------------
# error paths
# --------------------------------------------------------------------------------------

VALID = re.escape(", ".join(EXPECTED_NAMES))
GM = ds.GaussianMixture.random(2, 2, seed=0)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=f"unknown dataset name 'nope'; valid values are: {VALID}"):
        ds.sample("nope", 10)
    with pytest.raises(ValueError, match=VALID):
        ds.log_prob("nope", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="valid values"):
        ds.sample(3, 10)  # type: ignore[arg-type]


def test_log_prob_without_exact_density() -> None:
    with pytest.raises(ValueError, match="'moons' has no exact density.*8gaussians, checkerboard"):
        ds.log_prob("moons", np.zeros((3, 2)))


SAMPLERS = {
    "sample": lambda n: ds.sample("moons", n, seed=0),
    "gaussian": lambda n: ds.gaussian(n, [0.0], [[1.0]], seed=0),
    "GaussianMixture.sample": lambda n: GM.sample(n, seed=0),
}


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_bad_n(sampler) -> None:
    for n in (0, -1):
        with pytest.raises(ValueError, match=f"n must be an integer >= 1, got {n}"):
            sampler(n)
    for n in (2.5, True, "3", np.float64(3.0)):
        with pytest.raises(TypeError, match="n must be an integer >= 1"):
            sampler(n)
    assert sampler(np.int64(3)).shape[0] == 3


def test_bad_seed() -> None:
    with pytest.raises(TypeError, match="seed must be None, a numpy.random.Generator or an int"):
        ds.sample("line", 3, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed must be None, .* got str '0'"):
        GM.sample(3, seed="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\], got -1"):
        ds.gaussian(3, [0.0], [[1.0]], seed=-1)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        ds.draw("gaussian", 3, 2**70)


def test_cov_not_spd() -> None:
    with pytest.raises(
        ValueError, match="cov must be symmetric positive definite, got smallest eigenvalue -0.3"
    ):
        ds.gaussian(10, [0.0, 0.0], [[1.0, 0.0], [0.0, -0.3]])
    with pytest.raises(ValueError, match="smallest eigenvalue 0"):
        ds.Gaussian([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="cov must be symmetric positive definite, got an asym"):
        ds.Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"covs\[1\] must be symmetric positive definite"):
        ds.GaussianMixture([0.5, 0.5], np.zeros((2, 2)), [np.eye(2), -np.eye(2)])


def test_mean_cov_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"cov must have shape \(3, 3\) to match mean of length 3"):
        ds.gaussian(10, [0.0, 0.0, 0.0], np.eye(2))
    with pytest.raises(ValueError, match=r"mean must be 1-D of shape \(d,\)"):
        ds.Gaussian(np.zeros((1, 2)), np.eye(2))
    with pytest.raises(ValueError, match=r"means must have shape \(k, d\) = \(2, d\)"):
        ds.GaussianMixture([0.5, 0.5], np.zeros((3, 2)), np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError, match=r"covs must have shape \(k, d, d\) = \(2, 2, 2\)"):
        ds.GaussianMixture([0.5, 0.5], np.zeros((2, 2)), np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError, match=r"weights must have shape \(k,\)"):
        ds.GaussianMixture([[1.0]], np.zeros((1, 2)), np.eye(2)[None])


def test_bad_weights() -> None:
    means, covs = np.zeros((2, 1)), np.ones((2, 1, 1))
    with pytest.raises(
        ValueError, match=r"weights must sum to 1 within 1e-06, got sum\(weights\)=1.1"
    ):
        ds.GaussianMixture([0.5, 0.6], means, covs)
    with pytest.raises(ValueError, match="weights must sum to 1"):
        ds.GaussianMixture([0.5, 0.5 + 1e-5], means, covs)
    # float32 weights (sum 1 + 1.5e-8) pass the one tolerance of every mixture check
    ds.GaussianMixture(np.full(10, 0.1, np.float32), np.zeros((10, 1)), np.ones((10, 1, 1)))
    with pytest.raises(ValueError, match=r"weights must all be > 0 .*, got weights\[0\] = -0.5"):
        ds.GaussianMixture([-0.5, 1.5], means, covs)
    with pytest.raises(ValueError, match="weights must all be > 0"):
        ds.GaussianMixture([0.0, 1.0], means, covs)


def test_bad_parameter_values() -> None:
    with pytest.raises(ValueError, match="mean must be finite"):
        ds.Gaussian([np.nan, 0.0], np.eye(2))
    with pytest.raises(TypeError, match="weights must be an array of real numbers"):
        ds.GaussianMixture(["a", "b"], np.zeros((2, 1)), np.ones((2, 1, 1)))
    with pytest.raises(TypeError, match="cov must be an array of real numbers"):
        ds.Gaussian([0.0], [[1.0 + 1j]])
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        GM.to_torch(dtype=torch.int64)
    with pytest.raises(ValueError, match="k must be 1 for a Gaussian, got 2"):
        ds.Gaussian.random(2, 3)
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        ds.GaussianMixture.random(0, 2)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        ds.GaussianMixture.random(2, 2, scale=-1.0)


BAD_X_CALLS = {
    "log_prob(checkerboard)": lambda x: ds.log_prob("checkerboard", x),
    "log_prob(8gaussians)": lambda x: ds.log_prob("8gaussians", x),
    "GaussianMixture.log_prob": GM.log_prob,
    "GaussianMixture.score": GM.score,
}


@pytest.mark.parametrize("call", BAD_X_CALLS.values(), ids=BAD_X_CALLS.keys())
def test_bad_x(call) -> None:
    with pytest.raises(TypeError, match="x must have a floating dtype.*int64"):
        call(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="x must have a floating dtype.*int64"):
        call(torch.zeros((3, 2), dtype=torch.int64))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, torch.Tensor"):
        call([[0.0, 0.0]])
    x = np.zeros((3, 2))
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN and 0 infinite"):
        call(x)
    x[1, 0] = np.inf
    with pytest.raises(ValueError, match="x must be finite, got 0 NaN and 1 infinite"):
        call(x)
    with pytest.raises(ValueError, match=r"x must have trailing shape \(2,\), got shape \(3, 3\)"):
        call(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(n, d\), got shape \(2,\)"):
        call(np.zeros(2))
