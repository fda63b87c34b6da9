r"""A global entropic plan: batches drawn from the entropic plan (geomloss) between large
subsamples of the two ends, or the whole training sets (:class:`GlobalEntropicOT`), solved on
the training device and refreshed in a background thread by :class:`EntropicPlanSampler`."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor

from sitransport._validation import check_bool, check_device, check_positive_int
from sitransport.couplings.base import Coupling, DrawPairs, End, PairSource
from sitransport.couplings.entropic import (
    EntropicOT,
    check_settings,
    draw_partners,
    draw_rows,
    solve_potentials,
)
from sitransport.couplings.global_plan import plans_source
from sitransport.couplings.plan_refresh import RefreshedPlanSampler, Solved

__all__ = ["EntropicPlanSampler", "GlobalEntropicOT"]


@dataclass(frozen=True)
class GlobalEntropicOT(Coupling):
    r"""Batches drawn from one entropic OT plan between ``n`` points of each end, solved by
    geomloss on the training device and refreshed in the background.

    The plan is that of :class:`~sitransport.couplings.EntropicOT` (same ``blur``, ``reach``,
    ``scaling``, ``iterations`` and ``backend``; see :mod:`~sitransport.couplings.entropic`
    for the blur's meaning and the unbalanced semantics) between two subsamples: every one of
    its ``n`` rows gets a partner drawn from its row (balanced), or ``n`` rows are drawn by
    plan mass with a partner each (unbalanced), and batches are drawn from these ``n`` pairs
    with replacement. The refresh policy is :class:`~sitransport.couplings.GlobalOT`'s: ends
    of at most ``n`` points are used whole (then one plan, never refreshed); otherwise a new
    plan on fresh subsamples once ``reuse * n`` pairs have been drawn, computed in a
    background thread (torch releases the GIL in its kernels) once half of them have been
    drawn. Pairs are identical with ``background=False``.

    **Cost.** Each Sinkhorn update is two soft C-transforms over the ``n x n`` cost matrix,
    never stored: geomloss's dense backend up to ``2**22`` entries, then KeOps (the ``keops``
    extra) when installed, else torch in row chunks. Annealing takes about
    ``log(diameter / blur) / log(1 / scaling)`` updates, plus ``iterations``. The defaults
    are :class:`~sitransport.couplings.EntropicOT`'s (``scaling=0.9, iterations=50``). A
    cheaper schedule (``0.7, 20``: about a third of the updates) gave the same mean squared
    error to the exact map on a 2-D Gaussian pair (``bench_entropic_plan``), but its plan
    misses its column marginal (partners off uniform by 8.6% in total variation on
    N -> moons at ``n = 2048``, against 1.8% at the defaults): the pairs' target side is then
    not the target, and the flow's samples are worse than with independent pairs
    (``bench_ot_entropic_schedule``: W2 ratio 2.6 against 1.5 at the defaults).

    Args:
        n: points per end in each plan. Default ``65536``.
        blur: entropic scale in training units (``eps = blur**2``). Default ``0.1``.
        reach: unbalanced OT with ``rho = reach**2``; ``None``: balanced. Default ``None``.
        scaling: geomloss's annealing ratio. Default ``0.9`` (see above).
        iterations: Sinkhorn updates at the final blur. Default ``50``.
        reuse: passes over a plan's pairs before it is re-solved on fresh subsamples
            (``None``: never). Default ``250``.
        background: solve the next plan in a background thread. Default ``True``.
        backend: as :class:`~sitransport.couplings.EntropicOT`'s. Default ``"auto"``.
        device: where plans are solved (``None``: CUDA when available, else the ends'
            device). Default ``None``.

    Raises:
        TypeError, ValueError: a setting out of range (named).

    Example:
        >>> import torch
        >>> from sitransport.couplings import GlobalEntropicOT
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = torch.randn(300, 2, generator=g, dtype=torch.float64)
        >>> draw = GlobalEntropicOT(n=512, blur=0.05).sampler(x0, x0 + 3.0)
        >>> a, b = draw(4, g)
        >>> float((b - a - 3.0).abs().max()) < 0.2  # each point near its shifted copy
        True
        >>> draw.fixed, len(draw.solve_seconds)
        (True, 1)
    """

    n: int = 65536
    blur: float = 0.1
    reach: float | None = None
    scaling: float = 0.9
    iterations: int = 50
    reuse: int | None = 250
    background: bool = True
    backend: str = "auto"
    device: str | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.n, "n", minimum=2)
        check_settings(self.blur, self.reach, self.scaling, self.iterations, self.backend)
        if self.reuse is not None:
            check_positive_int(self.reuse, "reuse")
        check_bool(self.background, "background")
        if self.device is not None:
            if not isinstance(self.device, str):
                raise TypeError(f"device must be a str or None, got {self.device!r}")
            check_device(self.device)

    def _inner(self) -> EntropicOT:
        """The minibatch coupling with this plan's settings (for :meth:`pair`)."""
        return EntropicOT(self.blur, self.reach, self.scaling, self.iterations, self.backend)

    def pair(self, x0, x1, generator=None):
        """Pair one given batch by its own entropic plan (:class:`EntropicOT` with these
        settings), where there is no plan to draw from; training draws from :meth:`sampler`.

        Args:
            x0: batch of rho0, shape ``(n0, ...)``.
            x1: batch of rho1, shape ``(n1, ...)``.
            generator: random source of the partners. Default ``None``.

        Example:
            >>> import torch
            >>> x0, x1 = torch.tensor([[0.0], [10.0]]), torch.tensor([[10.5], [0.5]])
            >>> GlobalEntropicOT().pair(x0, x1)[1].flatten().tolist()
            [0.5, 10.5]
        """
        inner = self._inner()
        out = inner.pair(x0, x1, generator)
        self._record(inner.solve_time["last"])
        return out

    def sampler(self, x0: End, x1: End, *, seed: int = 0) -> EntropicPlanSampler:
        """A ``draw(m, generator)`` of pairs from this coupling's plans between two ends
        (finite sample sets or streams ``sample(m, generator)``).

        Args:
            x0: the source end.
            x1: the target end (same sample shape).
            seed: seeds the subsamples and the partner draws of the plans. Default ``0``.

        Example:
            >>> import torch
            >>> stream = lambda m, g: torch.randn(m, 2, generator=g, dtype=torch.float64)
            >>> draw = GlobalEntropicOT(n=64, reuse=2, background=False).sampler(stream, stream)
            >>> g = torch.Generator().manual_seed(0)
            >>> [draw(32, g)[0].shape[0] for _ in range(5)], len(draw.solve_seconds)
            ([32, 32, 32, 32, 32], 2)
        """
        return EntropicPlanSampler(self, x0, x1, seed=seed)

    def source(
        self,
        draw: DrawPairs,
        *,
        seed: int = 0,
        ends: Callable[[], tuple[End, End]] | None = None,
    ) -> PairSource:
        """The batches of a training run drawn from this coupling's plans, as
        :meth:`GlobalOT.source <sitransport.couplings.GlobalOT.source>` builds them.

        Args:
            draw: ``draw(n, generator)`` of independent pairs, or a sampler of plans.
            seed: the run's seed; the plans are seeded by ``seed + 4``. Default ``0``.
            ends: a function returning the two ends. Default ``None``: the sides of ``draw``.

        Raises:
            ValueError: ``draw`` is stateful (a dataset's items) and no ``ends`` are given.

        Example:
            >>> import torch
            >>> x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
            >>> source = GlobalEntropicOT(n=64).source(None, ends=lambda: (x, x + 1.0))
            >>> type(source.draw).__name__, type(source.batch_coupling).__name__
            ('EntropicPlanSampler', 'Independent')
        """
        return plans_source(self, draw, seed, ends)

    def _device(self, like: Tensor) -> torch.device:
        """The device plans are solved on, for ends on ``like``'s device."""
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda") if torch.cuda.is_available() else like.device

    def spec(self) -> dict[str, Any]:
        return {
            "name": "global_entropic",
            "n": self.n,
            "blur": self.blur,
            "reach": self.reach,
            "scaling": self.scaling,
            "iterations": self.iterations,
            "reuse": self.reuse,
            "background": self.background,
            "backend": self.backend,
            "device": self.device,
        }


