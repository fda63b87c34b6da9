"""Everything else carries the condition: reflow of a conditional flow, exact resume of a
conditional fit (and refusal of other conditions), the training record of a conditional fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.ends.conditions import ConditionEncoder
from sitransport.errors import CheckpointMismatchError
from tests.helpers import TINY, tiny_training

#: Each label's constant velocity: label k moves by SHIFTS[k] over [0, 1].
SHIFTS = torch.tensor([[-4.0, 0.0], [0.0, 4.0], [4.0, -4.0]], dtype=torch.float64)


def labelled(n=300, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, n)
    return rng.normal(size=(n, 2)) + SHIFTS.numpy()[c], c


def shift_flow() -> st.TransportFlow:
    """A conditional flow in closed form: ``T(x | k) = x + SHIFTS[k]``."""

    def v(z, t, c):
        return SHIFTS.to(z)[c]

    enc = ConditionEncoder.fit([0, 1, 2])
    return st.TransportFlow(v, "linear", base="gaussian", shape=(2,), condition=enc)


def test_reflow_of_a_conditional_flow_learns_each_conditions_map():
    """Pairs (x0, T(x0 | c), c) with c drawn over the label set: the rectified flow moves
    each label by its own shift."""
    flow = shift_flow()
    straight = st.reflow(flow, 1000, steps=150, batch_size=128, lr=1e-2, progress=False,
                         training=tiny_training(ema=None, warmup=10))  # fmt: skip
    assert straight.condition == flow.condition
    x = np.random.default_rng(1).normal(size=(200, 2))
    for k in range(3):
        moved = (straight.push_forward(x, condition=k, nfe=8) - x).mean(0)
        np.testing.assert_allclose(moved, SHIFTS[k].numpy(), atol=0.05)
    with pytest.raises(ValueError, match="condition: this flow is conditional"):
        straight.sample(2, seed=0)


def test_reflow_of_a_fitted_conditional_flow_keeps_its_conditions():
    x1, c = labelled()
    flow = st.fit("gaussian", x1, condition=c, **TINY)
    again = st.reflow(flow, 100, steps=3, progress=False)
    assert again.condition == flow.condition and again.config.condition == "labels"
    assert again.config.reflow_generation == 1
    assert again.sample(4, seed=0, condition=[0, 1, 2, 1]).shape == (4, 2)
    assert again.history.attrs["condition_labels"] == [0, 1, 2]
    assert sum(again.history.attrs["condition_counts"]) == 100  # the pairs' labels
    # condition= narrows the draw to the given values (here: one label)
    assert st.reflow(flow, 100, steps=3, progress=False, condition=[2]).condition.labels == (
        0,
        1,
        2,
    )
    with pytest.raises(ValueError, match="never seen in training: \\[5\\]"):
        st.reflow(flow, 100, steps=3, progress=False, condition=[5])


def test_reflow_of_a_feature_conditioned_flow_needs_the_features():
    x1, c = labelled()
    feats = c[:, None] + np.random.default_rng(2).normal(size=(300, 1)) * 0.1
    flow = st.fit("gaussian", x1, condition=feats, **TINY)
    with pytest.raises(ValueError, match="condition: reflow of a flow conditioned on features"):
        st.reflow(flow, 100, steps=3, progress=False)
    again = st.reflow(flow, 100, steps=3, progress=False, condition=feats)
    assert again.condition == flow.condition and again.condition.kind == "features"
    assert again.sample(3, seed=0, condition=[1.0]).shape == (3, 2)
    with pytest.raises(ValueError, match="condition must have 1 feature column"):
        st.reflow(flow, 100, steps=3, progress=False, condition=np.ones((4, 2)))


def test_reflow_refuses_a_condition_for_an_unconditional_flow_and_paired_conditions():
    x1, c = labelled()
    plain = st.fit("gaussian", x1, **TINY)
    with pytest.raises(ValueError, match="condition: this flow is unconditional"):
        st.reflow(plain, 100, steps=3, progress=False, condition=[1])
    x0, c0 = labelled(seed=3)
    paired = st.fit(x0, x1, condition=(c0, c), **TINY)
    with pytest.raises(ValueError, match="condition=\\(c0, c1\\)"):
        st.reflow(paired, 100, steps=3, progress=False)


def test_unconditional_reflow_unchanged():
    """The reflow of an unconditional flow draws nothing more: same seed, same numbers."""
    x1, _ = labelled()
    flow = st.fit("gaussian", x1, **TINY)
    a = st.reflow(flow, 100, steps=3, progress=False, seed=4)
    b = st.reflow(flow, 100, steps=3, progress=False, seed=4)
    np.testing.assert_array_equal(a.sample(3, seed=0), b.sample(3, seed=0))
    assert a.condition is None


def _fit_checkpointed(x1, c, ckpt_dir, **kwargs):
    settings = dict(TINY, steps=12, coupling="exact_ot", seed=3)
    settings["training"] = tiny_training(condition_dropout=0.3, ema=0.9)
    ckpt = st.Checkpointing(ckpt_dir, every=5, resume=True)
    return st.fit("gaussian", x1, condition=c, checkpoint=ckpt, **dict(settings, **kwargs))


def _weights(flow):
    return torch.cat([p.detach().flatten() for p in flow.network.parameters()])


def test_conditional_fit_resumes_bit_for_bit(tmp_path, killed_after_checkpoint):
    """Killed after its first checkpoint and resumed: the weights and losses of the
    uninterrupted run (conditions, condition dropout and within-condition OT pairs all
    continue from the checkpoint)."""
    x1, c = labelled()
    full = _fit_checkpointed(x1, c, tmp_path / "full")
    with killed_after_checkpoint():
        _fit_checkpointed(x1, c, tmp_path / "cut")
    resumed = _fit_checkpointed(x1, c, tmp_path / "cut")
    torch.testing.assert_close(_weights(resumed), _weights(full), rtol=0, atol=0)
    np.testing.assert_array_equal(resumed.history["loss"].values, full.history["loss"].values)


def test_resume_with_other_conditions_is_refused(tmp_path, killed_after_checkpoint):
    x1, c = labelled()
    with killed_after_checkpoint():
        _fit_checkpointed(x1, c, tmp_path)
    changed = c.copy()
    changed[:5] = (changed[:5] + 1) % 3  # five labels changed, same label set
    with pytest.raises(CheckpointMismatchError, match="condition"):
        _fit_checkpointed(x1, changed, tmp_path)
    with pytest.raises(CheckpointMismatchError, match="condition"):  # features now
        _fit_checkpointed(x1, c.astype(np.float64), tmp_path)
    with pytest.raises(CheckpointMismatchError, match="condition"):  # none at all
        st.fit("gaussian", x1, checkpoint=st.Checkpointing(tmp_path, every=5, resume=True),
               **dict(TINY, steps=12, coupling="exact_ot", seed=3,
                      training=tiny_training(ema=0.9)))  # fmt: skip


def test_history_records_the_conditions(tmp_path):
    x1, c = labelled()
    flow = st.fit("gaussian", x1, condition=c, **TINY)
    attrs = flow.history.attrs
    assert attrs["condition"] == "labels" and attrs["condition_labels"] == [0, 1, 2]
    counts = attrs["condition_counts"]  # training rows per label (validation held out)
    assert len(counts) == 3 and sum(counts) == 270 and min(counts) > 0
    names = np.array(["a", "b", "c"])[c]
    flow = st.fit("gaussian", x1, condition=names, **dict(TINY, validation=0))
    assert flow.history.attrs["condition_labels"] == ["a", "b", "c"]
    assert flow.history.attrs["condition_counts"] == np.bincount(c).tolist()
    flow.save(tmp_path / "f.sit")
    assert st.load(tmp_path / "f.sit").history.attrs["condition_counts"] == np.bincount(c).tolist()
    feats = st.fit("gaussian", x1, condition=np.c_[c, -c].astype(float), **TINY)
    assert feats.history.attrs["condition"] == "features"
    assert feats.history.attrs["condition_features"] == 2
    assert "condition_labels" not in feats.history.attrs
    assert "condition" not in st.fit("gaussian", x1, **TINY).history.attrs
