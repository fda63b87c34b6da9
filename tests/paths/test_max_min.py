"""Max–min path optimisation: the two modes of combining descent and ascent."""

from __future__ import annotations

import copy

import pytest
import torch

from sitransport.interpolants import Fourier
from sitransport.losses import TimeSampler, quadratic_loss
from sitransport.nn import MLPVelocity
from sitransport.paths import PathOptimizer, PathSettings
from sitransport.train import TrainSettings, train


class FixedTimes(TimeSampler):
    """Every batch gets the same times, so a test can rebuild the batch."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t

    def icdf(self, u: torch.Tensor) -> torch.Tensor:  # the abstract method: the fixed times
        return self.t[: u.shape[0]].to(u)

    def sample(self, n, *, generator=None, antithetic=False, device="cpu", dtype=torch.float32):
        return self.t[:n].to(device=device, dtype=dtype)


@pytest.mark.parametrize("mode", ["alternating", "simultaneous"])
def test_path_step_uses_the_right_gradient(mode, monkeypatch):
    g = torch.Generator().manual_seed(0)
    x0, x1, t = (
        torch.randn(32, 2, generator=g),
        torch.randn(32, 2, generator=g) + 2,
        torch.rand(32, generator=g),
    )
    net, path = MLPVelocity(2, width=16, depth=2), Fourier("trig", K=2)
    net0, path0 = copy.deepcopy(net), copy.deepcopy(path)
    seen = []
    ascend = PathOptimizer.ascend
    monkeypatch.setattr(
        PathOptimizer, "ascend", lambda self, grads: (seen.append(grads), ascend(self, grads))
    )
    settings = TrainSettings(
        steps=1, batch_size=32, ema=None, progress=False, antithetic=False, warmup=0
    )
    train(
        net,
        path,
        lambda n, gen: (x0, x1),
        settings=settings,
        time_sampler=FixedTimes(t),
        path=PathSettings(lr=0.1, start=0, mode=mode),
    )
    assert len(seen) == 1
    # simultaneous: G at the velocity *before* its step; alternating: after it
    velocity = net0 if mode == "simultaneous" else net
    expected = torch.autograd.grad(
        quadratic_loss(velocity, path0, x0, x1, t).quadratic, list(path0.parameters())
    )
    for got, want in zip(seen[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    # the ascent moved the path (Adam's first step is lr * sign(grad))
    for p, p0, want in zip(path.parameters(), path0.parameters(), expected, strict=True):
        torch.testing.assert_close(p - p0, 0.1 * torch.sign(want), rtol=1e-3, atol=1e-6)


def test_bad_mode():
    with pytest.raises(ValueError, match="path mode"):
        PathSettings(mode="together")


def test_path_is_frozen_after_stop_and_the_velocity_finishes_on_it():
    import sitransport as st

    x1 = st.datasets.sample("moons", 1000, seed=0)
    flow = st.fit(
        "gaussian",
        x1,
        interpolant="fourier",
        optimize_path=PathSettings(start=10, stop=30),
        steps=60,
        training=TrainSettings(eval_every=5),
        network=st.MLPSpec(width=16),
        progress=False,
    )
    a = flow.history["path_a"].values  # (eval_step, K): coefficients at each evaluation
    steps = flow.history["eval_step"].values
    moving, frozen = a[(steps > 10) & (steps <= 30)], a[steps >= 30]
    assert not all(torch.equal(torch.tensor(r), torch.tensor(moving[0])) for r in moving[1:])
    assert all(torch.equal(torch.tensor(r), torch.tensor(frozen[0])) for r in frozen)
    # the flow's path is the frozen one, and the velocity kept training after it
    torch.testing.assert_close(flow.interpolant.a.detach(), torch.tensor(frozen[-1]))
    assert flow.history["loss"].sizes["step"] == 60


@pytest.mark.parametrize(("stop", "exc"), [(-1, ValueError), ("half", TypeError), (0.5, TypeError)])
def test_bad_path_stop(stop, exc):
    with pytest.raises(exc, match="path stop must be an integer"):
        PathSettings(stop=stop)


def test_optimize_path_true_freezes_after_half_the_steps():
    import sitransport as st

    x1 = torch.randn(100, 2).numpy()
    kw = dict(interpolant="fourier", steps=7, progress=False, network=st.MLPSpec(width=8))
    assert st.fit("gaussian", x1, optimize_path=True, **kw).config.path == PathSettings(stop=3)
    assert st.fit("gaussian", x1, **kw).config.path is None


def test_neural_path_trains_by_max_min_and_saves():
    """The nonlinear family trains by max-min, refuses Gaussian-base scores, and its
    weights travel with the flow."""
    import tempfile
    from pathlib import Path

    import numpy as np

    import sitransport as st
    from sitransport.interpolants import NeuralPath

    x1 = st.datasets.sample("8gaussians", 2000, seed=0)
    flow = st.fit(
        "gaussian",
        x1,
        interpolant=NeuralPath(2, K=2, width=16),
        optimize_path=PathSettings(start=20, stop=40),
        steps=80,
        network=st.MLPSpec(width=32),
        progress=False,
    )
    h = flow.interpolant.h[-1].weight.detach()
    assert float(h.abs().sum()) > 0  # the ascent moved the path away from linear
    with pytest.raises(ValueError, match="needs a spatially linear interpolant"):
        flow.score(x1[:3], 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        flow.save(Path(tmp) / "f.sit")
        again = st.load(Path(tmp) / "f.sit")
    torch.testing.assert_close(again.interpolant.h[-1].weight.detach(), h)
    np.testing.assert_array_equal(again.push_forward(x1[:4]), flow.push_forward(x1[:4]))
