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
