"""Pairing within conditions: per label, each block is POT's exact OT of its rows and every
row keeps its label; with features, the pairs are the exact OT of the augmented cost
``|x0 - x1|^2 + lambda |c0 - c1|^2``; Independent is a no-op; images keep their shape;
submit_within equals pair_within; bad input is named."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sitransport.couplings import (
    Coupling,
    ExactOT,
    GlobalOT,
    Independent,
    Sinkhorn,
    pair_within,
    submit_within,
)
from sitransport.couplings.conditional import WEIGHT_PER_DIM


def _batch(n, d, labels, seed, k=1):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = 2 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1
    if labels:
        codes = torch.randint(0, k, (n,), generator=g)
    else:
        feats = torch.randn(n, k, generator=g, dtype=torch.float64)
        codes = torch.cat([feats, torch.ones(n, 1, dtype=torch.float64)], 1)
    return x0, x1, codes


def _sq(a, b):
    return torch.cdist(a.flatten(1), b.flatten(1)).pow(2).numpy()


def _rows(x):
    return Counter(tuple(r) for r in x.flatten(1).tolist())


@given(st.integers(2, 60), st.integers(1, 3), st.integers(1, 5), st.integers(0, 2**31))
def test_labels_exact_ot_is_pot_per_label(n, d, k, seed):
    x0, x1, codes = _batch(n, d, True, seed, k)
    a, b, c = pair_within(ExactOT(processes=0), x0, x1, codes, labels=True)
    assert torch.equal(c, codes) and torch.equal(a, x0)  # every row keeps its label
    for label in codes.unique().tolist():
        rows = codes == label
        # the x1 rows of each label are those given, each once
        assert _rows(b[rows]) == _rows(x1[rows])
        m = int(rows.sum())
        w = np.full(m, 1.0 / m)
        best = ot.emd2(w, w, _sq(x0[rows], x1[rows]))
        cost = float((a[rows] - b[rows]).pow(2).sum(1).mean())
        assert cost == pytest.approx(best, rel=1e-9, abs=1e-12)


def test_labels_block_plans_pair_per_label():
    # global_ot.pair and ExactOT with blocks: each label's rows solved alone
    x0, x1, codes = _batch(90, 2, True, 3, 3)
    for coupling in (GlobalOT(processes=0), ExactOT(processes=0, block=8)):
        _, b, c = pair_within(coupling, x0, x1, codes, labels=True)
        assert torch.equal(c, codes)
        for label in range(3):
            rows = codes == label
            assert _rows(b[rows]) == _rows(x1[rows])


def test_labels_sinkhorn_stays_within_labels():
    x0, x1, codes = _batch(80, 2, True, 1, 4)
    g = torch.Generator().manual_seed(0)
    for replace in (False, True):
        a, b, c = pair_within(Sinkhorn(replace=replace), x0, x1, codes, g, labels=True)
        assert torch.equal(c, codes)
        for label in range(4):
            rows = codes == label
            assert set(_rows(b[rows])) <= set(_rows(x1[rows]))
            assert set(_rows(a[rows])) <= set(_rows(x0[rows]))


def test_labels_any_ids_and_singletons():
    # float ids group as well; a label held by one row keeps its pair
    x0, x1, _ = _batch(5, 1, True, 0)
    codes = torch.tensor([0.5, 2.0, 0.5, 7.0, 2.0])
    a, b, c = pair_within(ExactOT(processes=0), x0, x1, codes, labels=True)
    assert torch.equal(b[3], x1[3]) and torch.equal(c, codes)
    assert _rows(b[[0, 2]]) == _rows(x1[[0, 2]])
    x1[3] = x0[3]  # a one-row block keeps its pair, under any coupling
    _, b, _ = pair_within(Sinkhorn(), x0, x1, codes, torch.Generator(), labels=True)
    assert torch.equal(b[3], x0[3])


@given(st.integers(2, 50), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2**31))
def test_features_exact_ot_is_pot_of_augmented_cost(n, d, k, seed):
    x0, x1, codes = _batch(n, d, False, seed, k)
    lam = 3.7
    a, b, c = pair_within(ExactOT(processes=0), x0, x1, codes, labels=False, weight=lam)
    # row i of the source carries c0 = codes[i]; the output codes are those of the paired x1
    assert _rows(torch.cat([b, c], 1)) == _rows(torch.cat([x1, codes], 1))
    cost = _sq(x0, x1) + lam * _sq(codes, codes)
    w = np.full(n, 1.0 / n)
    got = float(((a - b).pow(2).sum(1) + lam * (codes - c).pow(2).sum(1)).mean())
    assert got == pytest.approx(ot.emd2(w, w, cost), rel=1e-9, abs=1e-12)


def test_features_default_weight():
    x0, x1, codes = _batch(40, 3, False, 5)
    a, b, c = pair_within(ExactOT(processes=0), x0, x1, codes, labels=False)
    lam = WEIGHT_PER_DIM * 3
    cost = _sq(x0, x1) + lam * _sq(codes, codes)
    w = np.full(40, 1.0 / 40)
    got = float(((a - b).pow(2).sum(1) + lam * (codes - c).pow(2).sum(1)).mean())
    assert got == pytest.approx(ot.emd2(w, w, cost), rel=1e-9)


def test_features_large_weight_never_crosses_values():
    # four distinct feature values; at a large weight every pair joins equal values
    g = torch.Generator().manual_seed(0)
    n = 64
    values = torch.randint(0, 4, (n, 1), generator=g).double()
    codes = torch.cat([values, torch.ones(n, 1, dtype=torch.float64)], 1)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = x0[torch.randperm(n, generator=g)] + 3.0  # plain OT would pair across values
    for coupling in (ExactOT(processes=0), Sinkhorn(reg=0.01)):
        a, b, c = pair_within(coupling, x0, x1, codes, g, labels=False, weight=1e6)
        source = {tuple(r): v for r, v in zip(x0.tolist(), values[:, 0].tolist(), strict=True)}
        c0 = torch.tensor([source[tuple(r)] for r in a.tolist()], dtype=torch.float64)
        assert torch.equal(c0, c[:, 0])
    _, _, c = pair_within(ExactOT(processes=0), x0, x1, codes, labels=False, weight=0.0)
    assert not torch.equal(c, codes)  # weight 0 ignores the condition: values cross


@pytest.mark.parametrize("labels", [True, False])
def test_independent_is_identity(labels):
    x0, x1, codes = _batch(10, 2, labels, 0, 3)
    for call in (pair_within, lambda *a, **k: submit_within(*a, **k)()):
        out = call(Independent(), x0, x1, codes, labels=labels)
        assert all(o is i for o, i in zip(out, (x0, x1, codes), strict=True))


@pytest.mark.parametrize("labels", [True, False])
def test_images_keep_their_shape(labels):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(12, 3, 4, 4, generator=g)
    x1 = torch.randn(12, 3, 4, 4, generator=g)
    _, _, codes = _batch(12, 1, labels, 0, 2)
    codes = codes.float() if not labels else codes
    a, b, c = pair_within(ExactOT(processes=0), x0, x1, codes, labels=labels, weight=None)
    assert a.shape == x0.shape and b.shape == x1.shape and a.dtype == x0.dtype
    assert _rows(torch.cat([b.flatten(1), c.reshape(12, -1).float()], 1)) == _rows(
        torch.cat([x1.flatten(1), codes.reshape(12, -1).float()], 1)
    )
    flat = pair_within(ExactOT(processes=0), x0.flatten(1), x1.flatten(1), codes, labels=labels)
    assert torch.equal(b.flatten(1), flat[1]) and torch.equal(c, flat[2])


@pytest.mark.parametrize("labels", [True, False])
@pytest.mark.parametrize("processes", [0, 1])
def test_submit_equals_pair(labels, processes):
    x0, x1, codes = _batch(70, 2, labels, 2, 3)
    coupling = ExactOT(processes=processes, block=16)
    finish = submit_within(coupling, x0, x1, codes, labels=labels)
    for got, want in zip(
        finish(), pair_within(coupling, x0, x1, codes, labels=labels), strict=True
    ):
        assert torch.equal(got, want)
    g, h = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    got = submit_within(Sinkhorn(), x0, x1, codes, g, labels=labels)()
    want = pair_within(Sinkhorn(), x0, x1, codes, h, labels=labels)
    assert all(torch.equal(p, q) for p, q in zip(got, want, strict=True))


class _Mean(Coupling):
    """A user coupling that returns points that are not its input rows."""

    def pair(self, x0, x1, generator=None):
        return x0, x1 * 0 + x1.mean(0)


def test_user_coupling_labels_and_refused_features():
    x0, x1, codes = _batch(8, 2, True, 0, 2)
    _, b, _ = pair_within(_Mean(), x0, x1, codes, labels=True)
    assert torch.allclose(b[codes == 0], x1[codes == 0].mean(0).expand_as(b[codes == 0]))
    x0, x1, feats = _batch(8, 2, False, 0)
    with pytest.raises(ValueError, match="not rows of its input"):
        pair_within(_Mean(), x0, x1, feats, labels=False)


def test_bad_input_is_named():
    x0, x1, codes = _batch(6, 2, True, 0, 2)
    _, _, feats = _batch(6, 2, False, 0)
    exact = ExactOT(processes=0)
    cases = [
        (dict(x1=x1[:5]), ValueError, "x0 and x1 must have the same shape"),
        (dict(x0=x0[:, 0]), ValueError, r"x0 must be samples of shape \(n, ...\)"),
        (dict(codes=codes[:5]), ValueError, r"codes must be labels of shape \(n,\) = \(6,\)"),
        (dict(codes=feats), ValueError, "codes must be labels"),
        (dict(codes=feats[:, 0], labels=False), ValueError, "codes must be float features"),
        (dict(codes=codes[:, None], labels=False), ValueError, "dtype torch.int64"),
        (dict(codes=feats, labels=False, weight=-1.0), ValueError, "weight must be finite"),
        (dict(codes=feats, labels=False, weight=math.inf), ValueError, "weight must be"),
        (dict(weight=1.0), ValueError, "weight applies to feature codes"),
        (dict(coupling="exact_ot"), TypeError, "coupling must be a sitransport"),
        (dict(x1=x1.numpy()), TypeError, "x1 must be a torch.Tensor"),
        (dict(labels="yes"), TypeError, "labels"),
    ]
    for change, error, match in cases:
        args = dict(coupling=exact, x0=x0, x1=x1, codes=codes, labels=True) | change
        with pytest.raises(error, match=match):
            pair_within(**args)
        with pytest.raises(error, match=match):
            submit_within(**args)
