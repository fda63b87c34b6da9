r"""Global optimal-transport plans within conditions: the batches of a conditional fit with
``coupling="global_ot"`` drawn from exact OT plans solved per condition (:class:`GroupPlans`)
or between points augmented with their continuous condition (:class:`FeaturePlans`).

Both are ``draw(m, generator) -> (x0, x1, codes)`` with the :class:`~sitransport.couplings.GlobalOT`
semantics of each plan they hold (plan size ``n``, ``reuse``, ``processes``, finite ends of at
most ``n`` points used whole and solved once): they wrap one
:class:`~sitransport.couplings.PlanSampler` per plan. Like it, they expose ``coupling`` and
``solve_seconds`` (every plan solved so far, in the order solved), so a
:class:`~sitransport.couplings.PairSource` meters them, and ``state_dict`` /
``load_state_dict``, so a checkpointed run resumes exactly.

- **Groups** (labels, or ``condition=(c0, c1)``): one plan per condition value ``k``, between
  the source end of that group (the ``rho0`` samples of the group, or ``rho0`` whole for a
  shared source) and the target samples of that group. A stream source (``"gaussian"``)
  against a group of ``N_k < n`` target samples draws ``N_k`` points per plan, so the plan is
  a permutation of the group's samples (each used once; solved as an assignment). A batch of
  ``m`` rows first draws each row's group from the target's group frequencies (the draws of
  a uniform target row), then each group's plan gives its rows' pairs, put back in the rows
  of that group. Every row carries the code of its group: the pairs never cross conditions.
- **Features** (``condition=c`` with float features): one plan between the augmented points
  :math:`(x_0, \sqrt{\lambda}\, c_0)` and :math:`(x_1, \sqrt{\lambda}\, c_1)`, i.e. the cost
  :math:`|x_0 - x_1|^2 + \lambda |c_0 - c_1|^2` of
  :func:`~sitransport.couplings.pair_within`, with the source conditions ``c0`` drawn from the
  target's codes (a stratified permutation of them for a finite source set; a uniform draw
  per point for a stream), so ``(x0, c0)`` is a draw of :math:`\rho_0 \otimes p(c)`. Each
  output row carries the code of its ``x1``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sitransport._validation import check_positive
from sitransport.couplings.base import End
from sitransport.couplings.conditional import WEIGHT_PER_DIM
from sitransport.couplings.global_plan import GlobalOT

__all__ = ["FeaturePlans", "GroupPlans"]

#: ``rows(idx, generator)``: the target samples of rows ``idx`` (e.g. freshly dequantised images).
Rows = Callable[[Tensor, torch.Generator], Tensor]


def group_seed(seed: int, k: int) -> int:
    """The seed of group ``k``'s plans in a run seeded ``seed`` (independent streams, in
    ``[0, 2**63)``).

    Example:
        >>> group_seed(0, 0) == group_seed(0, 0) != group_seed(0, 1)
        True
    """
    state = np.random.SeedSequence([seed, k]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


class GroupPlans:
    """``draw(m, generator) -> (x0, x1, codes)``: pairs from one
    :class:`~sitransport.couplings.GlobalOT` plan per condition group (see the module).

    Args:
        coupling: the :class:`~sitransport.couplings.GlobalOT` settings of every group's plans.
        ends: per group ``k``, its ``(source end, target end)``: finite sets ``(N, ...)`` or
            streams ``sample(m, generator)``, as for
            :meth:`~sitransport.couplings.GlobalOT.sampler`.
        codes: per group, its condition code: shape ``(K,)`` (labels) or ``(K, m)`` (features).
        counts: per group, the number of target samples: the frequencies rows are drawn with.
        seed: seeds the plans' subsamples (each group its own stream). Default ``0``.

    Attributes:
        coupling: the :class:`~sitransport.couplings.GlobalOT` settings.
        samplers: the :class:`~sitransport.couplings.PlanSampler` of each group.
        solve_seconds: wall-clock seconds of every plan solved, in the order solved.

    Raises:
        TypeError: ``coupling`` is not a GlobalOT.
        ValueError: no group, or ``codes`` / ``counts`` not one row per group, or a count
            below 1.

    Example:
        >>> import torch
        >>> from sitransport.couplings import GlobalOT, GroupPlans
        >>> x0 = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
        >>> ends = [(x0, x0 + 0.5), (x0, x0 - 0.5)]  # label 0: up by 0.5, label 1: down
        >>> draw = GroupPlans(GlobalOT(processes=0), ends, torch.tensor([0, 1]),
        ...                   torch.tensor([2, 2]))
        >>> a, b, c = draw(6, torch.Generator().manual_seed(0))
        >>> c.tolist(), (b - a).flatten().tolist()  # each row paired within its label
        ([1, 1, 0, 1, 1, 1], [-0.5, -0.5, 0.5, -0.5, -0.5, -0.5])
    """

    def __init__(
        self,
        coupling: GlobalOT,
        ends: Sequence[tuple[End, End]],
        codes: Tensor,
        counts: Tensor,
        *,
        seed: int = 0,
    ) -> None:
        if not isinstance(coupling, GlobalOT):
            raise TypeError(f"coupling must be a GlobalOT, got {type(coupling).__name__}")
        k = len(ends)
        if k == 0:
            raise ValueError("ends must hold one (source, target) pair per group, got none")
        if codes.shape[0] != k or counts.shape != (k,) or bool((counts < 1).any()):
            raise ValueError(
                f"codes and counts must have one row per group ({k}) and counts >= 1, got "
                f"codes {tuple(codes.shape)} and counts {counts.tolist()}"
            )
        self.coupling = coupling
        self.samplers = [
            _plan_size(coupling, a, b).sampler(a, b, seed=group_seed(seed, i))
            for i, (a, b) in enumerate(ends)
        ]
        self.codes = codes
        self.weights = counts.to(torch.float64)
        self.solve_seconds: list[float] = []

    @property
    def fixed(self) -> bool:
        """Every group's plan is between two whole finite sets and is never re-solved."""
        return all(s.fixed for s in self.samplers)

    def __call__(self, m: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        which = torch.multinomial(self.weights, m, replacement=True, generator=generator)
        order = torch.argsort(which, stable=True)
        sizes = torch.bincount(which, minlength=len(self.samplers)).tolist()
        parts0, parts1 = [], []
        for sampler, size in zip(self.samplers, sizes, strict=True):
            if size == 0:
                continue
            solved = len(sampler.solve_seconds)
            a, b = sampler(size, generator)
            self.solve_seconds.extend(sampler.solve_seconds[solved:])
            parts0.append(a)
            parts1.append(b)
        x0, x1 = torch.cat(parts0), torch.cat(parts1)
        out0, out1 = torch.empty_like(x0), torch.empty_like(x1)
        out0[order], out1[order] = x0, x1  # each group's pairs in the rows drawn for it
        return out0, out1, self.codes[which]

    def state_dict(self) -> dict[str, Any]:
        """The position of every group's plans (see
        :meth:`~sitransport.couplings.PlanSampler.state_dict`) and the solve record.

        Example:
            >>> import torch
            >>> from sitransport.couplings import GlobalOT
            >>> x = torch.arange(4.0, dtype=torch.float64).reshape(2, 2)
            >>> draw = GroupPlans(GlobalOT(processes=0), [(x, x + 1)], torch.tensor([0]),
            ...                   torch.tensor([2]))
            >>> sorted(draw.state_dict())
            ['groups', 'solve_seconds']
        """
        return {
            "groups": [s.state_dict() for s in self.samplers],
            "solve_seconds": list(self.solve_seconds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position returned by :meth:`state_dict` (checkpoint resume).

        Args:
            state: a dict returned by :meth:`state_dict`.

        Raises:
            ValueError: the state holds another number of groups.

        Example:
            >>> import torch
            >>> from sitransport.couplings import GlobalOT
            >>> x = torch.arange(4.0, dtype=torch.float64).reshape(2, 2)
            >>> make = lambda: GroupPlans(GlobalOT(processes=0), [(x, x + 1)],
            ...                           torch.tensor([0]), torch.tensor([2]))
            >>> draw, resumed = make(), make()
            >>> _ = draw(2, torch.Generator().manual_seed(0))
            >>> resumed.load_state_dict(draw.state_dict())
            >>> resumed.solve_seconds == draw.solve_seconds
            True
        """
        groups = state["groups"]
        if len(groups) != len(self.samplers):
            raise ValueError(
                f"state holds plans of {len(groups)} groups, this sampler has {len(self.samplers)}"
            )
        for sampler, group in zip(self.samplers, groups, strict=True):
            sampler.load_state_dict(group)
        self.solve_seconds = [float(s) for s in state["solve_seconds"]]


class FeaturePlans:
    r"""``draw(m, generator) -> (x0, x1, codes)``: pairs from one
    :class:`~sitransport.couplings.GlobalOT` plan between points augmented with their
    continuous condition (see the module).

    Args:
        coupling: the :class:`~sitransport.couplings.GlobalOT` settings of the plans.
        x0: the source end (shared by all conditions): a finite set ``(N0, ...)`` or a stream
            ``sample(m, generator)``.
        x1: the target samples ``(N1, ...)``, one per row of ``codes``, or a function
            ``rows(idx, generator)`` returning the target samples of rows ``idx`` (images
            dequantised afresh: the target end is then a stream).
        codes: the target's condition codes, float ``(N1, k)``.
        weight: :math:`\lambda`, ``> 0``. Default ``None``: ``WEIGHT_PER_DIM * d`` (``d`` the
            number of values of one sample), as :func:`~sitransport.couplings.pair_within`.
        seed: seeds the source conditions of a finite ``x0`` and the plans' subsamples.
            Default ``0``.

    Attributes:
        coupling: the :class:`~sitransport.couplings.GlobalOT` settings.
        sampler: the :class:`~sitransport.couplings.PlanSampler` of the augmented points.
        weight: :math:`\lambda` used.

    Raises:
        TypeError: ``coupling`` is not a GlobalOT; ``codes`` not a float tensor.
        ValueError: ``codes`` not ``(N1, k)`` with a row per target sample; ``weight`` not
            positive and finite.

    Example:
        >>> import torch
        >>> from sitransport.couplings import FeaturePlans, GlobalOT
        >>> x = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
        >>> codes = torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
        >>> draw = FeaturePlans(GlobalOT(processes=0), x, x + 0.5, codes, seed=0)
        >>> a, b, c = draw(2, torch.Generator().manual_seed(0))
        >>> b.shape, c.shape, draw.sampler.fixed
        (torch.Size([2, 1]), torch.Size([2, 2]), True)
    """

    def __init__(
        self,
        coupling: GlobalOT,
        x0: End,
        x1: Tensor | Rows,
        codes: Tensor,
        *,
        weight: float | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(coupling, GlobalOT):
            raise TypeError(f"coupling must be a GlobalOT, got {type(coupling).__name__}")
        _check_codes(codes, x1)
        gen = torch.Generator().manual_seed(group_seed(seed, 0))
        shape = tuple((x1 if isinstance(x1, Tensor) else x1(torch.arange(1), gen)).shape[1:])
        d = math.prod(shape)
        lam = WEIGHT_PER_DIM * d if weight is None else check_positive(weight, "weight")
        self.coupling, self.weight, self.shape = coupling, lam, shape
        self.codes = codes
        self._root = math.sqrt(lam)
        source = _augmented_source(x0, codes * self._root, gen)
        target = _augmented_target(x1, codes * self._root)
        self.sampler = coupling.sampler(source, target, seed=group_seed(seed, 1))

    @property
    def solve_seconds(self) -> list[float]:
        """Wall-clock seconds of every plan solved so far."""
        return self.sampler.solve_seconds

    def __call__(self, m: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        a, b = self.sampler(m, generator)
        d = math.prod(self.shape)
        x0 = a[:, :d].reshape(m, *self.shape)
        x1 = b[:, :d].reshape(m, *self.shape)
        codes = (b[:, d:] / self._root).to(self.codes.dtype)  # within one rounding of c1
        return x0, x1, codes

    def state_dict(self) -> dict[str, Any]:
        """The plan's position (:meth:`~sitransport.couplings.PlanSampler.state_dict`).

        Example:
            >>> import torch
            >>> from sitransport.couplings import GlobalOT
            >>> x = torch.zeros(2, 1, dtype=torch.float64)
            >>> codes = torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
            >>> "drawn" in FeaturePlans(GlobalOT(processes=0), x, x, codes).state_dict()
            True
        """
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position returned by :meth:`state_dict`.

        Args:
            state: a dict returned by :meth:`state_dict`.

        Example:
            >>> import torch
            >>> from sitransport.couplings import GlobalOT
            >>> x = torch.zeros(2, 1, dtype=torch.float64)
            >>> codes = torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
            >>> draw = FeaturePlans(GlobalOT(processes=0), x, x, codes)
            >>> draw.load_state_dict(draw.state_dict())
        """
        self.sampler.load_state_dict(state)


def _plan_size(coupling: GlobalOT, x0: End, x1: End) -> GlobalOT:
    """A group's plan settings: a stream source against a finite target set of ``m < n``
    points draws ``m`` points per plan (a permutation plan, as fast as an assignment of ``m``),
    otherwise ``coupling`` itself."""
    if callable(x0) and not isinstance(x0, Tensor) and isinstance(x1, Tensor):
        return dataclasses.replace(coupling, n=max(2, min(coupling.n, x1.shape[0])))
    return coupling


def _check_codes(codes: Any, x1: Any) -> None:
    if not isinstance(codes, Tensor) or not codes.is_floating_point():
        raise TypeError(
            f"codes must be a float torch.Tensor of feature codes, got {type(codes).__name__}"
            + (f" of dtype {codes.dtype}" if isinstance(codes, Tensor) else "")
        )
    n = x1.shape[0] if isinstance(x1, Tensor) else codes.shape[0]
    if codes.ndim != 2 or codes.shape[0] != n or n < 1:
        raise ValueError(
            f"codes must be features of shape (N1, k), one row per target sample ({n}), got "
            f"{tuple(codes.shape)}"
        )


def _augmented_source(x0: End, c: Tensor, gen: torch.Generator) -> End:
    """``(x0, sqrt(lam) c0)`` with ``c0`` drawn from the target's (scaled) codes ``c``: a
    stratified permutation for a finite set (each code about equally often), a uniform
    draw per point for a stream."""
    if isinstance(x0, Tensor):
        reps = -(-x0.shape[0] // c.shape[0])
        idx = torch.cat([torch.randperm(c.shape[0], generator=gen) for _ in range(reps)])
        return _cat(x0, c[idx[: x0.shape[0]]])
    stream = x0

    def sample(m: int, g: torch.Generator) -> Tensor:
        x = stream(m, g)
        return _cat(x, c[torch.randint(0, c.shape[0], (m,), generator=g)])

    return sample


def _augmented_target(x1: Tensor | Rows, c: Tensor) -> End:
    """``(x1, sqrt(lam) c1)``: a finite set, or a stream of uniformly drawn rows."""
    if isinstance(x1, Tensor):
        return _cat(x1, c)
    rows = x1

    def sample(m: int, g: torch.Generator) -> Tensor:
        idx = torch.randint(0, c.shape[0], (m,), generator=g)
        return _cat(rows(idx, g), c[idx])

    return sample


def _cat(x: Tensor, c: Tensor) -> Tensor:
    dtype = torch.promote_types(x.dtype, c.dtype)
    return torch.cat([x.flatten(1).to(dtype), c.to(device=x.device, dtype=dtype)], 1)
