r"""Couplings: how a minibatch of ``x0`` is paired with a minibatch of ``x1``.

The interpolant loss is minimised over pairs :math:`(x_0, x_1) \sim \pi`. With the
independent coupling :math:`\pi = \rho_0 \otimes \rho_1` (the paper's) the learned flow
transports ``rho0`` to ``rho1`` but not optimally. Pairing each minibatch by optimal
transport (Pooladian et al. 2023, arXiv:2304.14772; Tong et al. 2023, arXiv:2302.00482)
straightens the paths toward the Benamou–Brenier optimum.

- ``independent``: the batches as drawn.
- ``exact_ot``: the exact OT plan of the batch for the squared Euclidean cost. For uniform
  batches of equal size the plan is a permutation (Birkhoff), found by POT's ``ot.emd``
  (the assignment solver ``scipy.optimize.linear_sum_assignment`` as fallback); its cost
  equals POT's ``ot.emd2`` (tested). Pairs are taken without replacement: every point is used
  exactly once. Batches larger than ``block`` (256) are cut into blocks, each paired by exact
  OT: a block-diagonal plan, so a batch of 512 costs two solves of 256, not one of 512.
- ``global_ot``: the exact OT plan of large subsamples (``n`` = 4096 points) of the two
  training sets, solved once (or every ``reuse`` passes over its pairs, on fresh subsamples)
  and batches drawn from it (:class:`GlobalOT`, :class:`PlanSampler`): OT pairs at about
  the cost of independent ones.
- ``sinkhorn``: the entropic plan (POT's log-domain solver with epsilon scaling, stable at
  small ``reg``); each ``x0`` is paired with one ``x1`` drawn from its row of the plan, so no
  ``x0`` is dropped or duplicated (``x1`` may repeat); ``replace=True`` instead draws
  ``n`` pairs from the whole plan.

Couplings act on whatever batch they are given, on its device, so under data parallelism
they can run on the all-gathered global batch.
"""

from __future__ import annotations

import abc
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from sitransport._validation import check_positive, check_positive_int, resolve, torch_generator

__all__ = [
    "Coupling",
    "ExactOT",
    "GlobalOT",
    "Independent",
    "PlanSampler",
    "Sinkhorn",
    "get_coupling",
]

#: Largest block solved by exact minibatch OT (larger batches are cut into blocks).
BLOCK = 256


