"""The divergence guard of a training run: :class:`DivergenceGuard` stops a run whose loss or
gradient norm became non-finite or whose flow-matching loss grew by orders of magnitude, with
a :class:`~sitransport.errors.TrainingDivergedError` naming the step."""

from __future__ import annotations

import math
import statistics

from sitransport.errors import TrainingDivergedError

__all__ = ["DivergenceGuard"]


class DivergenceGuard:
    """Stops a run that diverged, with :class:`TrainingDivergedError` naming the step.

    Checked on every step, before the optimiser moves the weights: a non-finite loss, a
    non-finite gradient norm (before clipping), or a flow-matching loss grown by orders of
    magnitude. Growth is measured on the running median of the last :attr:`window` batch
    losses, so one noisy batch cannot trigger it. The reference is the lowest running median
    seen so far, from the first step on (the untrained network's batch loss, so a run that
    diverges from its first steps is caught too); once :attr:`window` steps are recorded, the
    run stops when the running median exceeds :attr:`growth` times that reference *and* 10
    times the first step's loss. A single batch loss above ``growth**2`` times the reference
    stops it at once, so short runs that blow up in their first steps are caught too. The
    flow-matching loss ``E|v - dI/dt|^2 >= 0`` is used because the quadratic loss ``G`` can
    be negative. The state is rebuilt from the record's ``fm_loss``, so a resumed run checks
    the same way.

    Args:
        clip_grad: the run's gradient-clipping norm (``None``: no clipping), quoted in the advice of
            the error.
        fm_losses: flow-matching batch losses of the steps already done (the record's ``fm_loss``;
            empty for a new run).

    Example:
        >>> from sitransport.train import DivergenceGuard
        >>> DivergenceGuard(clip_grad=None, fm_losses=[1.0, 0.9]).lowest  # median(1.0, 0.9)
        0.95
    """

    window = 5
    growth = 1e4

    def __init__(self, clip_grad: float | None, fm_losses: list[float]) -> None:
        self.clip_grad = clip_grad
        self.recent: list[float] = []
        self.first = math.nan
        self.lowest = math.inf
        for value in fm_losses:
            self._level(value)

    def _level(self, fm: float) -> float | None:
        """The running median after ``fm``; ``None`` until the window is full."""
        self.recent = [*self.recent[1 - self.window :], fm]
        level = statistics.median(self.recent)
        if math.isnan(self.first):
            self.first = level
        self.lowest = min(self.lowest, level)
        return level if len(self.recent) == self.window else None

    def _advice(self, lr: float) -> str:
        clip = (
            f"lower clip_grad (now {self.clip_grad:.3g})"
            if self.clip_grad is not None
            else "turn on clip_grad (e.g. clip_grad=1.0)"
        )
        return f"lower lr (now {lr:.3g}), {clip}, or check the data scale"

    def check(self, step: int, loss: float, fm: float, grad_norm: float, lr: float) -> None:
        """Raise :class:`TrainingDivergedError` if step ``step`` (0-based) diverged.

        Args:
            step: the step, 0-based, named in the error.
            loss: the batch's quadratic loss G.
            fm: the batch's flow-matching loss ``E|v - dI/dt|^2``.
            grad_norm: the gradient norm before clipping.
            lr: the current learning rate, quoted in the advice of the error.

        Example:
            >>> guard = DivergenceGuard(clip_grad=1.0, fm_losses=[])
            >>> for step, fm in enumerate([2.0, 1.5, 1.2]):
            ...     guard.check(step, fm, fm, grad_norm=1.0, lr=1e-3)
            >>> guard.check(3, 1e9, 1e9, grad_norm=1.0, lr=1e-3)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            sitransport.errors.TrainingDivergedError: training diverged at step 3: ...
        """
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the loss became {loss} at step {step}; {self._advice(lr)}"
            )
        if not math.isfinite(grad_norm):
            raise TrainingDivergedError(
                f"the gradient norm became {grad_norm} at step {step} (loss {loss:.3g}); "
                f"{self._advice(lr)}"
            )
        level = self._level(fm)
        if fm > self.growth**2 * self.lowest:  # no noise explains 1e8 times in one step
            raise TrainingDivergedError(
                f"training diverged at step {step}: the flow-matching loss {fm:.3g} is "
                f"{fm / self.lowest:.3g} times its lowest {self.lowest:.3g}; {self._advice(lr)}"
            )
        if level is not None and level > self.growth * self.lowest and level > 10 * self.first:
            raise TrainingDivergedError(
                f"training diverged at step {step}: the flow-matching loss (median of the "
                f"last {self.window} steps) grew to {level:.3g}, {level / self.lowest:.3g} "
                f"times its lowest {self.lowest:.3g}; {self._advice(lr)}"
            )
