"""The pair source of a training run: where its batches ``(x0, x1)`` come from.

A coupling turns a draw of independent pairs into a :class:`PairSource`
(:meth:`Coupling.source <sitransport.couplings.Coupling.source>`): most couplings pair each
drawn batch themselves, a global plan draws the batches from its plans and uses them as
drawn. The caller (:func:`~sitransport.fit`) builds the source once; the trainer only draws
from it, pairs each batch with ``source.batch_coupling`` and never asks which coupling it
holds. The source also meters the run's OT solves for the progress bar and the record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from sitransport.couplings.base import Coupling
    from sitransport.couplings.global_plan import PlanSampler

__all__ = ["PairSource"]

#: ``draw(n, generator) -> (x0, x1)``: ``n`` pairs of normalised samples.
DrawPairs = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]


class PairSource:
    """The batches of a training run: ``draw(n, generator)`` and the coupling that pairs
    each drawn batch, with the run's OT solve times.

    Built by a coupling's :meth:`~sitransport.couplings.Coupling.source`, not by hand.

    Args:
        draw: ``draw(n, generator)`` returning ``n`` pairs ``(x0, x1)``.
        batch_coupling: the coupling applied to each drawn batch (``Independent()`` when the
            draw already pairs them, as a global plan does).
        coupling: the coupling as the user named it, which records and checkpoint
            fingerprints state. Default ``None``: ``batch_coupling``.
        plans: the sampler whose plan solves are metered, for a source drawn from plans.
            Default ``None``: the per-batch solves of ``batch_coupling`` are metered.

    Example:
        >>> import torch
        >>> from sitransport.couplings import ExactOT
        >>> draw = lambda n, g: (torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g))
        >>> source = ExactOT(processes=0).source(draw)
        >>> type(source.batch_coupling).__name__, source.coupling is source.batch_coupling
        ('ExactOT', True)
    """

    def __init__(
        self,
        draw: DrawPairs,
        batch_coupling: Coupling,
        *,
        coupling: Coupling | None = None,
        plans: PlanSampler | None = None,
    ) -> None:
        self.draw = draw
        self.batch_coupling = batch_coupling
        self.coupling = batch_coupling if coupling is None else coupling
        self.plans = plans
        self._start = batch_coupling.solve_time

    def _batches(self) -> tuple[int, float]:
        now = self.batch_coupling.solve_time
        return int(now["count"] - self._start["count"]), now["total"] - self._start["total"]

    def postfix(self) -> dict[str, str]:
        """For the progress bar: ``ot=0.61s/plan`` (the latest plan) or ``ot=3.1ms`` (mean
        per batch so far); empty while nothing was solved.

        Example:
            >>> import torch
            >>> from sitransport.couplings import Independent
            >>> Independent().source(lambda n, g: (torch.zeros(n, 1),) * 2).postfix()
            {}
        """
        if self.plans is not None:
            seconds = self.plans.solve_seconds
            return {"ot": f"{_duration(seconds[-1])}/plan"} if seconds else {}
        count, total = self._batches()
        return {"ot": _duration(total / count)} if count else {}

    def attrs(self) -> dict[str, Any]:
        """For the training record (``flow.history.attrs``): the plan solve times and plan
        size, or the mean per-batch solve time and the number of batches solved.

        Example:
            >>> import torch
            >>> from sitransport.couplings import Independent
            >>> Independent().source(lambda n, g: (torch.zeros(n, 1),) * 2).attrs()
            {}
        """
        if self.plans is not None:
            return {
                "ot_plan_solve_s": list(self.plans.solve_seconds),
                "ot_plan_n": self.plans.coupling.n,
            }
        count, total = self._batches()
        return {"ot_batch_solve_ms": 1e3 * total / count, "ot_batches": count} if count else {}


def _duration(seconds: float) -> str:
    return f"{seconds:.2f}s" if seconds >= 1.0 else f"{1e3 * seconds:.1f}ms"
