"""Global plans within conditions: per group, the plan is POT's exact plan between the group's
sets and every pair stays in its group, rows drawn with the target's group frequencies; with
features, the plan is the exact OT of the augmented points; deterministic under a seed; the
position round-trips through state_dict; bad input is named."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from sitransport.couplings import FeaturePlans, GlobalOT, GroupPlans
from sitransport.couplings.conditional import WEIGHT_PER_DIM

SIZES = (6, 11, 11)  # target samples per label


def _sets(seed=0, shared=True):
    g = torch.Generator().manual_seed(seed)
    x1 = [torch.randn(m, 2, generator=g, dtype=torch.float64) + 4 * k for k, m in enumerate(SIZES)]
    if shared:
        x0 = torch.randn(11, 2, generator=g, dtype=torch.float64)
        return [(x0, b) for b in x1]
    return [
        (torch.randn(m + 2, 2, generator=g, dtype=torch.float64), b)
        for m, b in zip(SIZES, x1, strict=True)
    ]


def _groups(ends, seed=0, **kw):
    coupling = GlobalOT(processes=0, **kw)
    return GroupPlans(coupling, ends, torch.tensor([0, 1, 2]), torch.tensor(SIZES), seed=seed)


def _index(rows, points):
    """The index in ``points`` of each of ``rows``, compared exactly (-1: not a point)."""
    hit = (rows.flatten(1)[:, None, :] == points.flatten(1)[None]).all(-1)
    return torch.where(hit.any(1), hit.int().argmax(1), -1)


def _pot_plan(a, b):
    wa, wb = np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b))
    return ot.emd(wa, wb, ot.dist(a.numpy(), b.numpy()))


@pytest.mark.parametrize("shared", [True, False])
def test_each_group_plan_is_pots_exact_plan_and_pairs_stay_in_it(shared):
    ends = _sets(shared=shared)
    draw = _groups(ends)
    a, b, c = draw(3000, torch.Generator().manual_seed(1))
    assert draw.fixed and len(draw.solve_seconds) == 3  # sets within n: one plan per label
    state = draw.state_dict()["groups"]
    for k, (x0, x1) in enumerate(ends):
        plan = _pot_plan(x0, x1)
        # the sampler's weighted pairs are POT's plan, entry for entry
        ours = np.zeros_like(plan)
        s = state[k]
        w = np.full(len(s["x0"]), 1 / len(s["x0"])) if s["weights"] is None else s["weights"]
        rows, cols = _index(s["x0"], x0).numpy(), _index(s["x1"], x1).numpy()
        np.add.at(ours, (rows, cols), np.asarray(w))
        np.testing.assert_allclose(ours, plan, atol=1e-12)
        # every drawn row of label k is a pair of label k's plan
        mine = c == k
        i, j = _index(a[mine], x0).numpy(), _index(b[mine], x1).numpy()
        assert (i >= 0).all() and (j >= 0).all()  # x1 rows of label k only
        assert (plan[i, j] > 0).all()


def test_rows_follow_the_target_frequencies_and_are_shuffled():
    draw = _groups(_sets())
    n = 20_000
    _, _, c = draw(n, torch.Generator().manual_seed(0))
    freq = torch.bincount(c, minlength=3).double() / n
    expected = torch.tensor(SIZES, dtype=torch.float64) / sum(SIZES)
    assert torch.allclose(freq, expected, atol=4 / math.sqrt(n))
    # the rows are in drawn order, not grouped: each half of a batch has every label
    _, _, c = draw(64, torch.Generator().manual_seed(2))
    assert set(c[:32].tolist()) == set(c[32:].tolist()) == {0, 1, 2}


def test_streams_subsample_and_refresh_per_group_deterministically():
    stream = lambda m, g: torch.randn(m, 2, generator=g, dtype=torch.float64)  # noqa: E731
    x1 = [torch.randn(40, 2, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    ends = [(stream, b.double()) for b in x1]

    def run(seed, processes=0):
        coupling = GlobalOT(n=16, reuse=2, processes=processes)
        draw = GroupPlans(
            coupling, ends, torch.tensor([0, 1, 2]), torch.tensor([40] * 3), seed=seed
        )
        g = torch.Generator().manual_seed(0)
        out = [draw(24, g) for _ in range(6)]
        return draw, [torch.cat(o[:2], 1) for o in out]

    draw, a = run(0)
    _, b = run(0)
    _, c = run(1)
    _, d = run(0, processes=1)
    assert not draw.fixed and len(draw.solve_seconds) > 3  # plans re-solved within groups
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a, d, strict=True))  # where solved, not which
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_group_state_dict_resumes_exactly():
    stream = lambda m, g: torch.randn(m, 2, generator=g, dtype=torch.float64)  # noqa: E731
    ends = [(stream, stream)] * 3

    def make():
        return GroupPlans(
            GlobalOT(n=16, reuse=1, processes=0), ends, torch.tensor([0, 1, 2]), torch.ones(3)
        )

    draw, again = make(), make()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        draw(20, g)
    again.load_state_dict(draw.state_dict())
    assert again.solve_seconds == draw.solve_seconds  # restored, not re-solved
    before = len(draw.solve_seconds)
    h = g.clone_state()
    for _ in range(4):
        x, y = draw(20, g), again(20, h)
        assert all(torch.equal(p, q) for p, q in zip(x, y, strict=True))
    assert len(again.solve_seconds) == len(draw.solve_seconds) > before  # refreshed alike


def test_group_plans_reject_bad_input():
    x = torch.zeros(3, 1)
    with pytest.raises(TypeError, match="coupling must be a GlobalOT"):
        GroupPlans(object(), [(x, x)], torch.tensor([0]), torch.tensor([3]))
    with pytest.raises(ValueError, match="one row per group"):
        GroupPlans(GlobalOT(), [(x, x)], torch.tensor([0, 1]), torch.tensor([3]))
    with pytest.raises(ValueError, match="none"):
        GroupPlans(GlobalOT(), [], torch.tensor([]), torch.tensor([]))
    draw = GroupPlans(GlobalOT(processes=0), [(x, x)], torch.tensor([0]), torch.tensor([3]))
    with pytest.raises(ValueError, match="2 groups"):
        draw.load_state_dict({"groups": [{}, {}], "solve_seconds": []})


def _features(n=40, k=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, k, generator=g, dtype=torch.float64)
    codes = torch.cat([feats, torch.ones(n, 1, dtype=torch.float64)], 1)
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64) + 2 * feats[:, :1]
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x0, x1, codes


@pytest.mark.parametrize("weight", [None, 0.3])
def test_feature_plan_is_the_exact_ot_of_the_augmented_points(weight):
    x0, x1, codes = _features()
    draw = FeaturePlans(GlobalOT(processes=0), x0, x1, codes, weight=weight, seed=3)
    lam = WEIGHT_PER_DIM * 2 if weight is None else weight
    assert draw.weight == lam
    a, b, c = draw(500, torch.Generator().manual_seed(0))
    state = draw.state_dict()
    p0, p1 = state["x0"], state["x1"]  # the augmented pairs of the plan: a permutation
    assert draw.sampler.fixed and state["weights"] is None
    # the source conditions are a permutation of the target's, scaled by sqrt(lambda)
    root = math.sqrt(lam)
    src = torch.sort(p0[:, 2] / root).values
    assert torch.allclose(src, torch.sort(codes[:, 0]).values, atol=1e-12)
    cost = float((p0 - p1).pow(2).sum(1).mean())
    w = np.full(len(p0), 1 / len(p0))
    best = ot.emd2(w, w, ot.dist(p0.numpy(), p1.numpy()))  # their exact OT, over every pairing
    assert cost == pytest.approx(best, rel=1e-10)
    # the drawn rows: x1 a target sample with its own code, x0 a source sample
    j = _index(b, x1)
    assert (j >= 0).all() and (_index(a, x0) >= 0).all()
    assert torch.allclose(c, codes[j], rtol=0, atol=1e-12)


def test_feature_plans_stream_source_images_and_determinism():
    _, x1, codes = _features(n=30)
    stream = lambda m, g: torch.randn(m, 2, generator=g, dtype=torch.float64)  # noqa: E731

    def run(seed):
        draw = FeaturePlans(GlobalOT(n=16, reuse=2, processes=0), stream, x1, codes, seed=seed)
        g = torch.Generator().manual_seed(0)
        return draw, [draw(16, g) for _ in range(5)]

    draw, a = run(0)
    _, b = run(0)
    _, c = run(1)
    assert len(draw.solve_seconds) == 3  # 80 pairs at 2 x 16 per plan
    assert all(
        torch.equal(p, q) for x, y in zip(a, b, strict=True) for p, q in zip(x, y, strict=True)
    )
    assert not torch.equal(a[0][0], c[0][0])
    # a target given as rows(idx, g) (images dequantised afresh): image-shaped pairs
    images = torch.rand(30, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    rows = lambda idx, g: images[idx].double()  # noqa: E731
    img_stream = lambda m, g: torch.rand(m, 1, 2, 2, generator=g, dtype=torch.float64)  # noqa: E731
    draw = FeaturePlans(GlobalOT(n=16, processes=0), img_stream, rows, codes)
    x, y, k = draw(8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 1, 2, 2) and k.shape == (8, 2)
    assert draw.weight == WEIGHT_PER_DIM * 4


def test_feature_plans_reject_bad_input():
    x0, x1, codes = _features()
    with pytest.raises(TypeError, match="coupling must be a GlobalOT"):
        FeaturePlans(object(), x0, x1, codes)
    with pytest.raises(TypeError, match="float torch.Tensor"):
        FeaturePlans(GlobalOT(), x0, x1, torch.zeros(40, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="one row per target sample"):
        FeaturePlans(GlobalOT(), x0, x1, codes[:5])
    with pytest.raises(ValueError, match="weight"):
        FeaturePlans(GlobalOT(), x0, x1, codes, weight=-1.0)


def test_train_takes_group_plans_and_refuses_plans_between_whole_ends():
    from sitransport.ends.conditions import ConditionEncoder
    from sitransport.interpolants import Linear
    from sitransport.nn import MLPVelocity
    from sitransport.train import TrainSettings, train
    from sitransport.train.step import Conditions

    enc = ConditionEncoder.fit([0, 1])
    conditions = Conditions(enc, grouped=True, weight=None, dropout=0.0)
    settings = TrainSettings(steps=3, batch_size=16, progress=False, ema=None)
    net = MLPVelocity(
        2, width=8, depth=1, condition={"kind": "labels", "size": 2, "fusion": "film"}
    )
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    coupling = GlobalOT(processes=0)
    plans = GroupPlans(coupling, [(x, x + 1), (x, x - 1)], torch.tensor([0, 1]), torch.ones(2))
    h = train(net, Linear(), plans, settings=settings, coupling=coupling, conditions=conditions)
    assert len(h.history.attrs["ot_plan_solve_s"]) == 2

    def draw(n, g):
        return x[:n], x[:n] + 1, torch.zeros(n, dtype=torch.long)

    with pytest.raises(ValueError, match="within conditions"):
        train(net, Linear(), draw, settings=settings, coupling=coupling, conditions=conditions)


def test_a_stream_source_draws_as_many_points_as_the_group_has():
    stream = lambda m, g: torch.randn(m, 2, generator=g, dtype=torch.float64)  # noqa: E731
    x1 = [torch.randn(m, 2, generator=torch.Generator().manual_seed(m)).double() for m in SIZES]
    draw = _groups([(stream, b) for b in x1])  # GlobalOT(n=4096)
    draw(64, torch.Generator().manual_seed(0))
    for k, state in enumerate(draw.state_dict()["groups"]):
        # a permutation plan of the group's samples: each target point once
        assert state["weights"] is None and len(state["x1"]) == SIZES[k]
        assert (_index(state["x1"], x1[k]).sort().values == torch.arange(SIZES[k])).all()
        assert draw.samplers[k].coupling.n == SIZES[k]
