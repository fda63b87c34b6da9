r"""Couplings: how a minibatch of ``x0`` is paired with a minibatch of ``x1``.

The interpolant loss is minimised over pairs :math:`(x_0, x_1) \sim \pi`. With the
independent coupling :math:`\pi = \rho_0 \otimes \rho_1` (the paper's) the learned flow
transports ``rho0`` to ``rho1`` but not optimally. Pairing each minibatch by optimal
transport (Pooladian et al. 2023, arXiv:2304.14772; Tong et al. 2023, arXiv:2302.00482)
straightens the paths toward the Benamou–Brenier optimum.

- ``independent``: the batches as drawn.
- ``exact_ot``: the exact OT plan of the batch for the squared Euclidean cost. For uniform
  batches of equal size the plan is a permutation (Birkhoff), found by the assignment solver
  ``scipy.optimize.linear_sum_assignment``; its cost equals POT's ``ot.emd2`` (tested).
  Pairs are taken without replacement: every point is used exactly once.
- ``sinkhorn``: the entropic plan (POT's log-domain solver with epsilon scaling, stable at
  small ``reg``); each ``x0`` is paired with one ``x1`` drawn from its row of the plan, so no
  ``x0`` is dropped or duplicated (``x1`` may repeat); ``replace=True`` instead draws
  ``n`` pairs from the whole plan.

Couplings act on whatever batch they are given, on its device, so under data parallelism
they can run on the all-gathered global batch.
"""

from __future__ import annotations

import multiprocessing as mp
import os
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

from sitransport._validation import check_positive, resolve

__all__ = [
    "Coupling",
    "ExactOT",
    "Independent",
    "Sinkhorn",
    "get_coupling",
]


def _sq_cost(x0: Tensor, x1: Tensor) -> Tensor:
    """Squared Euclidean cost matrix of two flattened batches, in float64."""
    a, b = x0.flatten(1).to(torch.float64), x1.flatten(1).to(torch.float64)
    return torch.cdist(a, b).pow(2)


class Coupling:
    """Abstract coupling: ``pair(x0, x1, generator)`` returns the paired batches.

    Example:
        >>> import torch
        >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.5], [0.5]])
        >>> for coupling in (Independent(), ExactOT(processes=0)):
        ...     print(type(coupling).__name__, coupling.pair(x0, x1)[1].flatten().tolist())
        Independent [1.5, 0.5]
        ExactOT [0.5, 1.5]
    """

    def pair(
        self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pair the batches: ``x0[i]`` goes with ``x1_paired[i]``.

        Args:
            x0: batch of rho0, shape ``(n0, ...)``.
            x1: batch of rho1, shape ``(n1, ...)``.
            generator: random source for couplings that draw partners.

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
            ExactOT(processes=1)
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Independent(Coupling):
    """The product coupling: batches are used as drawn.

    Example:
        >>> import torch
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
    assignment solver as fallback). Unequal sizes: ``ot.emd``'s plan, each ``x0`` paired
    with the ``x1`` drawn from its row.

    Args:
        processes: with ``processes=1``, :meth:`submit` solves the next batch's assignment in
            a worker process while the current step trains (the solver holds the GIL, so a
            thread would not overlap); ``0`` solves in place. Pairings are identical.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 3
        >>> a, b = ExactOT(processes=0).pair(x0, x1)
        >>> cost = lambda p, q: float((p - q).pow(2).sum(1).mean())
        >>> cost(a, b) <= cost(x0, x1)  # the optimal pairing costs at most the drawn one
        True
    """

    processes: int = 1

    def pair(self, x0, x1, generator=None):
        if x0.shape[0] == x1.shape[0]:
            perm = _permutation(x0.flatten(1).cpu().numpy(), x1.flatten(1).cpu().numpy())
            return x0, x1[torch.from_numpy(perm).to(x1.device)]
        cost = _sq_cost(x0, x1).cpu().numpy()
        a = np.full(x0.shape[0], 1.0 / x0.shape[0])
        b = np.full(x1.shape[0], 1.0 / x1.shape[0])
        plan = torch.from_numpy(ot.emd(a, b, cost, numItermax=10_000_000))
        return _pair_rows(x0, x1, plan, generator)

    def submit(self, x0, x1, generator=None):
        pool = _pool() if self.processes > 0 and (os.cpu_count() or 1) > 1 else None
        if pool is None or x0.shape[0] != x1.shape[0]:
            return super().submit(x0, x1, generator)
        fut = pool.submit(
            _permutation,
            x0.detach().flatten(1).cpu().numpy(),
            x1.detach().flatten(1).cpu().numpy(),
        )
        return lambda: (x0, x1[torch.from_numpy(fut.result()).to(x1.device)])

    def spec(self) -> dict[str, Any]:
        return {"name": "exact_ot", "processes": self.processes}


def _permutation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The optimal assignment ``perm`` (``a[i]`` to ``b[perm[i]]``) for the squared
    Euclidean cost; numpy-only so a worker process can run it."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cost = (a64**2).sum(1)[:, None] + (b64**2).sum(1)[None, :] - 2.0 * a64 @ b64.T
    n = cost.shape[0]
    w = np.full(n, 1.0 / n)
    plan = ot.emd(w, w, cost, numItermax=10_000_000)
    perm = plan.argmax(1)
    if np.array_equal(np.sort(perm), np.arange(n)) and np.allclose(plan.max(1), 1.0 / n):
        return perm
    return linear_sum_assignment(cost)[1]  # degenerate basis: solve the assignment directly


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
            (scale-free; small values approach exact OT).
        replace: draw ``n`` pairs from the whole plan with replacement (as torchcfm does)
            instead of one partner per ``x0``.

    Example:
        >>> import torch
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


_COUPLINGS: dict[str, Callable[..., Coupling]] = {
    "exact_ot": ExactOT,
    "independent": Independent,
    "sinkhorn": Sinkhorn,
}


def get_coupling(spec: str | dict[str, Any] | Coupling) -> Coupling:
    """Resolve ``"independent"``, ``"exact_ot"``, ``"sinkhorn"``, a spec dict
    (``{"name": "sinkhorn", "reg": 0.01}``) or a :class:`Coupling` instance.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: anything else.

    Example:
        >>> get_coupling({"name": "sinkhorn", "reg": 0.01})
        Sinkhorn(reg=0.01, replace=False)
    """
    return resolve(spec, _COUPLINGS, "coupling", Coupling)
