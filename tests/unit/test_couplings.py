"""Couplings: exact minibatch OT recovers planted permutations and matches POT; Sinkhorn is
stable at small regularisation; pairs are drawn without replacement."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sitransport.couplings import ExactOT, Independent, Sinkhorn, get_coupling


@st.composite
def planted_permutation(draw):
    """Distinct cells of a grid of spacing 3 and a permuted copy jittered by < 0.05: the
    answer is the inverse permutation (any other assignment moves a point by > 2.9)."""
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n ** (1 / d))) + 2
    cells = rng.choice(side**d, size=n, replace=False)
    x0 = np.stack(np.unravel_index(cells, (side,) * d), axis=1).astype(np.float64) * 3.0
    perm = rng.permutation(n)
    x1 = x0[perm] + rng.uniform(-0.05, 0.05, size=(n, d))
    return torch.from_numpy(x0), torch.from_numpy(x1), perm


@given(planted_permutation())
def test_exact_ot_recovers_planted_permutation(problem):
    x0, x1, perm = problem
    for processes in (0, 1):
        a, b = ExactOT(processes=processes).submit(x0, x1)()
        torch.testing.assert_close(a, x0)
        # x0[i] must be paired with its jittered copy: x1[j] with perm[j] == i
        inverse = np.argsort(perm)
        torch.testing.assert_close(b, x1[torch.from_numpy(inverse)])


@given(st.integers(2, 64), st.integers(1, 4), st.integers(0, 2**31))
def test_exact_ot_cost_equals_pot(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = 2 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1
    a, b = ExactOT(processes=0).pair(x0, x1)
    cost = (a - b).pow(2).sum(1).mean()
    w = np.full(n, 1.0 / n)
    exact = ot.emd2(w, w, ot.dist(x0.numpy(), x1.numpy()))
    assert float(cost) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    # without replacement: the paired x1 is a permutation of x1
    assert sorted(map(tuple, b.numpy().round(12))) == sorted(map(tuple, x1.numpy().round(12)))


def test_exact_ot_unequal_sizes_uses_the_plan():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    x1 = torch.cat([x0, x0]) + 0.01  # every x0 has two copies: it must be paired with one
    a, b = ExactOT().pair(x0, x1, g)
    assert torch.allclose(b, a + 0.01)


def test_sinkhorn_is_stable_at_small_regularisation():
    """At reg -> 0 the log-domain plan stays finite, keeps its marginals and its cost
    approaches the exact OT cost (POT's default solver overflows here)."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(128, 2, generator=g, dtype=torch.float64)
    x1 = 3 * torch.randn(128, 2, generator=g, dtype=torch.float64) + 2
    cost = torch.cdist(x0, x1).pow(2).numpy()
    w = np.full(128, 1 / 128)
    exact = ot.emd2(w, w, cost)
    for reg, rel in ((1e-2, 0.02), (1e-3, 0.002)):
        plan = Sinkhorn(reg=reg).plan(x0, x1).numpy()
        assert np.isfinite(plan).all()
        np.testing.assert_allclose(plan.sum(1), w, rtol=1e-3)
        np.testing.assert_allclose(plan.sum(0), w, rtol=1e-3)
        assert abs((plan * cost).sum() - exact) / exact < rel
    with np.errstate(all="ignore"), pytest.warns(UserWarning):
        naive = ot.sinkhorn(w, w, cost, 1e-3 * cost.mean())
    marginal_error = np.abs(np.nan_to_num(naive).sum(0) - w).max()
    assert not np.isfinite(naive).all() or marginal_error > 1e-3


def test_sinkhorn_pairs_keep_every_x0():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(64, 2, generator=g)
    x1 = torch.randn(64, 2, generator=g)
    a, b = Sinkhorn(reg=0.01).pair(x0, x1, g)
    assert torch.equal(a, x0) and b.shape == x1.shape
    a2, b2 = Sinkhorn(reg=0.01, replace=True).pair(x0, x1, g)
    assert a2.shape == x0.shape


def test_registry_and_errors():
    assert isinstance(get_coupling("independent"), Independent)
    assert get_coupling({"name": "sinkhorn", "reg": 0.1}).reg == 0.1
    assert get_coupling(get_coupling("exact_ot").spec()) == ExactOT()
    with pytest.raises(ValueError, match="unknown coupling 'ot'; valid values are: exact_ot"):
        get_coupling("ot")
    with pytest.raises(ValueError, match="reg must be finite and > 0"):
        Sinkhorn(reg=0.0)
