"""fit(condition=..., coupling="global_ot"): the batches come from plans solved within
conditions (labels from a Gaussian or from samples, (c0, c1), features), the run trains,
samples per condition, is reproducible (also across processes=0/1), meters its solves and
resumes exactly across plan refreshes."""

from __future__ import annotations

import numpy as np
import pytest

import sitransport as st
from tests.helpers import TINY

TINY = dict(TINY, steps=20, batch_size=64)
REFRESHING = {"name": "global_ot", "n": 32, "reuse": 2}


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["a", "b", "c"]), 100)
    shift = {"a": -4.0, "b": 0.0, "c": 4.0}
    x1 = rng.normal(size=(300, 2)) + np.array([[shift[k], 0.0] for k in labels])
    return x1, labels


def test_labels_from_a_gaussian_train_and_sample_per_label(labelled):
    x1, labels = labelled
    flow = st.fit("gaussian", x1, condition=labels, coupling="global_ot", **TINY)
    h = flow.history
    # one plan per label (a stream of rho0: solved once within n = 4096 pairs per label)
    assert len(h.attrs["ot_plan_solve_s"]) == 3 and h.attrs["ot_plan_n"] == 4096
    assert bool(np.isfinite(h["loss"]).all() and np.isfinite(h["val_loss"]).all())
    assert flow.config.coupling.name == "global_ot" and flow.config.condition == "labels"
    for label in ("a", "c"):
        assert flow.sample(4, condition=label, seed=0).shape == (4, 2)
    # a fitted conditional network reports per condition (codes reach the Jacobian and H)
    x0 = np.random.default_rng(0).normal(size=(200, 2))
    report = st.metrics.transport_report(flow, x0, x1[labels == "c"], condition="c")
    assert np.isfinite([report.npe, report.lipschitz, report.h_upper]).all()
    per = st.metrics.conditional_npe(flow, x0, x1, labels)
    assert per.npe.shape == (3,) and per.npe[2] == report.npe


def test_paired_conditions_and_features_train(labelled):
    x1, labels = labelled
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(240, 2))
    c0 = np.repeat(np.array(["a", "b", "c"]), 80)
    flow = st.fit(x0, x1, condition=(c0, labels), coupling="global_ot", **TINY)
    # finite sets within n: one plan per condition, never re-solved
    assert len(flow.history.attrs["ot_plan_solve_s"]) == 3
    assert flow.config.condition == "paired labels"
    feats = x1[:, :1] / 4.0 + rng.normal(scale=0.1, size=(300, 1))
    for weight in (None, 2.0):
        flow = st.fit(
            "gaussian", x1, condition=feats, condition_weight=weight, coupling="global_ot", **TINY
        )
        assert len(flow.history.attrs["ot_plan_solve_s"]) == 1  # one augmented plan
        assert flow.push_forward(x0[:3], condition=feats[:3]).shape == (3, 2)


def test_conditional_global_ot_is_reproducible(labelled):
    x1, labels = labelled
    kw = dict(TINY, condition=labels, coupling=REFRESHING)
    x = np.zeros((3, 2))
    a = st.fit("gaussian", x1, **kw, seed=1).push_forward(x, condition=["a", "b", "c"])
    b = st.fit("gaussian", x1, **kw, seed=1).push_forward(x, condition=["a", "b", "c"])
    c = st.fit("gaussian", x1, **kw, seed=2).push_forward(x, condition=["a", "b", "c"])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    solo = dict(kw, coupling={**REFRESHING, "processes": 0})
    d = st.fit("gaussian", x1, **solo, seed=1).push_forward(x, condition=["a", "b", "c"])
    np.testing.assert_array_equal(a, d)  # the worker process changes where, not which


def test_conditional_global_ot_resumes_exactly(labelled, tmp_path, killed_after_checkpoint):
    """Killed after the step-10 checkpoint with plans of every label pending, resumed: the
    uninterrupted run, plans and solve record included."""
    x1, labels = labelled
    kw = dict(TINY, condition=labels, coupling=REFRESHING, seed=0)
    full = st.fit("gaussian", x1, **kw)
    with killed_after_checkpoint():
        st.fit("gaussian", x1, **kw, checkpoint=st.Checkpointing(tmp_path, every=10))
    resumed = st.fit(
        "gaussian", x1, **kw, checkpoint=st.Checkpointing(tmp_path, every=10, resume=True)
    )
    x = np.zeros((3, 2))
    cond = ["a", "b", "c"]
    np.testing.assert_array_equal(
        resumed.push_forward(x, condition=cond), full.push_forward(x, condition=cond)
    )
    for name in ("loss", "val_loss"):
        np.testing.assert_array_equal(resumed.history[name].values, full.history[name].values)
    solves = full.history.attrs["ot_plan_solve_s"]
    assert len(resumed.history.attrs["ot_plan_solve_s"]) == len(solves) > 3  # refreshed
