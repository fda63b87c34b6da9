"""Training callbacks (TrainSettings(callbacks=...)): each hook sees the numbers the history
records, at the steps it records them; a run with callbacks is bit for bit the run without;
the samples of an evaluation are the returned model's, in the caller's units; callbacks are
runtime objects that settings specs, flow.config, saved files and resume checks leave out;
hooks run on rank 0 only; bad callbacks are refused by name."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.callbacks import Callback, EvalSamples
from sitransport.config import FitConfig
from sitransport.interpolants import Linear, Normalized
from sitransport.nn import MLPVelocity
from sitransport.ode import ODEOptions, integrate
from sitransport.train import TrainSettings, train
from sitransport.train.callbacks import SAMPLES_N, Hooks
from tests.helpers import TINY, tiny_training


def _draw(n, gen):
    return torch.randn(n, 2, generator=gen), 0.5 * torch.randn(n, 2, generator=gen) + 2.0


def _held(n=64):
    return _draw(n, torch.Generator().manual_seed(11))


class Recorder(Callback):
    """Every hook call, with its arguments (samples computed)."""

    def __init__(self):
        self.steps, self.evals, self.checkpoints, self.ends = [], [], [], []

    def on_step(self, step, *, loss, fm_loss, kinetic, lr, grad_norm):
        self.steps.append((step, loss, fm_loss, kinetic, lr, grad_norm))

    def on_eval(self, step, *, val_loss, val_fm_loss, sinkhorn, samples):
        computed = samples() if samples is not None else None
        self.evals.append((step, val_loss, val_fm_loss, sinkhorn, computed))

    def on_checkpoint(self, step, path):
        self.checkpoints.append((step, path, Path(path).is_file()))

    def on_end(self, result):
        self.ends.append(result)


class Meddler(Callback):
    """A callback that draws from torch's global generator in every hook and evaluates the
    model it is shown: none of it may change the run."""

    def on_step(self, step, **numbers):
        torch.rand(3)

    def on_eval(self, step, *, samples, **numbers):
        torch.randn(5)
        if samples is not None:
            samples()


class Dropped(torch.nn.Module):
    """A small MLP velocity with dropout on its output: its masks draw random numbers."""

    def __init__(self):
        super().__init__()
        self.mlp, self.drop = MLPVelocity(2, width=16, depth=1), torch.nn.Dropout(0.2)

    def forward(self, x, t):
        return self.drop(self.mlp(x, t))


def _train(callbacks=(), interpolant=None, **changes):
    settings = TrainSettings(
        steps=12, batch_size=32, progress=False, eval_every=4, sinkhorn_n=16,
        sinkhorn_every=6, callbacks=callbacks, **changes,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = Dropped()
    path = interpolant if interpolant is not None else Linear()
    return train(net, path, _draw, settings=settings, validation=_held(), seed=3)


def _numbers(result):
    """The run's numbers: weights and every history variable but the clock's."""
    h = result.history.drop_vars(["wall_time", "sinkhorn_seconds"])
    weights = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    return weights, {k: h[k].values for k in h.data_vars}


def test_hooks_see_what_the_history_records():
    seen = Recorder()
    result = _train([seen])
    h = result.history
    assert [s[0] for s in seen.steps] == h["step"].values.tolist() == list(range(1, 13))
    for i, name in enumerate(("loss", "fm_loss", "kinetic", "lr", "grad_norm"), start=1):
        assert [s[i] for s in seen.steps] == h[name].values.tolist(), name
    # evaluations every 4 steps and the last, the diagnostic every 6 and the last
    assert [e[0] for e in seen.evals] == [4, 6, 8, 12]
    val = dict(zip(h["eval_step"].values.tolist(), h["val_loss"].values.tolist(), strict=True))
    val_fm = dict(zip(h["eval_step"].values.tolist(), h["val_fm_loss"].values, strict=True))
    sink = dict(zip(h["sinkhorn_step"].values.tolist(), h["sinkhorn"].values, strict=True))
    for step, val_loss, val_fm_loss, sinkhorn, _ in seen.evals:
        assert val_loss == val.get(step) and val_fm_loss == val_fm.get(step)
        assert sinkhorn == sink.get(step)
    assert seen.evals[1][1] is None and seen.evals[0][3] is None  # step 6: no validation
    assert seen.ends == [result] and not seen.checkpoints


@pytest.mark.parametrize("ema", [0.9, None])
def test_a_run_with_callbacks_is_bit_for_bit_the_run_without(ema):
    """Same weights (EMA, or the trained network sampled in eval mode between steps),
    losses, validation and diagnostic, with dropout in the network and callbacks that draw
    from the global generator and sample the model at evaluations."""
    bare_w, bare_h = _numbers(_train(ema=ema))
    with_w, with_h = _numbers(_train([Recorder(), Meddler()], ema=ema))
    torch.testing.assert_close(with_w, bare_w, rtol=0, atol=0)
    assert bare_h.keys() == with_h.keys() and "sinkhorn" in bare_h
    for name in bare_h:
        np.testing.assert_array_equal(with_h[name], bare_h[name], err_msg=name)


def test_eval_samples_are_the_models_in_the_callers_units():
    """The last evaluation's samples: the returned model's fixed-step solve of the first
    held-out sources (the Sinkhorn diagnostic's solver) and the first held-out targets,
    carried from the network's coordinates u to x = m + s u."""
    seen = Recorder()
    shift, scale = torch.tensor([10.0, -3.0]), 4.0
    result = _train([seen], interpolant=Normalized(Linear(), shift, scale))
    samples, targets = seen.evals[-1][4]
    v0, v1 = _held()
    n = min(SAMPLES_N, v0.shape[0])
    assert samples.shape == targets.shape == (n, 2)
    torch.testing.assert_close(targets, shift.float() + scale * v1[:n], rtol=0, atol=0)
    model = result.model
    with torch.no_grad():
        end = integrate(model, v0[:n], torch.tensor([0.0, 1.0]), ODEOptions.budget(32))
    torch.testing.assert_close(samples, shift.float() + scale * end.states[-1])
    assert samples.std(0).min() > 0.1 * scale * v1.std(0).min()  # not the sources' copy


def test_eval_samples_are_computed_once_and_only_when_asked():
    calls = []

    def compute():
        calls.append(1)
        return torch.zeros(2, 2), torch.ones(2, 2)

    samples = EvalSamples(compute, (2,))
    assert not calls
    first = samples()
    assert samples() is first and len(calls) == 1


def test_without_validation_eval_has_no_losses_nor_samples():
    seen = Recorder()
    settings = TrainSettings(steps=6, batch_size=16, progress=False, eval_every=3,
                             callbacks=[seen])  # fmt: skip
    train(MLPVelocity(2, width=8, depth=1), Linear(), _draw, settings=settings)
    assert [e[0] for e in seen.evals] == [3, 6]
    assert all(e[1:] == (None, None, None, None) for e in seen.evals)


def test_on_checkpoint_after_each_checkpoint_is_written(tmp_path):
    seen = Recorder()
    settings = TrainSettings(steps=5, batch_size=16, progress=False, checkpoint_every=2,
                             callbacks=[seen])  # fmt: skip
    ckpt = tmp_path / "ckpt.pt"
    train(MLPVelocity(2, width=8, depth=1), Linear(), _draw, settings=settings, checkpoint=ckpt)
    assert seen.checkpoints == [(2, ckpt, True), (4, ckpt, True)]


def test_hooks_run_on_rank_0_only():
    seen = Recorder()
    assert Hooks([seen], rank=0) and not Hooks([seen], rank=1) and not Hooks([], rank=0)
    Hooks([seen], rank=1).checkpoint(3, Path("x"))
    assert not seen.checkpoints


# ------------------------------------------------------------- settings, files, resume
def test_settings_keep_callbacks_as_a_tuple_outside_their_spec_and_equality():
    a, b = Recorder(), Recorder()
    settings = TrainSettings(steps=10, callbacks=[a, b])
    assert settings.callbacks == (a, b)
    assert "callbacks" not in settings.spec()
    assert TrainSettings.from_spec(settings.spec()) == settings == TrainSettings(steps=10)
    assert hash(settings) == hash(TrainSettings(steps=10))
    assert dataclasses.replace(settings, lr=1e-3).callbacks == (a, b)
    config = FitConfig(training=settings)
    assert config.training.callbacks == () and config.training == settings
    assert "callbacks" not in config.spec()["training"]


@pytest.mark.parametrize(
    ("callbacks", "match"),
    [
        (Recorder(), r"callbacks must be a list or tuple .* got Recorder"),
        ([Recorder(), print], r"callbacks\[1\] must be a sitransport.callbacks.Callback"),
        ("tensorboard", r"callbacks must be a list or tuple .* got str"),
    ],
)
def test_bad_callbacks_are_refused(callbacks, match):
    with pytest.raises(TypeError, match=match):
        TrainSettings(callbacks=callbacks)


def test_fit_with_callbacks_saves_loads_and_records_none(tmp_path):
    x1 = st.datasets.sample("moons", 200, seed=0)
    seen = Recorder()
    flow = st.fit("gaussian", x1, **dict(TINY, training=tiny_training(callbacks=[seen])))
    assert len(seen.steps) == TINY["steps"] and len(seen.ends) == 1
    assert flow.config.training.callbacks == ()
    flow.save(tmp_path / "f.sit")
    loaded = st.load(tmp_path / "f.sit")
    assert loaded.config == flow.config
    bare = st.fit("gaussian", x1, **TINY)
    np.testing.assert_array_equal(flow.sample(50, seed=1), bare.sample(50, seed=1))


def test_resume_with_other_callbacks_matches_the_uninterrupted_run(tmp_path):
    """Callbacks are not in the run's fingerprint: a run checkpointed with one callback
    resumes with another (or none), and ends where the uninterrupted run does."""
    x1 = st.datasets.sample("moons", 200, seed=0)
    ckpt = st.Checkpointing(tmp_path / "run", every=10)
    full = st.fit("gaussian", x1, **TINY)

    class Stop(Callback):
        def on_checkpoint(self, step, path):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        st.fit("gaussian", x1, checkpoint=ckpt, **dict(TINY, training=tiny_training(
            callbacks=[Stop()])))  # fmt: skip
    seen = Recorder()
    resumed = st.fit("gaussian", x1, checkpoint=dataclasses.replace(ckpt, resume=True),
                     **dict(TINY, training=tiny_training(callbacks=[seen])))  # fmt: skip
    assert [s[0] for s in seen.steps] == list(range(11, TINY["steps"] + 1))
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    np.testing.assert_array_equal(resumed.sample(20, seed=2), full.sample(20, seed=2))
    assert math.isfinite(float(resumed.history["val_loss"][-1]))


def test_fit_and_reflow_take_callbacks_as_a_keyword_that_wins_over_training():
    x1 = st.datasets.sample("moons", 200, seed=0)
    flat, inner = Recorder(), Recorder()
    training = tiny_training(callbacks=[inner])
    flow = st.fit("gaussian", x1, callbacks=[flat], **dict(TINY, training=training))
    assert len(flat.steps) == TINY["steps"] and not inner.steps
    again = Recorder()
    st.reflow(flow, 64, steps=5, progress=False, callbacks=(again,))
    assert [s[0] for s in again.steps] == [1, 2, 3, 4, 5] and len(again.ends) == 1
    with pytest.raises(TypeError, match="callbacks must be a list or tuple"):
        st.fit("gaussian", x1, callbacks=Recorder(), **TINY)


def test_a_conditional_fits_samples_carry_each_held_out_rows_condition():
    """Labels 0 and 1 send the flow to targets near -5 and +5: the samples of an evaluation
    (each held-out source pushed with its row's label) land on the side of the target of the
    same row (one label each); without the labels half of them would not."""
    gen = np.random.default_rng(0)
    labels = np.repeat([0, 1], 150)
    x1 = gen.normal(size=(300, 2)) * 0.3 + np.where(labels[:, None] == 0, -5.0, 5.0)
    seen = Recorder()
    st.fit("gaussian", x1, condition=labels, callbacks=[seen], **dict(TINY, steps=200))
    samples, targets = seen.evals[-1][4]
    assert samples.shape == targets.shape == (30, 2)  # 10 % of 300 held out
    assert (targets[:, 0] < -2).any() and (targets[:, 0] > 2).any()
    same = (torch.sign(samples[:, 0]) == torch.sign(targets[:, 0])).float().mean()
    assert same >= 0.9, same
