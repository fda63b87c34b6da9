"""EntropicOT (geomloss) against known answers: the Gaussian closed form of the entropic plan
(Janati et al. 2020), the blur as the spread of a partner around its exact-OT image, the cost
of exact OT at small blur, unbalanced marginals, determinism, backends and bad input."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

import sitransport as st
from sitransport.couplings import EntropicOT, get_coupling
from sitransport.couplings import entropic as entropic_module
from sitransport.couplings.entropic import draw_partners, draw_rows
from tests.helpers import TINY


def _gaussian(n: int, cov: np.ndarray, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    root = torch.linalg.cholesky(torch.as_tensor(cov, dtype=torch.float64))
    return torch.randn(n, cov.shape[0], generator=g, dtype=torch.float64) @ root.T


def _sqrtm(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(w)) @ v.T


def _entropic_cross_covariance(a: np.ndarray, b: np.ndarray, sigma2: float) -> np.ndarray:
    """Janati et al. (arXiv:2006.02572), cost |x - y|^2 with regularisation 2 sigma^2 KL (the
    kernel exp(-|x - y|^2 / (2 sigma^2)), i.e. geomloss's eps = blur^2 = sigma^2):
    C = 1/2 (A^1/2 D A^-1/2 - sigma^2 I), D = (4 A^1/2 B A^1/2 + sigma^4 I)^1/2."""
    ra = _sqrtm(a)
    d = _sqrtm(4 * ra @ b @ ra + sigma2**2 * np.eye(a.shape[0]))
    return 0.5 * (ra @ d @ np.linalg.inv(ra) - sigma2 * np.eye(a.shape[0]))


def test_one_dimensional_closed_form_matches_a_fine_grid_pot_plan():
    """The mapping eps = sigma^2 checked independently: POT's Sinkhorn on a fine grid of two
    unit Gaussians with the kernel exp(-C / eps), C = |x - y|^2 / 2."""
    eps = 0.5
    grid = np.linspace(-7, 7, 701)
    w = np.exp(-(grid**2) / 2)
    w /= w.sum()
    plan = ot.sinkhorn(w, w, 0.5 * (grid[:, None] - grid[None, :]) ** 2, eps, numItermax=5000)
    cross = float((plan * np.outer(grid, grid)).sum())
    expected = _entropic_cross_covariance(np.eye(1), np.eye(1), eps)[0, 0]
    assert abs(cross - expected) < 1e-3


@pytest.mark.parametrize("blur", [0.5, 1.0])
def test_pairs_have_the_gaussian_closed_form_cross_covariance(blur):
    a = np.array([[1.0, 0.3], [0.3, 0.5]])
    b = np.array([[2.0, -0.4], [-0.4, 0.8]])
    n = 1000
    x0, x1 = _gaussian(n, a, 0), _gaussian(n, b, 1)
    p0, p1 = EntropicOT(blur=blur, iterations=100).pair(x0, x1, torch.Generator().manual_seed(2))
    cross = (p0.T @ p1 / n).numpy()
    expected = _entropic_cross_covariance(a, b, blur**2)
    # sampling error of a second moment (and of the empirical plan): c / sqrt(n)
    np.testing.assert_allclose(cross, expected, atol=4.0 / math.sqrt(n))


def test_blur_is_the_spread_of_a_partner_around_its_exact_ot_image():
    """Between two samples of N(0, I) the exact map is the identity; the entropic partner of
    x has mean c x and variance 1 - c^2 ~ blur^2 per coordinate (closed form), so the mean
    squared displacement per coordinate is 2 - 2c = blur^2 (1 + O(blur))."""
    n, d, blur = 1200, 2, 0.3
    x0, x1 = _gaussian(n, np.eye(d), 3), _gaussian(n, np.eye(d), 4)
    p0, p1 = EntropicOT(blur=blur).pair(x0, x1, torch.Generator().manual_seed(0))
    spread = float((p1 - p0).pow(2).sum(1).mean()) / d
    c = (math.sqrt(4 + blur**4) - blur**2) / 2
    assert abs(spread - (2 - 2 * c)) < 0.15 * blur**2
    assert abs(spread - blur**2) < blur**3 + 0.15 * blur**2


def test_small_blur_cost_is_exact_ot_cost_within_the_entropic_bound():
    """The entropic pairs' cost exceeds exact OT's (POT emd2) by about d blur^2 (and the
    per-row draws fluctuate by the spread of the plan's rows)."""
    n, d, blur = 512, 2, 0.1
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64) + torch.tensor([2.0, 0.0])
    w = np.full(n, 1.0 / n)
    exact = ot.emd2(w, w, torch.cdist(x0, x1).pow(2).numpy())
    costs = []
    for seed in range(3):
        p0, p1 = EntropicOT(blur=blur, iterations=100).pair(
            x0, x1, torch.Generator().manual_seed(seed)
        )
        costs.append(float((p1 - p0).pow(2).sum(1).mean()))
    assert abs(np.mean(costs) - exact) <= 2 * d * blur**2
    independent = float((x1 - x0).pow(2).sum(1).mean())
    assert np.mean(costs) < exact + 0.05 * (independent - exact)


@pytest.fixture(scope="module")
def outliers():
    """A source blob and a target of the same blob plus a far cluster of 10% outliers."""
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(300, 2, generator=g, dtype=torch.float64)
    blob = torch.randn(300, 2, generator=g, dtype=torch.float64)
    far = 0.3 * torch.randn(30, 2, generator=g, dtype=torch.float64) + 8.0
    return x0, torch.cat([blob, far])


def test_unbalanced_plan_gives_a_far_cluster_almost_no_partners(outliers):
    x0, x1 = outliers
    far = lambda p1: float((p1[:, 0] > 4.0).double().mean())  # noqa: E731
    g = torch.Generator().manual_seed(0)
    balanced = far(EntropicOT(blur=0.2).pair(x0, x1, g)[1])
    unbalanced = far(EntropicOT(blur=0.2, reach=1.0).pair(x0, x1, g)[1])
    assert balanced > 0.07  # balanced OT must carry the outliers' 9% of the mass
    assert unbalanced < 0.005


def test_unbalanced_pairs_follow_the_plans_marginals(outliers):
    """Rows drawn by plan mass, partners by row: the pairs' frequencies match the dense
    plan's marginals and its mass on a block of the plan, within c / sqrt(m)."""
    x0, x1 = outliers
    pot = EntropicOT(blur=0.3, reach=1.0).potentials(x0, x1)
    cost = 0.5 * torch.cdist(x0, x1).pow(2)
    plan = torch.exp((pot.f[:, None] + pot.g[None, :] - cost) / pot.eps) / (300 * 330)
    plan = plan / plan.sum()
    m = 100_000
    g = torch.Generator().manual_seed(1)
    rows = draw_rows(pot, m, g)
    cols = draw_partners(pot, rows, g)
    left, near = x0[:, 0] < 0, x1[:, 1] < 0
    for freq, mass in (
        (left[rows].double().mean(), plan[left].sum()),
        (near[cols].double().mean(), plan[:, near].sum()),
        ((left[rows] & near[cols]).double().mean(), plan[left][:, near].sum()),
    ):
        assert abs(float(freq - mass)) < 4 * math.sqrt(0.25 / m)
    # row masses are unequal: rows far from the target carry less than 1 / n0
    assert float(plan.sum(1).max() / plan.sum(1).min()) > 2


def test_balanced_pairs_use_every_row_once_and_columns_by_the_plan():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(200, 3, generator=g), torch.randn(250, 3, generator=g) + 1.0
    p0, p1 = EntropicOT(blur=0.5).pair(x0, x1, g)
    assert p0 is x0 and p1.shape == (200, 3)


def test_pairs_are_deterministic_under_a_seed_and_vary_across_seeds():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(128, 2, generator=g), torch.randn(128, 2, generator=g)
    coupling = EntropicOT(blur=0.3)
    draw = lambda seed: coupling.pair(x0, x1, torch.Generator().manual_seed(seed))[1]  # noqa: E731
    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_backends_agree_and_chunks_change_nothing(monkeypatch):
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(96, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(80, 2, generator=g, dtype=torch.float64) + 0.5
    dense = EntropicOT(blur=0.3, backend="tensorized").potentials(x0, x1)
    monkeypatch.setattr(entropic_module, "CHUNK", 1000)  # rows in chunks of 12
    chunked = EntropicOT(blur=0.3, backend="chunked").potentials(x0, x1)
    torch.testing.assert_close(dense.f, chunked.f, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(dense.g, chunked.g, rtol=1e-9, atol=1e-9)
    rows = torch.arange(96)
    a = draw_partners(dense, rows, torch.Generator().manual_seed(0))
    b = draw_partners(chunked, rows, torch.Generator().manual_seed(0), chunk=1000)
    assert torch.equal(a, b)


def test_keops_backend_agrees_with_the_dense_one():
    """The optional ``keops`` extra: geomloss's online (KeOps) softmin gives the potentials of
    the dense one (float32, KeOps's usual precision)."""
    pytest.importorskip("pykeops", reason="the keops extra (pykeops) is not installed")
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(64, 2, generator=g)
    x1 = torch.randn(48, 2, generator=g) + 0.5
    dense = EntropicOT(blur=0.3, backend="tensorized").potentials(x0, x1)
    online = EntropicOT(blur=0.3, backend="online").potentials(x0, x1)
    torch.testing.assert_close(dense.f, online.f, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dense.g, online.g, rtol=1e-4, atol=1e-4)


def test_float32_batches_stay_float32_and_keep_the_sample_shape():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(32, 1, 2, 2, generator=g), torch.randn(32, 1, 2, 2, generator=g)
    p0, p1 = EntropicOT().pair(x0, x1, g)
    assert p1.dtype == torch.float32 and p1.shape == (32, 1, 2, 2)


def test_spec_round_trips_through_get_coupling_and_names_are_registered():
    coupling = EntropicOT(blur=0.05, reach=2.0, scaling=0.8, iterations=10, backend="chunked")
    assert get_coupling(coupling.spec()) == coupling
    assert get_coupling("entropic") == EntropicOT()
    assert "entropic" in st.couplings.coupling_names()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"blur": 0.0}, ValueError, "blur"),
        ({"blur": "a"}, TypeError, "blur"),
        ({"reach": -1.0}, ValueError, "reach"),
        ({"scaling": 1.0}, ValueError, "scaling"),
        ({"scaling": None}, TypeError, "scaling"),
        ({"iterations": -1}, ValueError, "iterations"),
        ({"backend": "gpu"}, ValueError, "backend"),
    ],
)
def test_bad_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        EntropicOT(**kwargs)


def test_bad_batches_are_refused():
    coupling = EntropicOT()
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="same sample shape"):
        coupling.pair(x, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="x1 must be finite"):
        coupling.pair(x, torch.full((4, 2), float("nan")))
    with pytest.raises(TypeError, match="x0 must be a floating-point"):
        coupling.pair(torch.zeros(4, 2, dtype=torch.long), x)
    with pytest.raises(TypeError, match="x1 must be a torch.Tensor"):
        coupling.pair(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="x0 must be samples"):
        coupling.pair(torch.zeros(4), x)


def test_fit_with_the_entropic_coupling_runs_and_records_it():
    x0 = st.datasets.sample("moons", 300, seed=0)
    x1 = st.datasets.sample("8gaussians", 300, seed=0)
    flow = st.fit(x0, x1, **dict(TINY, steps=3), coupling="entropic")
    assert flow.config.coupling.name == "entropic"
    assert flow.push_forward(x0[:4]).shape == (4, 2)
    again = st.fit(x0, x1, **dict(TINY, steps=3), coupling={"name": "entropic", "reach": 3.0})
    assert again.config.coupling.options["reach"] == 3.0
