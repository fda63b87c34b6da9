"""The refresh and resume logic of the global plans, shared by
:class:`~sitransport.couplings.PlanSampler` (exact plans, solved in a worker process) and
:class:`~sitransport.couplings.EntropicPlanSampler` (entropic plans, solved in a background
thread on the training device): :class:`RefreshedPlanSampler` draws batches from the current
plan, starts the next one halfway through its lifetime, installs it when due, and saves and
restores its position. A subclass says only how a plan is solved (:meth:`_solver`) and where
it is solved ahead of time (:meth:`_executor`)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import torch
from torch import Tensor

from sitransport._validation import torch_generator
from sitransport.couplings.base import End

# RefreshedPlanSampler, check_end and subsample are shared by the global plans, not public API
__all__: list[str] = []

#: A solved plan: ``(rows, cols, weights, seconds)``, the subsamples' indices of its pairs
#: (numpy arrays or tensors), their weights (``None``: uniform) and the solve's seconds.
Solved = tuple[Any, Any, Any, float]


class RefreshSettings(Protocol):
    """The settings a refreshed plan follows: ``n`` points per end, ``reuse`` passes."""

    @property
    def n(self) -> int: ...

    @property
    def reuse(self) -> int | None: ...


C = TypeVar("C", bound=RefreshSettings)


class RefreshedPlanSampler(abc.ABC, Generic[C]):
    """``draw(m, generator)``: ``m`` pairs drawn from the current plan between subsamples of
    two ends, re-solved on fresh subsamples once ``reuse * n`` pairs have been drawn from it
    (the next plan is started once half of them have been; see
    :class:`~sitransport.couplings.GlobalOT` for the policy). Its position (current plan,
    pairs drawn from it, subsample generator) is in :meth:`state_dict`, so a checkpointed
    run resumes exactly without solving again.

    Subclasses set ``coupling_type`` (the settings' class) and ``weighted`` (plans carry
    pair weights, saved in :meth:`state_dict`), and implement :meth:`_solver` and
    :meth:`_executor`.

    Args:
        coupling: the settings (of type ``coupling_type``).
        x0: the source end: samples ``(n0, ...)`` or ``sample(m, generator)``.
        x1: the target end, as ``x0`` (same sample shape).
        seed: seed of the generator of the subsamples (and whatever else a solve draws).
            Default ``0``.

    Raises:
        TypeError: ``coupling`` is not a ``coupling_type``, or an end is neither a tensor
            nor a callable.
        ValueError: finite ends with different sample shapes, or an empty one.
    """

    coupling_type: ClassVar[type]
    weighted: ClassVar[bool]

    def __init__(self, coupling: C, x0: End, x1: End, *, seed: int = 0) -> None:
        if not isinstance(coupling, self.coupling_type):
            raise TypeError(
                f"coupling must be a {self.coupling_type.__name__}, got {type(coupling).__name__}"
            )
        for end, name in ((x0, "x0"), (x1, "x1")):
            check_end(end, name)
        if isinstance(x0, Tensor) and isinstance(x1, Tensor) and x0.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"x0 and x1 must have the same sample shape, got {tuple(x0.shape[1:])} "
                f"and {tuple(x1.shape[1:])}"
            )
        self.coupling = coupling
        self.fixed = all(isinstance(e, Tensor) and e.shape[0] <= coupling.n for e in (x0, x1))
        self.solve_seconds: list[float] = []
        self._ends = (x0, x1)
        self._gen = torch_generator(seed)
        self._mark = self._gen.get_state()  # generator state before the pending subsample
        self._pairs: tuple[Tensor, Tensor, Tensor | None] | None = None
        self._drawn = 0
        self._next: tuple[Tensor, Tensor, Callable[[], Solved]] | None = None

    @abc.abstractmethod
    def _solver(self, sub0: Tensor, sub1: Tensor) -> Callable[[], Solved]:
        """The solve of the plan between two subsamples, as a function of no arguments
        (picklable where :meth:`_executor` is a process pool); it may draw from the
        subsample generator (after the subsamples)."""

    @abc.abstractmethod
    def _executor(self) -> Executor | None:
        """Where the next plan is solved while the current one is in use (``None``: in
        place, when it is due)."""

    def __call__(self, m: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        pairs = self._pairs
        if pairs is None or self._due():
            pairs = self._install()
        x0, x1, weights = pairs
        if weights is None:
            idx = torch.randint(0, x0.shape[0], (m,), generator=generator)
        else:
            idx = torch.multinomial(weights, m, replacement=True, generator=generator)
        self._drawn += m
        if self._next is None and self._halfway():
            self._next = self._start(True)  # halfway through this plan: start the next one
        return x0[idx], x1[idx]

    def _refreshes(self) -> bool:
        return not self.fixed and self.coupling.reuse is not None

    def _lifetime(self) -> int:
        return (self.coupling.reuse or 0) * self.coupling.n  # pairs drawn from a plan

    def _due(self) -> bool:
        return self._refreshes() and self._drawn >= self._lifetime()

    def _halfway(self) -> bool:
        return self._refreshes() and 2 * self._drawn >= self._lifetime()

    def _install(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """Make the pending plan (or a new one, solved now) current; its pairs and weights."""
        sub0, sub1, result = self._next if self._next is not None else self._start(False)
        rows, cols, weights, seconds = result()
        rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
        w = None if weights is None else torch.as_tensor(weights)
        self._pairs = (sub0[rows.to(sub0.device)], sub1[cols.to(sub1.device)], w)
        self.solve_seconds.append(float(seconds))
        self._drawn, self._next = 0, None
        return self._pairs

    def _start(self, prefetch: bool) -> tuple[Tensor, Tensor, Callable[[], Solved]]:
        """Draw the next plan's subsamples; solve them on the :meth:`_executor` (when
        ``prefetch``), or in place when the result is asked for."""
        self._mark = self._gen.get_state()
        sub0, sub1 = (subsample(e, self.coupling.n, self._gen) for e in self._ends)
        solve = self._solver(sub0, sub1)
        pool = self._executor() if prefetch else None
        if pool is None:
            return sub0, sub1, solve
        return sub0, sub1, pool.submit(solve).result

    def state_dict(self) -> dict[str, Any]:
        """The position: current plan's pairs (and weights, for weighted plans), pairs
        drawn from it, the subsample generator (as before the pending plan's draw) and the
        solve times.

        Example:
            >>> import torch
            >>> from sitransport.couplings import GlobalOT
            >>> stream = lambda m, g: torch.randn(m, 2, generator=g, dtype=torch.float64)
            >>> coupling = GlobalOT(n=16, reuse=1, processes=0)
            >>> draw, again = coupling.sampler(stream, stream), coupling.sampler(stream, stream)
            >>> g = torch.Generator().manual_seed(0)
            >>> _ = draw(16, g)
            >>> again.load_state_dict(draw.state_dict())
            >>> h = g.clone_state()
            >>> torch.equal(draw(16, g)[1], again(16, h)[1])  # a new plan, the same in both
            True
        """
        x0, x1, weights = self._pairs if self._pairs is not None else (None, None, None)
        plan = {"x0": x0, "x1": x1, "weights": weights} if self.weighted else {"x0": x0, "x1": x1}
        return {
            **plan,
            "drawn": self._drawn,
            "generator": self._mark if self._next is not None else self._gen.get_state(),
            "solve_seconds": list(self.solve_seconds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position returned by :meth:`state_dict` (checkpoint resume); the
        pending plan's subsamples are drawn again from the saved generator state.

        Args:
            state: a dict returned by :meth:`state_dict` (generator state, current plan's pairs
                and weights, pairs drawn, solve times).

        Example:
            >>> import torch
            >>> from sitransport.couplings import GlobalEntropicOT
            >>> x = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
            >>> draw = GlobalEntropicOT().sampler(x, x + 1)
            >>> _ = draw(2, torch.Generator().manual_seed(0))
            >>> resumed = GlobalEntropicOT().sampler(x, x + 1)
            >>> resumed.load_state_dict(draw.state_dict())
            >>> resumed.solve_seconds == draw.solve_seconds  # restored, not re-solved
            True
        """
        self._gen.set_state(state["generator"].cpu())
        self._next = None
        weights = state["weights"] if self.weighted else None
        self._pairs = None if state["x0"] is None else (state["x0"], state["x1"], weights)
        self._drawn = int(state["drawn"])
        self.solve_seconds = [float(s) for s in state["solve_seconds"]]
        if self._pairs is not None and self._halfway():
            self._next = self._start(True)  # it was pending: draw it again, from the mark


def check_end(end: Any, name: str) -> None:
    if isinstance(end, Tensor):
        if end.ndim < 2 or end.shape[0] < 1:
            raise ValueError(
                f"{name} must be samples of shape (N, ...) with N >= 1, got shape "
                f"{tuple(end.shape)}"
            )
    elif not callable(end):
        raise TypeError(
            f"{name} must be a torch.Tensor of samples or a function sample(m, generator), "
            f"got {type(end).__name__}"
        )


def subsample(end: End, n: int, gen: torch.Generator) -> Tensor:
    """``n`` points of an end: fresh draws of a stream, a finite set whole (at most ``n``
    points) or ``n`` of its points without replacement."""
    if not isinstance(end, Tensor):
        return end(n, gen)
    if end.shape[0] <= n:
        return end
    return end[torch.randperm(end.shape[0], generator=gen)[:n]]
