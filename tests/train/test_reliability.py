"""Training reliability: divergence stops the fit, data tensors are detached, a resumed
checkpoint must belong to the call (fingerprint), seeds and devices are checked."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport._io import load_checkpoint, previous_checkpoint
from sitransport.errors import CheckpointMismatchError, TrainingDivergedError
from sitransport.interpolants import Linear
from sitransport.train import DivergenceGuard, TrainSettings, train
from tests.helpers import TINY, TINY_MLP, tiny_mlp, tiny_training


@pytest.fixture(scope="module")
def data():
    return st.datasets.sample("moons", 300, seed=0), st.datasets.sample("8gaussians", 300, seed=0)


def _draw(n, gen):
    return torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen) + 1.0


# ---------------------------------------------------------------- item 2: divergence


def test_huge_lr_stops_with_training_diverged_error(data):
    """lr=1e6 used to end in a flow of NaN weights (or a bare FloatingPointError); now the
    library's error, still a FloatingPointError, naming the step and what to try."""
    _, x1 = data
    with pytest.raises(TrainingDivergedError, match=r"at step \d+.*lower lr.*clip_grad") as info:
        st.fit("gaussian", x1, **dict(TINY, steps=30, lr=1e6))
    assert isinstance(info.value, FloatingPointError)


def test_loss_growing_by_orders_of_magnitude_stops(data):
    """lr=10 makes the loss grow ~1e5-fold and fall back while the fit "succeeds"."""
    _, x1 = data
    with pytest.raises(TrainingDivergedError, match=r"diverged at step \d+: the flow-matching"):
        st.fit(
            "gaussian", x1, steps=30, lr=10.0, progress=False, training=TrainSettings(warmup=200)
        )


def test_non_finite_gradient_stops_before_the_weights_move():
    """A finite loss with an infinite gradient stops at that step, weights untouched."""
    net = st.nn.MLPVelocity(2, width=8, depth=1)
    first = next(net.parameters())
    first.register_hook(lambda g: torch.full_like(g, float("inf")))
    before = first.detach().clone()
    settings = TrainSettings(steps=5, batch_size=16, progress=False, ema=None)
    with pytest.raises(TrainingDivergedError, match="gradient norm became inf at step 0"):
        train(net, Linear(), _draw, settings=settings)
    assert torch.equal(first.detach(), before)


def test_guard_ignores_one_noisy_batch_and_stops_sustained_growth():
    guard = DivergenceGuard(1.0, [])
    normal = [2.0, 1.9, 1.8, 1e6, 1.7, 1.6, 1.5, 1e6, 1.4, 1.3, 1.2, 1.1]
    for step, fm in enumerate(normal):
        guard.check(step, fm, fm, 1.0, 1e-3)  # single spikes below 1e8x: the median stays low
    with pytest.raises(TrainingDivergedError, match="at step 14.*lower lr \\(now 0.001\\)"):
        for step, fm in enumerate([1e6, 1e7, 1e8], start=12):
            guard.check(step, fm, fm, 1.0, 1e-3)


def test_guard_state_is_rebuilt_from_the_record():
    """A resumed run compares with the lowest level of the whole run, not of its tail."""
    guard = DivergenceGuard(None, [1.0] * 5 + [1e5] * 2)
    with pytest.raises(TrainingDivergedError, match="turn on clip_grad"):
        guard.check(7, 1e5, 1e5, 1.0, 1e-3)


def test_normal_short_fits_do_not_trigger(data):
    x0, x1 = data
    st.fit(x0, x1, **dict(TINY, steps=40, lr=2e-2, training=tiny_training(warmup=5)))
    st.fit("gaussian", x1, **dict(TINY, coupling="exact_ot", interpolant="linear"))


# ---------------------------------------------------------------- item 5: data is data


def test_requires_grad_tensors_are_detached(data):
    x0, x1 = (torch.tensor(x, requires_grad=True) for x in data)
    flow = st.fit(x0, x1, **TINY)  # used to fail: "backward through the graph a second time"
    assert flow.push_forward(data[0][:3]).shape == (3, 2)
    assert x0.grad is None and x1.grad is None and x0.requires_grad


def test_train_detaches_drawn_and_held_out_batches():
    leaf = torch.randn(64, 2, requires_grad=True)

    def draw(n, gen):
        idx = torch.randint(0, 64, (n,), generator=gen)
        return torch.randn(n, 2, generator=gen), leaf[idx] * 2.0

    settings = TrainSettings(steps=20, batch_size=16, progress=False, eval_every=10)
    train(st.nn.MLPVelocity(2, 8, 1), Linear(), draw, settings=settings, validation=(leaf, leaf))
    assert leaf.grad is None  # no gradient flowed into the caller's data


# ---------------------------------------------------------------- item 8: resume fingerprint


