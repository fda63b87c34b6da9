"""st.callbacks.TensorBoard: the event files it writes, read back with tensorboard's own
reader, hold the history's per-step scalars, the validation losses, the Sinkhorn diagnostic
and a samples figure of 2-D data at each evaluation; bad arguments are refused by name; a
missing tensorboard is named at the first write."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.callbacks import EvalSamples
from tests.helpers import TINY, tiny_training

pytest.importorskip(
    "tensorboard", reason="the optional tensorboard extra (pip install sitransport[tensorboard])"
)


def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _scalars(acc, tag):
    events = acc.Scalars(tag)
    return [e.step for e in events], np.array([e.value for e in events])


def test_event_file_holds_the_history(tmp_path):
    x1 = st.datasets.sample("moons", 400, seed=0)
    logger = st.callbacks.TensorBoard(tmp_path / "run", every=5)
    training = tiny_training(callbacks=[logger], sinkhorn_n=16, sinkhorn_every=10)
    flow = st.fit("gaussian", x1, **dict(TINY, training=training))
    h = flow.history
    acc = _events(tmp_path / "run")
    tags = acc.Tags()
    assert {"train/loss", "train/fm_loss", "train/lr", "train/grad_norm", "val/loss",
            "val/fm_loss", "quality/sinkhorn"} <= set(tags["scalars"])  # fmt: skip
    steps, loss = _scalars(acc, "train/loss")
    assert steps == [1, 5, 10, 15, 20]  # the first step, then every 5
    rows = h["loss"].sel(step=steps).values
    np.testing.assert_allclose(loss, rows, rtol=1e-6)  # event files store float32
    for tag, name in (("train/lr", "lr"), ("train/grad_norm", "grad_norm")):
        np.testing.assert_allclose(_scalars(acc, tag)[1], h[name].sel(step=steps), rtol=1e-6)
    steps, val = _scalars(acc, "val/loss")
    assert steps == h["eval_step"].values.tolist() == [10, 20]
    np.testing.assert_allclose(val, h["val_loss"].values, rtol=1e-6)
    steps, sinkhorn = _scalars(acc, "quality/sinkhorn")
    assert steps == h["sinkhorn_step"].values.tolist() == [10, 20]
    np.testing.assert_allclose(sinkhorn, h["sinkhorn"].values, rtol=1e-6)
    images = acc.Images("samples")
    assert [im.step for im in images] == [10, 20]
    assert images[0].width > 100 and images[0].height > 100
    assert logger._writer is None  # closed at the end


def test_no_figure_when_asked_or_beyond_two_dimensions(tmp_path):
    x1 = st.datasets.sample("moons", 300, seed=0)
    three = np.concatenate([x1, x1[:, :1]], axis=1)
    for name, data, every in (("off", x1, None), ("3d", three, 1)):
        logger = st.callbacks.TensorBoard(tmp_path / name, figure_every=every)
        st.fit("gaussian", data, **dict(TINY, training=tiny_training(callbacks=[logger])))
        tags = _events(tmp_path / name).Tags()
        assert not tags["images"] and "val/loss" in tags["scalars"], name


def test_figures_every_figure_every_steps_and_the_last(tmp_path):
    """Evaluations every 5 steps, figures every 10: at the first evaluation, then the first
    at least 10 steps after the last figure, and the last evaluation's at the end; samples
    not drawn are never computed."""
    computed = []

    def samples(step):
        def compute():
            computed.append(step)
            gen = torch.Generator().manual_seed(step)
            return torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)

        return EvalSamples(compute, (2,))

    logger = st.callbacks.TensorBoard(tmp_path / "run", figure_every=10)
    for step in (5, 10, 15, 20, 25):
        logger.on_eval(step, val_loss=1.0, val_fm_loss=None, sinkhorn=math.nan,
                       samples=samples(step))  # fmt: skip
    logger.on_end(None)
    acc = _events(tmp_path / "run")
    assert [im.step for im in acc.Images("samples")] == computed == [5, 15, 25]
    assert acc.Tags()["scalars"] == ["val/loss"]  # None and NaN values are not written


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"log_dir": 3}, TypeError, "log_dir must be a str or path, got int"),
        ({"log_dir": "runs", "every": 0}, ValueError, "every must be an integer >= 1, got 0"),
        ({"log_dir": "runs", "every": 2.0}, ValueError, "every must be an integer >= 1"),
        ({"log_dir": "runs", "figure_every": 0}, ValueError, "figure_every must be an integer"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        st.callbacks.TensorBoard(**kwargs)


def test_missing_tensorboard_is_named_at_the_first_write(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if absent
    logger = st.callbacks.TensorBoard(tmp_path / "run")  # constructing does no work
    assert not (tmp_path / "run").exists()
    with pytest.raises(ImportError, match=r"pip install 'sitransport\[tensorboard\]'"):
        logger.on_step(1, loss=0.0, fm_loss=0.0, kinetic=0.0, lr=0.1, grad_norm=1.0)
