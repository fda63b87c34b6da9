"""Schedules and random streams of a training run: the learning-rate factor
(:class:`LRSchedule`: warm-up, then cosine decay), the EMA decay ramp (:func:`ema_decay`) and
its in-place updater, and the run's ``torch.Generator`` streams (:func:`run_generator`) and
per-step dropout seeds."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from sitransport.config.training import TrainSettings

__all__ = ["LRSchedule", "ema_decay"]


class LRSchedule:
    """Learning-rate factor at a step: linear warm-up over ``warmup`` steps, then cosine decay
    to ``min_lr_ratio`` at step ``total``, and that floor after it.

    ``total`` is the run's planned length (``steps``). A resumed run keeps the total of the
    run that wrote the checkpoint, so a longer ``steps`` continues at the floor after it.
    Benchmarks train peers on the same schedule (``LambdaLR(optimizer, LRSchedule(s))``).

    Args:
        settings: the run's settings: ``warmup``, ``steps`` (the total) and ``min_lr_ratio``.

    Example:
        >>> from sitransport.train import LRSchedule, TrainSettings
        >>> factor = LRSchedule(TrainSettings(steps=110, warmup=10, min_lr_ratio=0.01))
        >>> [round(factor(k), 3) for k in (0, 9, 10, 60, 110, 500)]
        [0.1, 1.0, 1.0, 0.505, 0.01, 0.01]
    """

    def __init__(self, settings: TrainSettings) -> None:
        self.warm, self.total, self.floor = settings.warmup, settings.steps, settings.min_lr_ratio

    def __call__(self, step: int) -> float:
        warm, floor = self.warm, self.floor
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.total - warm)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def run_generator(seed: int, stream: int = 0) -> torch.Generator:
    """The ``torch.Generator`` of one random stream of a run: ``seed + stream`` (splits,
    batches, validation times, path batches and reflow pairs each have their own stream)."""
    return torch.Generator().manual_seed(seed + stream)


def ema_decay(decay: float, k: int) -> float:
    """EMA decay ``min(decay, (1 + k) / (10 + k))`` after ``k`` updates, so early weights are
    forgotten quickly and short runs are not dragged back to initialisation.

    Args:
        decay: the configured EMA decay, in ``[0, 1)``.
        k: number of EMA updates done so far, ``>= 0``.

    Example:
        >>> [round(ema_decay(0.999, k), 4) for k in (0, 10, 10_000)]
        [0.1, 0.55, 0.999]
    """
    return min(decay, (1.0 + k) / (10.0 + k))


def ema_updater(ema: AveragedModel, net: nn.Module, decay: float) -> Callable[[], None]:
    """``ema.update_parameters(net)`` on tensor lists gathered once (the stock method walks
    both module trees on every call, about a tenth of a small network's step), with the
    update count kept on the host so no step waits for the device."""
    averaged = list(itertools.chain(ema.module.parameters(), ema.module.buffers()))
    current = list(itertools.chain(net.parameters(), net.buffers()))
    pairs = list(zip(averaged, current, strict=True))
    avg = [a.detach() for a, _ in pairs if a.is_floating_point()]
    cur = [c.detach() for a, c in pairs if a.is_floating_point()]
    others = [(a, c) for a, c in pairs if not a.is_floating_point()]
    count = int(ema.n_averaged)

    @torch.no_grad()
    def update() -> None:
        nonlocal count
        if count == 0:
            torch._foreach_copy_(avg, cur)
        else:
            torch._foreach_lerp_(avg, cur, 1.0 - ema_decay(decay, count))
        for a, c in others:
            a.copy_(c)
        ema.n_averaged += 1
        count += 1

    return update


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of the global RNG (dropout) at ``step`` on ``rank``: a function of the step, so
    a resumed run draws the same dropout masks, and ranks draw different ones."""
    return ((seed * 1_000_003 + rank) * 1_000_033 + step) % (2**63 - 1)
