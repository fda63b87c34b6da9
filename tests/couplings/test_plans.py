"""Couplings: exact minibatch OT recovers planted permutations and matches POT, within
blocks for large batches; global OT plans are optimal, drawn from, refreshed when due and
resumable; Sinkhorn is stable at small regularisation; pairs are drawn without replacement."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import sitransport as sit
from sitransport.couplings import (
    ExactOT,
    GlobalOT,
    Independent,
    PlanSampler,
    Sinkhorn,
    get_coupling,
)
from sitransport.couplings.minibatch import MIN_REG


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


@pytest.mark.parametrize("reg", [1e-9, 5e-5])
def test_sinkhorn_below_its_smallest_regularisation_is_refused_before_solving(reg, monkeypatch):
    """Before: ``reg=1e-9`` ran every epsilon-scaling stage to its iteration cap (seconds per
    training step) and only warned about the marginals. Below ``MIN_REG`` the entropic plan's
    cost is within ``reg * log(n0 * n1)`` of the batch's mean cost of exact OT's, so the
    setting is refused, up front, pointing to ``exact_ot``."""

    def solve(*args, **kwargs):
        raise AssertionError("Sinkhorn ran")

    monkeypatch.setattr(ot.bregman, "sinkhorn_epsilon_scaling", solve)
    message = rf"reg must be >= 0.0001 .*, got {reg}.*coupling='exact_ot'"
    with pytest.raises(ValueError, match=message):
        Sinkhorn(reg=reg)
    x = np.random.default_rng(0).normal(size=(64, 2))
    with pytest.raises(ValueError, match=message):
        sit.fit(x, x + 1, coupling={"name": "sinkhorn", "reg": reg}, steps=2, progress=False)
    assert Sinkhorn(reg=MIN_REG).reg == MIN_REG == 1e-4


def _indices(points, rows):
    """The index in ``rows`` of each point; fails unless every point is one of the rows."""
    match = (points[:, None, :] == rows[None, :, :]).all(-1)
    assert bool((match.sum(1) == 1).all()), "a paired point is not one of the batch's rows"
    return match.int().argmax(1)


@pytest.mark.parametrize("replace", [False, True])
def test_sinkhorn_pairs_keep_every_x0(replace, monkeypatch):
    """Pairs are drawn from the entropic plan. ``replace=False``: every ``x0`` once, in
    order, its partner drawn from its row (law ``plan[i] / plan[i].sum()``);
    ``replace=True``: ``n`` pairs ``(i, j) ~ plan``. Over ``N`` pairs the frequencies
    match the plan within 5 binomial standard errors per cell (c / sqrt(N)); pairing at
    random (a uniform plan) misses by more than 10."""
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g) + 1
    coupling = Sinkhorn(reg=0.1, replace=replace)
    plan = coupling.plan(x0, x1)
    monkeypatch.setattr(Sinkhorn, "plan", lambda self, a, b: plan)  # solved once, not per draw
    draws = 500
    counts = torch.zeros_like(plan)
    for _ in range(draws):
        a, b = coupling.pair(x0, x1, g)
        assert a.shape == x0.shape and b.shape == x1.shape
        i, j = _indices(a, x0), _indices(b, x1)
        if not replace:
            assert torch.equal(a, x0)
        counts.index_put_((i, j), torch.ones(len(i), dtype=plan.dtype), accumulate=True)
    if replace:  # one law over all cells, N = draws * n pairs
        expected, n = plan / plan.sum(), draws * len(x0)
    else:  # one law per row, N = draws partners of each x0
        expected, n = plan / plan.sum(1, keepdim=True), draws
    freq = counts / n
    sd = (expected * (1 - expected) / n).sqrt() + 1 / n
    assert float(((freq - expected).abs() / sd).max()) < 5
    if replace:  # every x0 is drawn about n / 8 times, some twice in a batch
        assert float((counts.sum(1) / n - 1 / 8).abs().max()) < 5 * (7 / 64 / n) ** 0.5
    uniform = torch.full_like(expected, float(expected.sum(1).mean()) / expected.shape[1])
    assert float(((uniform - expected).abs() / sd).max()) > 10


def test_registry_and_errors():
    assert isinstance(get_coupling("independent"), Independent)
    assert get_coupling({"name": "sinkhorn", "reg": 0.1}).reg == 0.1
    assert get_coupling(get_coupling("exact_ot").spec()) == ExactOT()
    with pytest.raises(
        ValueError, match="unknown coupling 'optimal'; valid values are: entropic, exact_ot"
    ):
        get_coupling("optimal")
    with pytest.raises(ValueError, match="coupling 'ot' is chosen by fit from the data"):
        get_coupling("ot")
    with pytest.raises(ValueError, match="reg must be finite and > 0"):
        Sinkhorn(reg=0.0)


def _cost(a, b):
    return float((a - b).pow(2).flatten(1).sum(1).mean())


def _emd2(a, b):
    wa, wb = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    return float(ot.emd2(wa, wb, ot.dist(a.flatten(1).numpy(), b.flatten(1).numpy())))


@pytest.mark.parametrize("processes", [0, 1])
@pytest.mark.parametrize(("n", "block", "blocks"), [(512, 256, 2), (600, 256, 3), (300, None, 1)])
def test_block_exact_ot_is_optimal_within_each_block(processes, n, block, blocks):
    """Batches above ``block`` are cut into near-equal consecutive blocks, each paired by
    exact OT: no pair leaves its block, each block's cost is its exact OT cost (POT), and
    the whole pairing costs no more than the drawn one."""
    g = torch.Generator().manual_seed(n)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = 2 * torch.randn(n, 2, generator=g, dtype=torch.float64) + 1
    coupling = ExactOT(processes=processes, block=block)
    a, b = coupling.submit(x0, x1, g)()
    assert torch.equal(a, x0)
    assert coupling.solve_time["count"] == 1 and coupling.solve_time["last"] > 0
    assert _cost(a, b) <= _cost(x0, x1)
    cuts = np.array_split(np.arange(n), blocks)
    for idx in cuts:
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        assert sorted(map(tuple, b[lo:hi].tolist())) == sorted(map(tuple, x1[lo:hi].tolist()))
        assert _cost(a[lo:hi], b[lo:hi]) == pytest.approx(_emd2(x0[lo:hi], x1[lo:hi]), rel=1e-9)
    if blocks > 1:  # block-diagonal: strictly above the optimum of the whole batch
        assert _cost(a, b) > _emd2(x0, x1)


@given(planted_permutation())
def test_global_ot_plan_recovers_planted_permutation(problem):
    """Two whole sets of at most ``n`` points: the plan is their exact OT permutation."""
    x0, x1, perm = problem
    draw = GlobalOT(n=64, processes=0).sampler(x0, x1, seed=0)
    g = torch.Generator().manual_seed(0)
    a, b = draw(256, g)
    assert draw.fixed and len(draw.solve_seconds) == 1
    # every drawn x0 comes with its jittered copy, at distance < 0.05 * sqrt(d)
    assert float((a - b).abs().max()) < 0.05
    plan = draw.state_dict()
    assert sorted(map(tuple, plan["x1"].tolist())) == sorted(map(tuple, x1.tolist()))


def _stream(d=2, shift=0.0):
    return lambda m, g: torch.randn(m, d, generator=g, dtype=torch.float64) * 2 + shift


def test_global_ot_batches_are_pairs_of_an_optimal_plan():
    draw = GlobalOT(n=128, reuse=None, processes=0).sampler(_stream(), _stream(shift=3.0))
    g = torch.Generator().manual_seed(1)
    a, b = draw(500, g)
    plan = draw.state_dict()
    pairs = set(map(tuple, torch.cat([plan["x0"], plan["x1"]], 1).tolist()))
    assert set(map(tuple, torch.cat([a, b], 1).tolist())) <= pairs
    assert len(plan["x0"]) == 128 and plan["weights"] is None
    # the plan's pairing cost is the exact OT cost of its two subsamples (POT)
    assert _cost(plan["x0"], plan["x1"]) == pytest.approx(_emd2(plan["x0"], plan["x1"]), rel=1e-9)
    # and well below the independent pairing of the same points (population values: W2^2 =
    # |shift|^2 = 18 against 18 + 2 tr(4 I) = 34)
    assert _cost(plan["x0"], plan["x1"]) < 0.7 * _cost(plan["x0"], plan["x1"].roll(1, 0))


def test_global_ot_unequal_ends_use_the_weighted_plan():
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(10, 2, generator=g, dtype=torch.float64)
    draw = GlobalOT(n=25, processes=0).sampler(x0, _stream())  # 10 points vs 25 draws
    a, b = draw(4000, g)
    plan = draw.state_dict()
    w = plan["weights"]
    assert w is not None and float(w.sum()) == pytest.approx(1.0)
    assert len(w) <= 10 + 25 - 1
    assert _cost(plan["x0"], plan["x1"]) >= 0
    weighted = float((w * (plan["x0"] - plan["x1"]).pow(2).sum(1)).sum())
    assert weighted == pytest.approx(_emd2(x0, torch.unique(plan["x1"], dim=0)), rel=1e-9)
    # every x0 carries mass 1/10: drawn about 400 times each (binomial sd ~19)
    counts = torch.stack([(a == p).all(1).sum() for p in x0]).double()
    assert float((counts - 400).abs().max()) < 6 * 19


@pytest.mark.parametrize("processes", [0, 1])
def test_global_ot_refreshes_when_due(processes):
    """A new plan once ``reuse * n`` pairs have been drawn; the same plans with or without
    the worker process; ``reuse=None`` and two whole finite sets never refresh."""
    n, reuse, m = 32, 3, 16
    g = torch.Generator().manual_seed(3)
    draw = GlobalOT(n=n, reuse=reuse, processes=processes).sampler(_stream(), _stream(), seed=5)
    ref = GlobalOT(n=n, reuse=reuse, processes=0).sampler(_stream(), _stream(), seed=5)
    h = torch.Generator().manual_seed(3)
    plans = []
    for call in range(20):
        batch = draw(m, g)
        assert len(draw.solve_seconds) == 1 + call * m // (reuse * n)
        plans.append(draw.state_dict()["x0"])
        torch.testing.assert_close(batch, ref(m, h), rtol=0, atol=0)
    changed = [i for i in range(1, 20) if not torch.equal(plans[i], plans[i - 1])]
    assert changed == [6, 12, 18]  # calls after 96 = 3 x 32 pairs drawn from a plan
    once = GlobalOT(n=n, reuse=None, processes=processes).sampler(_stream(), _stream())
    whole = GlobalOT(n=n, reuse=1, processes=processes).sampler(plans[0], plans[1])
    for _ in range(10):
        once(m, g), whole(m, g)
    assert len(once.solve_seconds) == len(whole.solve_seconds) == 1 and whole.fixed


def test_global_ot_state_dict_resumes_across_a_refresh():
    coupling = GlobalOT(n=16, reuse=2, processes=1)
    draw = coupling.sampler(_stream(3), _stream(3, 1.0), seed=7)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        draw(12, g)
    state, gen_state = draw.state_dict(), g.get_state()
    after = [draw(12, g) for _ in range(6)]  # crosses two refreshes
    resumed = coupling.sampler(_stream(3), _stream(3, 1.0), seed=7)
    resumed.load_state_dict(state)
    g.set_state(gen_state)
    for a, b in after:
        c, d = resumed(12, g)
        assert torch.equal(a, c) and torch.equal(b, d)
    assert len(resumed.solve_seconds) == len(draw.solve_seconds)


def test_global_ot_spec_round_trip_and_errors():
    coupling = GlobalOT(n=100, reuse=None, processes=0)
    assert get_coupling(coupling.spec()) == coupling
    assert get_coupling("global_ot") == GlobalOT()
    assert get_coupling(get_coupling("exact_ot").spec()) == ExactOT(block=256)
    x = torch.zeros(5, 2)
    for kwargs, exc, match in [
        ({"n": 1}, ValueError, "n must be an integer >= 2, got 1"),
        ({"n": 2.5}, TypeError, "n must be an integer >= 2, got 2.5"),
        ({"reuse": 0}, ValueError, "reuse must be an integer >= 1, got 0"),
        ({"processes": -1}, ValueError, "processes must be an integer >= 0, got -1"),
    ]:
        with pytest.raises(exc, match=match):
            GlobalOT(**kwargs)
    with pytest.raises(ValueError, match="block must be an integer >= 2, got 1"):
        ExactOT(block=1)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor of samples or a function"):
        GlobalOT().sampler(np.zeros((5, 2)), x)
    with pytest.raises(ValueError, match=r"same sample shape, got \(2,\) and \(3,\)"):
        GlobalOT().sampler(x, torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"x1 must be samples of shape \(N, ...\)"):
        GlobalOT().sampler(x, torch.zeros(5))
    with pytest.raises(TypeError, match="coupling must be a GlobalOT, got ExactOT"):
        PlanSampler(ExactOT(), x, x)