def _sq_cost(x0: Tensor, x1: Tensor) -> Tensor:
    """Squared Euclidean cost matrix of two flattened batches, in float64."""
    a, b = x0.flatten(1).to(torch.float64), x1.flatten(1).to(torch.float64)
    return torch.cdist(a, b).pow(2)


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
            ``(x0_paired, x1_paired)``, both with ``n0`` rows.

        Example:
            >>> import torch
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
            >>> Sinkhorn(reg=0.1).spec()
            {'name': 'sinkhorn', 'reg': 0.1, 'replace': False}
            >>> get_coupling(ExactOT().spec())
            ExactOT(processes=1, block=256)
        """
        raise NotImplementedError

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


@dataclass(frozen=True)
class ExactOT(Coupling):
    """Exact minibatch optimal transport (squared Euclidean cost), uniform weights.

    Equal batch sizes: the optimal permutation (POT's network simplex, whose basic
    solution for equal uniform weights is a vertex of the Birkhoff polytope, with the
    assignment solver as fallback). Batches of more than ``block`` pairs are cut into
    ``ceil(n / block)`` consecutive blocks of near-equal size and each block is paired by
    exact OT: the plan is block-diagonal, optimal within each block and at most as costly as
    the drawn pairing, but not the optimum of the whole batch. Batches drawn i.i.d. (as
    :func:`~sitransport.fit` draws them) make the blocks random. The solver's cost grows
    faster than ``n^2``, so a batch of 512 in blocks of 256 costs about twice a batch of
    256 instead of about seven times. Unequal sizes: ``ot.emd``'s plan of the whole batch,
    each ``x0`` paired with the ``x1`` drawn from its row.

    Args:
        processes: with ``processes=1``, :meth:`submit` solves the next batch's assignment in
            a worker process while the current step trains (the solver holds the GIL, so a
            thread would not overlap); ``0`` solves in place. Pairings are identical. Default ``1``.
        block: largest block solved exactly (``None``: the whole batch, one solve). Default ``256``.

    Raises:
        ValueError: ``processes`` is negative or ``block`` is below 2.

    Example:
        >>> import torch
        >>> from sitransport.couplings import ExactOT
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 3
        >>> a, b = ExactOT(processes=0).pair(x0, x1)
        >>> cost = lambda p, q: float((p - q).pow(2).sum(1).mean())
        >>> cost(a, b) <= cost(x0, x1)  # the optimal pairing costs at most the drawn one
        True
        >>> a, b = ExactOT(processes=0, block=32).pair(x0, x1)  # two blocks of 32
        >>> sorted(b[:32].tolist()) == sorted(x1[:32].tolist())  # pairs stay in their block
        True
    """

    processes: int = 1
    block: int | None = BLOCK

    def __post_init__(self) -> None:
        check_positive_int(self.processes, "processes", minimum=0)
        if self.block is not None:
            check_positive_int(self.block, "block", minimum=2)

    def pair(self, x0, x1, generator=None):
        if x0.shape[0] == x1.shape[0]:
            perm, seconds = _block_permutation(
                x0.detach().flatten(1).cpu().numpy(),
                x1.detach().flatten(1).cpu().numpy(),
                self.block,
            )
            self._record(seconds)
            return x0, x1[torch.from_numpy(perm).to(x1.device)]
        start = time.perf_counter()
        cost = _sq_cost(x0, x1).cpu().numpy()
        a = np.full(x0.shape[0], 1.0 / x0.shape[0])
        b = np.full(x1.shape[0], 1.0 / x1.shape[0])
        plan = torch.from_numpy(ot.emd(a, b, cost, numItermax=10_000_000))
        self._record(time.perf_counter() - start)
        return _pair_rows(x0, x1, plan, generator)

    def submit(self, x0, x1, generator=None):
        pool = _pool() if self.processes > 0 and (os.cpu_count() or 1) > 1 else None
        if pool is None or x0.shape[0] != x1.shape[0]:
            return super().submit(x0, x1, generator)
        fut = pool.submit(
            _block_permutation,
            x0.detach().flatten(1).cpu().numpy(),
            x1.detach().flatten(1).cpu().numpy(),
            self.block,
        )

        def finish() -> tuple[Tensor, Tensor]:
            perm, seconds = fut.result()
            self._record(seconds)
            return x0, x1[torch.from_numpy(perm).to(x1.device)]

        return finish

    def spec(self) -> dict[str, Any]:
        return {"name": "exact_ot", "processes": self.processes, "block": self.block}


def _cost_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean cost matrix ``|a|^2 + |b|^2 - 2 a.b`` in float64, with two
    ``n0 x n1`` arrays at the peak (a plan of 4096 points needs 2 x 134 MB)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cross = a64 @ b64.T
    cross *= 2.0
    return np.subtract(np.add.outer((a64**2).sum(1), (b64**2).sum(1)), cross, out=cross)


def _permutation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The optimal assignment ``perm`` (``a[i]`` to ``b[perm[i]]``) for the squared
    Euclidean cost; numpy-only so a worker process can run it."""
    cost = _cost_matrix(a, b)
    n = cost.shape[0]
    w = np.full(n, 1.0 / n)
    plan = ot.emd(w, w, cost, numItermax=10_000_000)
    perm = plan.argmax(1)
    if np.array_equal(np.sort(perm), np.arange(n)) and np.allclose(plan.max(1), 1.0 / n):
        return perm
    return linear_sum_assignment(cost)[1]  # degenerate basis: solve the assignment directly