def solve_pairs(
    coupling: GlobalEntropicOT, sub0: Tensor, sub1: Tensor, seed: int
) -> tuple[Tensor, Tensor, None, float]:
    """The ``(rows, cols)`` of the pairs of one entropic plan between two subsamples (on the
    CPU), their weights (``None``: uniform) and the seconds it took, partners drawn with a
    generator seeded by ``seed``."""
    start = time.perf_counter()
    device = coupling._device(sub0)
    a = sub0.detach().flatten(1).to(device)
    b = sub1.detach().flatten(1).to(device=device, dtype=a.dtype)
    pot = solve_potentials(
        a,
        b,
        blur=coupling.blur,
        reach=coupling.reach,
        scaling=coupling.scaling,
        iterations=coupling.iterations,
        backend=coupling.backend,
    )
    gen = torch.Generator().manual_seed(seed)
    rows = draw_rows(pot, a.shape[0], gen)
    cols = draw_partners(pot, rows, gen)
    return rows.cpu(), cols.cpu(), None, time.perf_counter() - start


class EntropicPlanSampler(RefreshedPlanSampler[GlobalEntropicOT]):
    """``draw(m, generator)``: ``m`` pairs drawn from the current entropic plan of a
    :class:`GlobalEntropicOT` coupling, re-solved on fresh subsamples when due (in a
    background thread), with :meth:`state_dict` / :meth:`load_state_dict` for exact resume.
    The refresh and resume logic is that of
    :class:`~sitransport.couplings.plan_refresh.RefreshedPlanSampler` (shared with
    :class:`~sitransport.couplings.PlanSampler`); here each plan is solved by geomloss on the
    training device, the next one in a background thread with ``background=True``.

    Args:
        coupling: the :class:`GlobalEntropicOT` settings.
        x0: the source end: samples ``(n0, ...)`` or ``sample(m, generator)``.
        x1: the target end, as ``x0``.
        seed: seed of the subsamples and of the partner draws. Default ``0``.

    Attributes:
        coupling: the settings.
        fixed: both ends are finite sets of at most ``n`` points: one plan, never re-solved.
        solve_seconds: seconds of each plan solved so far.

    Raises:
        TypeError: ``coupling`` is no :class:`GlobalEntropicOT`, or an end is neither a tensor
            nor a callable.
        ValueError: finite ends with different sample shapes, or an empty one.

    Example:
        >>> import torch
        >>> from sitransport.couplings import EntropicPlanSampler, GlobalEntropicOT
        >>> x0 = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
        >>> draw = EntropicPlanSampler(GlobalEntropicOT(), x0, x0.flip(0) + 0.5)
        >>> a, b = draw(3, torch.Generator().manual_seed(0))
        >>> (b - a).flatten().tolist()
        [0.5, 0.5, 0.5]
    """

    coupling_type = GlobalEntropicOT
    weighted = False

    def __init__(self, coupling: GlobalEntropicOT, x0: End, x1: End, *, seed: int = 0) -> None:
        super().__init__(coupling, x0, x1, seed=seed)
        self._pool: ThreadPoolExecutor | None = None

    def _solver(self, sub0: Tensor, sub1: Tensor) -> Callable[[], Solved]:
        """The solve, with the seed of its partner draws (drawn after the subsamples)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self._gen))
        return partial(solve_pairs, self.coupling, sub0, sub1, seed)

    def _executor(self) -> Executor | None:
        """The background thread (started on first use), with ``background=True``."""
        if not self.coupling.background:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="entropic-plan")
        return self._pool
