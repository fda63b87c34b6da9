"""The dispatch of a run's callbacks (:mod:`sitransport.callbacks`): :class:`Hooks` calls
each hook of ``settings.callbacks`` in order, on rank 0 only, with the numbers the run has
just recorded, and builds the lazy :class:`~sitransport.callbacks.EvalSamples` of an
evaluation (:func:`held_out_samples`). Nothing here changes the run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from sitransport.callbacks import Callback, EvalSamples
from sitransport.interpolants import Interpolant, Normalized
from sitransport.ode import ODEOptions, integrate
from sitransport.train.record import Record

if TYPE_CHECKING:
    from sitransport.train.trainer import TrainResult

__all__: list[str] = []

#: Most held-out sources an evaluation's samples carry (and targets they are shown with).
SAMPLES_N = 512


def held_out_samples(
    model: nn.Module,
    validation: tuple[Tensor, ...],
    codes: Tensor | None,
    interpolant: Interpolant,
    options: ODEOptions,
) -> EvalSamples:
    """The lazy samples of ``model`` at an evaluation: the first :data:`SAMPLES_N` held-out
    sources carried to ``t = 1`` with ``options`` (in eval mode, without gradients, then back
    in the model's mode), and as many held-out targets, both mapped from the network's
    coordinates to the caller's units (``x = m + s u`` of a
    :class:`~sitransport.interpolants.Normalized` path)."""
    n = min(SAMPLES_N, validation[0].shape[0], validation[1].shape[0])
    x0, x1 = validation[0][:n], validation[1][:n]
    condition = codes[:n] if codes is not None else None

    def units(u: Tensor) -> Tensor:
        if not isinstance(interpolant, Normalized):
            return u.detach().clone()
        return (interpolant.shift.to(u) + interpolant.scale * u).detach()

    def compute() -> tuple[Tensor, Tensor]:
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                times = torch.tensor([0.0, 1.0])
                end = integrate(model, x0, times, options, condition=condition).states[-1]
        finally:
            model.train(training)
        return units(end), units(x1)

    return EvalSamples(compute, tuple(x0.shape[1:]))


class Hooks:
    """The run's callbacks as one: each method calls that hook of every callback, in order;
    no callback at all on ranks other than 0. False when there is none to call.

    Args:
        callbacks: the run's callbacks (``settings.callbacks``).
        rank: this process's rank.
    """

    def __init__(self, callbacks: Sequence[Callback], rank: int) -> None:
        self.callbacks = tuple(callbacks) if rank == 0 else ()

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def step(self, record: Record) -> None:
        """``on_step`` with the step ``record`` has just appended."""
        for callback in self.callbacks:
            callback.on_step(
                record.step[-1],
                loss=record.loss[-1],
                fm_loss=record.fm_loss[-1],
                kinetic=record.kinetic[-1],
                lr=record.lr[-1],
                grad_norm=record.grad_norm[-1],
            )

    def evaluate(self, done: int, record: Record, samples: EvalSamples | None) -> None:
        """``on_eval`` after step ``done``: the validation losses and the Sinkhorn value that
        ``record`` holds for this step (``None`` where it holds none)."""
        validated = bool(record.val_loss) and record.eval_step[-1] == done
        measured = bool(record.sinkhorn_step) and record.sinkhorn_step[-1] == done
        for callback in self.callbacks:
            callback.on_eval(
                done,
                val_loss=record.val_loss[-1] if validated else None,
                val_fm_loss=record.val_fm_loss[-1] if validated else None,
                sinkhorn=record.sinkhorn[-1] if measured else None,
                samples=samples,
            )

    def checkpoint(self, step: int, path: Path) -> None:
        """``on_checkpoint`` after the checkpoint of step ``step`` is written to ``path``."""
        for callback in self.callbacks:
            callback.on_checkpoint(step, path)

    def end(self, result: TrainResult) -> None:
        """``on_end`` with the run's result."""
        for callback in self.callbacks:
            callback.on_end(result)