def _block_permutation(a: np.ndarray, b: np.ndarray, block: int | None) -> tuple[np.ndarray, float]:
    """The optimal assignment within ``ceil(n / block)`` consecutive near-equal blocks, and
    the seconds it took (measured where it runs, e.g. in the worker process)."""
    start = time.perf_counter()
    n = a.shape[0]
    k = 1 if block is None else -(-n // block)
    perm = np.empty(n, dtype=np.int64)
    for idx in np.array_split(np.arange(n), k):
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        perm[lo:hi] = lo + _permutation(a[lo:hi], b[lo:hi])
    return perm, time.perf_counter() - start


_POOL: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor | None:
    """One worker process, forked (as torch's DataLoader workers are on Linux): spawn would
    re-import the caller's ``__main__``, re-running unguarded user scripts. ``None`` where
    fork is unavailable (then pairing runs in place)."""
    global _POOL
    if _POOL is None and "fork" in mp.get_all_start_methods():
        _POOL = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("fork"))
    return _POOL


@dataclass(frozen=True)
class Sinkhorn(Coupling):
    """Entropic minibatch OT with regularisation ``reg`` relative to the mean cost.

    Args:
        reg: entropic regularisation as a fraction of the batch's mean squared distance
            (scale-free; small values approach exact OT). Default ``0.05``.
        replace: draw ``n`` pairs from the whole plan with replacement (as torchcfm does)
            instead of one partner per ``x0``. Default ``False``.

    Example:
        >>> import torch
        >>> from sitransport.couplings import Sinkhorn
        >>> x0, x1 = torch.tensor([[0.0], [10.0]]), torch.tensor([[10.5], [0.5]])
        >>> g = torch.Generator().manual_seed(0)
        >>> Sinkhorn(reg=0.01).pair(x0, x1, g)[1].flatten().tolist()
        [0.5, 10.5]
    """

    reg: float = 0.05
    replace: bool = False

    def __post_init__(self) -> None:
        check_positive(self.reg, "reg")

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The entropic plan (float64, rows sum to ``1/n0``, columns to ``1/n1``).

        Args:
            x0: batch of rho0, shape ``(n0, ...)`` (flattened to vectors for the cost).
            x1: batch of rho1, shape ``(n1, ...)``, same sample shape.

        Example:
            >>> import torch
            >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0], [2.0]])
            >>> plan = Sinkhorn(reg=0.05).plan(x0, x1)
            >>> plan.shape, [round(r, 4) for r in plan.sum(1).tolist()]
            (torch.Size([2, 3]), [0.5, 0.5])
        """
        cost = _sq_cost(x0, x1).cpu().numpy()
        a = np.full(x0.shape[0], 1.0 / x0.shape[0])
        b = np.full(x1.shape[0], 1.0 / x1.shape[0])
        reg = self.reg * float(cost.mean())
        # log-domain iterations with epsilon scaling: stable at small reg (the plain
        # solver's kernel exp(-C / reg) underflows), and fast where sinkhorn_log crawls
        with warnings.catch_warnings():  # inner stages at large eps need not converge
            warnings.simplefilter("ignore", UserWarning)
            plan = ot.bregman.sinkhorn_epsilon_scaling(
                a, b, cost, reg, numItermax=100, stopThr=1e-9
            )
        plan = torch.from_numpy(np.asarray(plan, dtype=np.float64))
        if not bool(torch.isfinite(plan).all()):
            raise FloatingPointError(f"Sinkhorn plan is not finite at reg={self.reg}")
        error = float((plan.sum(0) * x1.shape[0] - 1.0).abs().max())
        if error > 1e-2:
            warnings.warn(
                f"Sinkhorn plan marginals are off by {error:.2%} at reg={self.reg}; "
                "increase reg or use exact_ot",
                stacklevel=2,
            )
        return plan

    def pair(self, x0, x1, generator=None):
        plan = self.plan(x0, x1)
        if not self.replace:
            return _pair_rows(x0, x1, plan, generator)
        flat = (plan / plan.sum()).flatten()
        idx = torch.multinomial(flat, x0.shape[0], replacement=True, generator=generator)
        rows, cols = idx // plan.shape[1], idx % plan.shape[1]
        return x0[rows.to(x0.device)], x1[cols.to(x1.device)]

    def spec(self) -> dict[str, Any]:
        return {"name": "sinkhorn", "reg": self.reg, "replace": self.replace}


def _pair_rows(
    x0: Tensor, x1: Tensor, plan: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Pair every ``x0[i]`` with one ``x1[j]``, ``j ~ plan[i, :] / plan[i, :].sum()``."""
    cols = torch.multinomial(plan.clamp_min(0), 1, generator=generator).squeeze(1)
    return x0, x1[cols.to(x1.device)]


