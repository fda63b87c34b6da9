"""The coupling interface: :class:`Coupling` (``pair``, ``submit``, ``spec``, ``source`` and
the solve clock), the product coupling :class:`Independent`, which pairs the batches as
drawn, and :class:`PairSource`, where a training run's batches come from.

A coupling turns a draw of independent pairs into a :class:`PairSource`
(:meth:`Coupling.source`): most couplings pair each drawn batch themselves, a global plan
draws the batches from its plans and uses them as drawn. The caller (:func:`~sitransport.fit`)
builds the source once; the trainer only draws from it, pairs each batch with
``source.batch_coupling`` and never asks which coupling it holds. The source also meters the
run's OT solves for the progress bar and the record."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

#: An end of a global plan: a finite set of samples ``(N, ...)`` or a function
#: ``sample(m, generator)`` returning ``m`` fresh draws.
End = Tensor | Callable[[int, torch.Generator], Tensor]
#: ``draw(n, generator) -> (x0, x1)``: ``n`` pairs of normalised samples (a conditional
#: fit's draw also returns the pairs' condition codes, ``(x0, x1, codes)``).
DrawPairs = Callable[[int, torch.Generator], tuple[Tensor, ...]]

__all__ = ["Coupling", "Independent", "PairSource"]


@runtime_checkable
class Plans(Protocol):
    """A sampler whose plan solves a :class:`PairSource` meters (a
    :class:`~sitransport.couplings.PlanSampler`, or the per-condition samplers of
    :mod:`~sitransport.couplings.conditional_plan`): the seconds of each solve and its
    coupling, whose ``n`` is the plan size."""

    solve_seconds: list[float]
    coupling: Any


class Coupling(abc.ABC):
    """Abstract coupling: ``pair(x0, x1, generator)`` returns the paired batches.

    Subclasses implement :meth:`pair` (abstract); :meth:`spec` is needed only to save or
    checkpoint the coupling by name, and :meth:`submit` only to overlap pairing with a step.

    Example:
        >>> import torch
        >>> from sitransport.couplings import ExactOT, Independent
        >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.5], [0.5]])
        >>> for coupling in (Independent(), ExactOT(processes=0)):
        ...     print(type(coupling).__name__, coupling.pair(x0, x1)[1].flatten().tolist())
        Independent [1.5, 0.5]
        ExactOT [0.5, 1.5]
    """

    @abc.abstractmethod
    def pair(
        self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pair the batches: ``x0[i]`` goes with ``x1_paired[i]``.

        Args:
            x0: batch of rho0, shape ``(n0, ...)``.
            x1: batch of rho1, shape ``(n1, ...)``.
            generator: random source for couplings that draw partners. Default ``None``.

        Returns:
            ``(x0_paired, x1_paired)``, both with ``n0`` rows (:class:`Independent` returns
            the batches as given, so equal sizes are the caller's to draw).

        Example:
            >>> import torch
            >>> from sitransport.couplings import ExactOT
            >>> x0 = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]])
            >>> x1 = x0[[2, 0, 1]] + 0.1
            >>> a, b = ExactOT(processes=0).pair(x0, x1)
            >>> torch.equal(a, x0), torch.allclose(b, x0 + 0.1)  # each point to its neighbour
            (True, True)
        """
        raise NotImplementedError

    def submit(
        self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None
    ) -> Callable[[], tuple[Tensor, Tensor]]:
        """Start pairing a batch; returns a function that completes it. Couplings that can
        overlap their work with a training step override this (default: pair now).

        Args:
            x0: batch of rho0, shape ``(n0, ...)``.
            x1: batch of rho1, shape ``(n1, ...)``.
            generator: random source for couplings that draw partners, as in :meth:`pair`. Default
                ``None``.

        Example:
            >>> import torch
            >>> from sitransport.couplings import ExactOT
            >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])
            >>> finish = ExactOT(processes=0).submit(x0, x1)  # ... train on the previous batch
            >>> finish()[1].flatten().tolist()
            [0.0, 1.0]
        """
        out = self.pair(x0, x1, generator)
        return lambda: out

    def spec(self) -> dict[str, Any]:
        """A plain-data description from which :func:`get_coupling` rebuilds this object.

        Example:
            >>> from sitransport.couplings import ExactOT, Sinkhorn, get_coupling
            >>> Sinkhorn(reg=0.1).spec()
            {'name': 'sinkhorn', 'reg': 0.1, 'replace': False}
            >>> get_coupling(ExactOT().spec())
            ExactOT(processes=1, block=256)
        """
        raise NotImplementedError

    def source(
        self,
        draw: DrawPairs,
        *,
        seed: int = 0,
        ends: Callable[[], tuple[End, End]] | None = None,
    ) -> PairSource:
        """The batches of a training run with this coupling: ``draw``'s batches, each paired
        by this coupling. A coupling that draws its batches otherwise (a global plan)
        overrides this; the trainer only draws from the source it is given.

        Args:
            draw: ``draw(n, generator)`` returning ``n`` independent pairs ``(x0, x1)``.
            seed: the run's seed, for couplings with random state of their own (a global
                plan's subsamples). Default ``0``.
            ends: a function returning the two ends (finite sample sets or streams), for a
                coupling that solves over whole ends rather than batches; called only by
                such a coupling. Default ``None``: the ends are seen through ``draw`` only.

        Returns:
            A :class:`~sitransport.couplings.PairSource`.

        Example:
            >>> import torch
            >>> from sitransport.couplings import ExactOT
            >>> draw = lambda n, g: (torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g))
            >>> source = ExactOT(processes=0).source(draw)
            >>> source.draw is draw, source.batch_coupling
            (True, ExactOT(processes=0, block=256))
        """
        return PairSource(draw, self)

    @property
    def solve_time(self) -> dict[str, float]:
        """Wall-clock seconds of the OT solves this object has run (in a worker process or
        in place): ``{"count": .., "total": .., "last": ..}``; all zero for couplings that
        solve nothing. :func:`~sitransport.fit` shows the mean in its progress bar."""
        return dict(self._clock())

    def _clock(self) -> dict[str, float]:
        # bookkeeping outside the (frozen) dataclass fields: not part of equality or spec
        return self.__dict__.setdefault("_solve_clock", {"count": 0, "total": 0.0, "last": 0.0})

    def _record(self, seconds: float) -> None:
        clock = self._clock()
        clock["count"] += 1
        clock["total"] += seconds
        clock["last"] = seconds


@dataclass(frozen=True)
class Independent(Coupling):
    """The product coupling: batches are used as drawn.

    Example:
        >>> import torch
        >>> from sitransport.couplings import Independent
        >>> x0, x1 = torch.zeros(3, 2), torch.ones(3, 2)
        >>> a, b = Independent().pair(x0, x1)
        >>> a is x0, b is x1
        (True, True)
    """

    def pair(self, x0, x1, generator=None):
        return x0, x1

    def spec(self) -> dict[str, Any]:
        return {"name": "independent"}


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
        plans: Plans | None = None,
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