@pytest.fixture
def checkpointed(data, tmp_path):
    """A finished 20-step run with its checkpoint at step 20; ``again(**changes)`` resumes
    it with the same call plus ``changes`` (``every``: checkpoint every so many steps)."""
    x0, x1 = data
    kw = dict(TINY, training=tiny_training(warmup=2), seed=0)
    flow = st.fit(x0, x1, **kw, checkpoint=st.Checkpointing(tmp_path, every=10))

    def again(rho0=x0, rho1=x1, every=10, **changes):
        resume = st.Checkpointing(tmp_path, every=every, resume=True)
        return st.fit(rho0, rho1, **dict(kw, checkpoint=resume, **changes))

    return flow, again, tmp_path / "checkpoint.pt"


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"rho1": "data8"}, [r"rho1\.sha256: '"]),
        ({"interpolant": "linear"}, [r"interpolant\.name: 'trig' -> 'linear'"]),
        ({"lr": 1e-5}, [r"lr: 0\.002 -> 1e-05"]),
        (
            {"network": tiny_mlp(width=16)},  # used to be a raw load_state_dict error
            [
                r"\n  network\.width: 8 -> 16",
                r"config\.width: 8 -> 16",
                r"network_architecture\.shapes",
            ],
        ),
        ({"lr": 1e-3, "batch_size": 64}, [r"batch_size: 512 -> 64", r"lr: 0\.002 -> 0\.001"]),
    ],
)
def test_resume_of_another_run_lists_every_differing_field(data, checkpointed, change, fields):
    _, again, path = checkpointed
    if change.get("rho1") == "data8":
        change = {"rho1": st.datasets.sample("8gaussians", 300, seed=1)}
    with pytest.raises(CheckpointMismatchError, match="checkpoint -> this call") as info:
        again(**change)
    message = str(info.value)
    assert str(path) in message
    for field in fields:
        assert re.search(field, message), (field, message)
    listed = [line for line in message.splitlines() if line.startswith("  ")]
    assert len(listed) == len(fields), listed  # and nothing else


def test_resume_with_another_distribution_is_refused(data, tmp_path):
    _, x1 = data
    every = st.Checkpointing(tmp_path, every=10)
    first = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    st.fit(first, x1, **TINY, checkpoint=every)
    shifted = torch.distributions.MultivariateNormal(torch.ones(2), torch.eye(2))
    with pytest.raises(CheckpointMismatchError, match=r"rho0\.sha256"):
        st.fit(shifted, x1, **TINY, checkpoint=dataclasses.replace(every, resume=True))


def test_resume_with_fewer_steps_than_done_is_refused(checkpointed):
    _, again, _ = checkpointed
    with pytest.raises(CheckpointMismatchError, match="steps=15 is fewer than the 20 steps"):
        again(steps=15)


def test_resume_may_change_progress_and_checkpoint_every(checkpointed, data):
    flow, again, _ = checkpointed
    resumed = again(every=5)
    x = data[0][:5]
    np.testing.assert_array_equal(resumed.push_forward(x), flow.push_forward(x))


def test_longer_steps_extend_the_run_on_its_own_schedule(data, tmp_path, killed_after_checkpoint):
    """Killed at step 10 of 20, resumed with steps=30: the first 20 steps are the original
    run's, bit for bit; the 10 more run at the schedule's floor lr (min_lr_ratio x lr)."""
    x0, x1 = data
    kw = dict(TINY, training=tiny_training(warmup=2), seed=0)
    every = st.Checkpointing(tmp_path, every=10)
    full = st.fit(x0, x1, **kw)
    with killed_after_checkpoint():
        st.fit(x0, x1, **kw, checkpoint=every)
    resume = dataclasses.replace(every, resume=True)
    longer = st.fit(x0, x1, **dict(kw, steps=30), checkpoint=resume)
    h = longer.history
    np.testing.assert_array_equal(h["loss"].values[:20], full.history["loss"].values)
    np.testing.assert_allclose(h["lr"].values[20:], 0.01 * 2e-3, rtol=1e-12)
    assert h.sizes["step"] == 30 and longer.config.training.steps == 30
    assert h.attrs["lr_schedule_steps"] == 20 and full.history.attrs["lr_schedule_steps"] == 20


def test_checkpoint_without_fingerprint_resumes_with_a_warning(checkpointed):
    _, again, path = checkpointed
    state = load_checkpoint(path, "cpu")
    del state["fingerprint"]  # as written before fingerprints (and checksums) existed
    torch.save(state, path)
    previous_checkpoint(path).unlink()
    with pytest.warns(UserWarning, match="has no fingerprint.*cannot be checked"):
        resumed = again(lr=1e-3)  # not detectable without a fingerprint
    assert resumed.history.sizes["step"] == 20


# ---------------------------------------------------------------- seed and device


@pytest.mark.parametrize("seed", [2**70, 2**63, -1])
def test_seed_out_of_range(data, seed):
    x0, x1 = data
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        st.fit(x0, x1, **TINY, seed=seed)
    with pytest.raises(ValueError, match="seed must be an integer"):
        train(st.nn.MLPVelocity(2, 8, 1), Linear(), _draw, seed=seed)


def test_largest_seed_runs(data):
    x0, x1 = data
    st.fit(x0, x1, **dict(TINY, steps=2), seed=2**63 - 1)


def test_unsupported_device(data):
    x0, x1 = data
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda.*got 'meta'"):
        st.fit(x0, x1, **TINY, device="meta")
    with pytest.raises(ValueError, match="device must be .* got 'gpu'"):
        st.fit(x0, x1, **TINY, device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_unavailable_cuda(data):
    x0, x1 = data
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA, which is not available"):
        st.fit(x0, x1, **TINY, device="cuda")


def test_a_run_shorter_than_the_window_that_blows_up_stops():
    # lr=1e6 takes the batch loss from about 7 to 1e17 in one step; a 3-step run never fills
    # the 5-step median window, so the one-step rule must catch it
    x1 = st.datasets.sample("moons", 64, seed=0)
    with pytest.raises(TrainingDivergedError, match="diverged at step 1"):
        st.fit("gaussian", x1, steps=3, network=TINY_MLP, batch_size=16, lr=1e6, progress=False)