#: An end of a :class:`PlanSampler`: a finite set of samples ``(N, ...)`` or a function
#: ``sample(m, generator)`` returning ``m`` fresh draws.
End = Tensor | Callable[[int, torch.Generator], Tensor]


@dataclass(frozen=True)
class GlobalOT(Coupling):
    r"""Amortised optimal transport: batches drawn from one exact OT plan of large subsamples.

    Minibatch OT (:class:`ExactOT`) solves an assignment for every batch. ``GlobalOT``
    instead solves the exact OT problem (squared Euclidean cost) once between ``n`` points of
    each training set, in the coordinates the network trains in, and draws every batch's
    pairs from that plan (with replacement), through :meth:`sampler`. Training then costs
    what independent pairing costs plus one solve per plan. :func:`~sitransport.fit` builds
    the sampler from its training sets; :func:`~sitransport.train` wraps any ``draw`` with it.

    **The plan.** Equal subsample sizes: the optimal permutation (POT's ``ot.emd``, with
    ``scipy.optimize.linear_sum_assignment`` as fallback), ``n`` pairs. Unequal sizes (a
    finite set of fewer than ``n`` points at one end): ``ot.emd``'s plan, at most
    ``n0 + n1 - 1`` weighted pairs. The solve takes about 0.6 s at ``n = 2048`` and 3--4 s
    at ``n = 4096`` on one core (it grows as about ``n^2.3``) and holds about three
    ``n x n`` float64 arrays (400 MB at ``n = 4096``).

    **Refresh policy.** An end given as a finite set of at most ``n`` points is used whole;
    a larger set is subsampled without replacement; a stream (``"gaussian"``, a torch
    Distribution) gives ``n`` fresh draws. When both ends are finite sets of at most ``n``
    points the plan is the exact OT plan of the two training sets: solved once, never
    refreshed. Otherwise a new plan is solved on fresh subsamples once ``reuse * n`` pairs
    have been drawn from the current one (every pair drawn about ``reuse`` times; at batch
    size ``b``, every ``reuse * n / b`` steps: 4000 at the defaults and ``b = 256``), and
    ``reuse=None`` keeps the first plan for the whole run. With ``processes=1`` the next
    plan is solved in a worker process while the current one is in use, so refreshes
    overlap training (it is started once half of the current plan's pairs have been
    drawn); pairs are identical with ``processes=0`` (solved in place when due).

    **Bias.** The pairs are those of a finite ``n``-point plan, the empirical OT plan of
    the two subsamples: an estimate of the OT plan of ``rho0`` and ``rho1`` whose error
    shrinks as ``n`` grows (more slowly in higher dimension), and much smaller than that of
    a minibatch plan of a few hundred points. Between refreshes training sees only those
    ``n`` pairs, so the network can fit them more closely than the population; refreshes
    (or a larger ``n``) renew them. The cost of an ``n``-point plan fluctuates by several
    percent from subsample to subsample (and exceeds the population :math:`W_2^2` on
    average), and the learned flow inherits it: on the 2-D benchmark tasks, flows trained on
    2048-point plans had kinetic energies up to 15% below those of minibatch OT, 4096-point
    plans within a few percent. The plan's subsamples come from the training split only.

    Args:
        n: points per end in each plan (finite sets of at most ``n`` points are used whole).
            Default ``4096``.
        reuse: passes over a plan's pairs before it is re-solved on fresh subsamples
            (``None``: never; irrelevant when both ends are finite sets of at most ``n``).
            Default ``250``.
        processes: ``1`` solves the next plan in a worker process during training; ``0``
            solves in place.

    Raises:
        ValueError, TypeError: ``n`` below 2, ``reuse`` below 1 or ``processes`` negative,
            or not integers.

    References:
        Albergo & Vanden-Eijnden, arXiv:2209.15571; Pooladian et al. (minibatch OT
        couplings), arXiv:2304.14772; Tong et al., arXiv:2302.00482.

    Example:
        >>> import torch
        >>> from sitransport.couplings import GlobalOT
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = torch.randn(500, 2, generator=g, dtype=torch.float64)
        >>> x1 = x0[torch.randperm(500, generator=g)] + 0.001
        >>> draw = GlobalOT(n=1000, processes=0).sampler(x0, x1)  # both sets whole: one plan
        >>> a, b = draw(4, g)
        >>> torch.allclose(b, a + 0.001)  # the plan pairs each point with its shifted copy
        True
        >>> draw.fixed, len(draw.solve_seconds)
        (True, 1)
    """

    n: int = 4096
    reuse: int | None = 250
    processes: int = 1

    def __post_init__(self) -> None:
        check_positive_int(self.n, "n", minimum=2)
        if self.reuse is not None:
            check_positive_int(self.reuse, "reuse")
        check_positive_int(self.processes, "processes", minimum=0)

    def pair(self, x0, x1, generator=None):
        """Pair one given batch by exact OT in blocks, as :class:`ExactOT` does: where
        there is no plan to draw from (e.g. the ``h_upper`` estimate of
        :func:`~sitransport.metrics.transport_report`). Training draws from
        :meth:`sampler` instead.

        Args:
            x0: batch of rho0, shape ``(n0, ...)``.
            x1: batch of rho1, shape ``(n1, ...)``.
            generator: random source of the blocks' partners, as in :meth:`ExactOT.pair`. Default
                ``None``.

        Example:
            >>> import torch
            >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.5], [0.5]])
            >>> GlobalOT().pair(x0, x1)[1].flatten().tolist()
            [0.5, 1.5]
        """
        inner = ExactOT(processes=0)
        out = inner.pair(x0, x1, generator)
        self._record(inner.solve_time["last"])
        return out

    def sampler(self, x0: End, x1: End, *, seed: int = 0) -> PlanSampler:
        """A ``draw(m, generator)`` of pairs from this coupling's plans between two ends.

        Args:
            x0: the source end: a finite set of samples ``(N, ...)`` (a tensor) or a
                function ``sample(m, generator)`` of fresh draws (a stream).
            x1: the target end, of the same kinds (and the same sample shape).
            seed: seeds the subsamples of the plans (batches use the generator passed to
                each draw). Default ``0``.

        Returns:
            A :class:`PlanSampler`.

        Example:
            >>> import torch
            >>> stream = lambda m, g: torch.randn(m, 3, generator=g, dtype=torch.float64)
            >>> draw = GlobalOT(n=64, reuse=2, processes=0).sampler(stream, stream)
            >>> g = torch.Generator().manual_seed(0)
            >>> [draw(32, g)[0].shape[0] for _ in range(5)], len(draw.solve_seconds)
            ([32, 32, 32, 32, 32], 2)
        """
        return PlanSampler(self, x0, x1, seed=seed)

    def spec(self) -> dict[str, Any]:
        return {"name": "global_ot", "n": self.n, "reuse": self.reuse, "processes": self.processes}


