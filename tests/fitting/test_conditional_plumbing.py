"""Everything else carries the condition: reflow of a conditional flow, exact resume of a
conditional fit (and refusal of other conditions), the training record of a conditional fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.ends.conditions import ConditionEncoder
from sitransport.errors import CheckpointMismatchError
from tests.helpers import TINY, TINY_MLP, tiny_training

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
