"""Minibatch optimal transport: each batch paired by its own plan, exact (:class:`ExactOT`,
in blocks, optionally solved in the one worker process) or entropic (:class:`Sinkhorn`); the
numpy plan helpers the global plans share."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from sitransport._validation import check_positive, check_positive_int
from sitransport.couplings.base import Coupling

# cost_matrix, permutation and worker_pool are shared with global_plan, not public API
__all__ = ["ExactOT", "Sinkhorn"]

#: Largest block solved by exact minibatch OT (larger batches are cut into blocks).
BLOCK = 256

#: Smallest Sinkhorn ``reg`` (a fraction of the batch's mean squared distance). The entropic
#: plan's cost exceeds exact OT's by at most ``eps * log(n0 * n1)``, ``eps = reg * mean cost``:
#: at 1e-4 within 0.2% of the mean cost for batches up to 4096, so the pairs are exact OT's
#: for practical purposes, while Sinkhorn's iterations grow like ``1 / reg`` (smaller values
#: ran every stage to its cap: seconds per step, and marginals off by percents).
MIN_REG = 1e-4


def _sq_cost(x0: Tensor, x1: Tensor) -> Tensor:
    """Squared Euclidean cost matrix of two flattened batches, in float64."""
    a, b = x0.flatten(1).to(torch.float64), x1.flatten(1).to(torch.float64)
    return torch.cdist(a, b).pow(2)


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
        pool = worker_pool() if self.processes > 0 and (os.cpu_count() or 1) > 1 else None
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


def cost_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean cost matrix ``|a|^2 + |b|^2 - 2 a.b`` in float64, with two
    ``n0 x n1`` arrays at the peak (a plan of 4096 points needs 2 x 134 MB)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cross = a64 @ b64.T
    cross *= 2.0
    return np.subtract(np.add.outer((a64**2).sum(1), (b64**2).sum(1)), cross, out=cross)


def permutation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The optimal assignment ``perm`` (``a[i]`` to ``b[perm[i]]``) for the squared
    Euclidean cost; numpy-only so a worker process can run it."""
    cost = cost_matrix(a, b)
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
        perm[lo:hi] = lo + permutation(a[lo:hi], b[lo:hi])
    return perm, time.perf_counter() - start


_POOL: ProcessPoolExecutor | None = None


def worker_pool() -> ProcessPoolExecutor | None:
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
            (scale-free; small values approach exact OT), at least ``MIN_REG`` (``1e-4``;
            use :class:`ExactOT` for the unregularised plan). Default ``0.05``.
        replace: draw ``n`` pairs from the whole plan with replacement (as torchcfm does)
            instead of one partner per ``x0``. Default ``False``.

    Raises:
        TypeError: ``reg`` is not a number.
        ValueError: ``reg`` is not finite or below ``MIN_REG``.

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
        if check_positive(self.reg, "reg") < MIN_REG:
            raise ValueError(
                f"reg must be >= {MIN_REG} (a fraction of the batch's mean squared distance), "
                f"got {self.reg}: below it the entropic plan is exact OT's for practical "
                "purposes, but Sinkhorn needs about 1 / reg iterations and stops short of its "
                "marginals; use coupling='exact_ot' for the unregularised plan"
            )

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