class PlanSampler:
    """``draw(m, generator)``: ``m`` pairs ``(x0, x1)`` drawn from the current plan of a
    :class:`GlobalOT` coupling, which is re-solved on fresh subsamples when due (see
    :class:`GlobalOT` for the refresh policy and the bias). Its position (current plan,
    pairs drawn from it, subsample generator) is in :meth:`state_dict`, so a checkpointed
    run resumes exactly without solving again.

    Args:
        coupling: the :class:`GlobalOT` coupling whose settings (subsample size ``n``, ``reuse``)
            the sampler follows.
        x0: the source end: a tensor of samples of shape ``(n0, ...)``, or a callable
            ``(m, generator) -> tensor`` drawing ``m`` fresh samples.
        x1: the target end, as ``x0`` (same sample shape).
        seed: seed of the generator of the subsamples and of the pairs drawn from each plan. Default
            ``0``.

    Attributes:
        coupling: the :class:`GlobalOT` settings.
        fixed: the plan is between two whole finite sets and is never re-solved.
        solve_seconds: wall-clock seconds of each plan solved so far (the first is the
            one-off solve before training).

    Raises:
        TypeError: an end is neither a tensor nor a callable.
        ValueError: finite ends with different sample shapes, or an empty one.

    Example:
        >>> import torch
        >>> from sitransport.couplings import GlobalOT, PlanSampler
        >>> x0 = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
        >>> x1 = torch.tensor([[10.5], [0.5]], dtype=torch.float64)
        >>> draw = PlanSampler(GlobalOT(processes=0), x0, x1)
        >>> a, b = draw(3, torch.Generator().manual_seed(0))
        >>> (b - a).flatten().tolist()
        [0.5, 0.5, 0.5]
    """

    def __init__(self, coupling: GlobalOT, x0: End, x1: End, *, seed: int = 0) -> None:
        if not isinstance(coupling, GlobalOT):
            raise TypeError(f"coupling must be a GlobalOT, got {type(coupling).__name__}")
        for end, name in ((x0, "x0"), (x1, "x1")):
            _check_end(end, name)
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
        self._next: tuple[Tensor, Tensor, Callable[[], tuple]] | None = None

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
        if self._next is None and self._refreshes() and 2 * self._drawn >= self._lifetime():
            self._next = self._start(True)  # halfway through this plan: start the next one
        return x0[idx], x1[idx]

    def _refreshes(self) -> bool:
        return not self.fixed and self.coupling.reuse is not None

    def _lifetime(self) -> int:
        reuse = self.coupling.reuse
        assert reuse is not None  # asked only when plans are refreshed (_refreshes)
        return reuse * self.coupling.n  # pairs drawn from a plan

    def _due(self) -> bool:
        return self._refreshes() and self._drawn >= self._lifetime()

    def _install(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """Make the pending plan (or a new one, solved now) current; its pairs and weights."""
        sub0, sub1, result = self._next if self._next is not None else self._start(False)
        rows, cols, weights, seconds = result()
        rows, cols = torch.from_numpy(rows), torch.from_numpy(cols)
        w = None if weights is None else torch.from_numpy(weights)
        self._pairs = (sub0[rows], sub1[cols], w)
        self.solve_seconds.append(float(seconds))
        self._drawn, self._next = 0, None
        return self._pairs

    def _start(self, prefetch: bool) -> tuple[Tensor, Tensor, Callable[[], tuple]]:
        """Draw the next plan's subsamples; solve them in the worker process (``prefetch``
        with ``processes=1``), or in place when the result is asked for."""
        self._mark = self._gen.get_state()
        sub0, sub1 = (_subsample(e, self.coupling.n, self._gen) for e in self._ends)
        a = sub0.detach().flatten(1).cpu().numpy()
        b = sub1.detach().flatten(1).cpu().numpy()
        use_pool = prefetch and self.coupling.processes > 0 and (os.cpu_count() or 1) > 1
        pool = _pool() if use_pool else None
        if pool is None:
            return sub0, sub1, lambda: _solve_plan(a, b)
        return sub0, sub1, pool.submit(_solve_plan, a, b).result

    def state_dict(self) -> dict[str, Any]:
        """The position: current plan's pairs, pairs drawn from it, the subsample generator
        (as before the pending plan's draw) and the solve times.

        Example:
            >>> import torch
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
        pairs = self._pairs if self._pairs is not None else (None, None, None)
        return {
            "x0": pairs[0],
            "x1": pairs[1],
            "weights": pairs[2],
            "drawn": self._drawn,
            "generator": self._mark if self._next is not None else self._gen.get_state(),
            "solve_seconds": list(self.solve_seconds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position returned by :meth:`state_dict` (checkpoint resume); the
        pending plan's subsamples are drawn again from the saved generator state.

        Args:
            state: a dict returned by :meth:`state_dict` (generator state, current plan's pairs and
                weights, pairs drawn, solve times).

        Example:
            >>> import torch
            >>> x = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
            >>> draw = GlobalOT(processes=0).sampler(x, x + 1)
            >>> _ = draw(2, torch.Generator().manual_seed(0))
            >>> resumed = GlobalOT(processes=0).sampler(x, x + 1)
            >>> resumed.load_state_dict(draw.state_dict())
            >>> resumed.solve_seconds == draw.solve_seconds  # the plan is restored, not re-solved
            True
        """
        self._gen.set_state(state["generator"].cpu())
        self._next = None
        if state["x0"] is None:
            self._pairs = None
        else:
            self._pairs = (state["x0"], state["x1"], state["weights"])
        self._drawn = int(state["drawn"])
        self.solve_seconds = [float(s) for s in state["solve_seconds"]]
        if self._pairs is not None and self._refreshes() and 2 * self._drawn >= self._lifetime():
            self._next = self._start(True)  # it was pending: draw it again, from the mark


def _check_end(end: Any, name: str) -> None:
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


def _subsample(end: End, n: int, gen: torch.Generator) -> Tensor:
    """``n`` points of an end: fresh draws of a stream, a finite set whole (at most ``n``
    points) or ``n`` of its points without replacement."""
    if not isinstance(end, Tensor):
        return end(n, gen)
    if end.shape[0] <= n:
        return end
    return end[torch.randperm(end.shape[0], generator=gen)[:n]]


def _solve_plan(
    a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """The exact OT plan of two point sets as weighted pairs ``(rows, cols, weights,
    seconds)`` (``weights=None``: uniform, a permutation); numpy-only for a worker process."""
    start = time.perf_counter()
    if a.shape[0] == b.shape[0]:
        cols = _permutation(a, b)
        return np.arange(a.shape[0]), cols, None, time.perf_counter() - start
    wa, wb = np.full(a.shape[0], 1.0 / a.shape[0]), np.full(b.shape[0], 1.0 / b.shape[0])
    plan = ot.emd(wa, wb, _cost_matrix(a, b), numItermax=100_000_000)
    rows, cols = np.nonzero(plan > 0)
    return rows, cols, plan[rows, cols], time.perf_counter() - start


_COUPLINGS: dict[str, Callable[..., Coupling]] = {
    "exact_ot": ExactOT,
    "global_ot": GlobalOT,
    "independent": Independent,
    "sinkhorn": Sinkhorn,
}


def get_coupling(spec: str | dict[str, Any] | Coupling) -> Coupling:
    """Resolve ``"independent"``, ``"exact_ot"``, ``"global_ot"``, ``"sinkhorn"``, a spec dict
    (``{"name": "sinkhorn", "reg": 0.01}``) or a :class:`Coupling` instance.

    Args:
        spec: a coupling name, a dict with ``"name"`` and that coupling's settings, or a
            :class:`Coupling` (returned as is).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: anything else.

    Example:
        >>> get_coupling({"name": "sinkhorn", "reg": 0.01})
        Sinkhorn(reg=0.01, replace=False)
    """
    return resolve(spec, _COUPLINGS, "coupling", Coupling)
