r"""The transport report of a conditional flow, condition by condition: per condition value
``c``, the flow's path energy from ``rho0`` under ``c`` against the exact :math:`W_2^2` (POT)
between the ``rho0`` samples and the target samples of ``c`` — the normalised path energy
:math:`NPE_c = |KE_c - W_2^2(\rho_0, \rho_1(\cdot | c))| / W_2^2` of
:func:`~sitransport.metrics.transport_report`, computed by the same
:func:`~sitransport.metrics.report.energy_vs_w2` — gathered in a :class:`ConditionalNPE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sitransport._validation import check_seed
from sitransport.ends.conditions import condition_array
from sitransport.metrics.distances import samples
from sitransport.metrics.report import energy_vs_w2

if TYPE_CHECKING:
    from sitransport.flow import TransportFlow

__all__ = ["ConditionalNPE", "conditional_npe"]


@dataclass(frozen=True, eq=False)
class ConditionalNPE:
    r"""How close each map of a conditional flow is to optimal transport.

    Attributes:
        conditions: the condition values, one per row: labels ``(K,)`` (sorted) or feature
            vectors ``(K, k)`` (the distinct rows of ``c1``, sorted).
        kinetic_energy: :math:`KE_c`, the flow's mean path energy from ``x0`` under each
            condition, ``(K,)``.
        kinetic_energy_stderr: its standard error over samples, ``(K,)``.
        w2_squared: exact :math:`W_2^2` (POT) between ``x0`` (of the condition, with ``c0``)
            and the ``x1`` samples of each condition, ``(K,)``.
        npe: :math:`|KE_c - W_2^2| / W_2^2` per condition, ``(K,)``.
        n0: ``x0`` samples used per condition, ``(K,)``.
        n1: ``x1`` samples per condition, ``(K,)``.
        mean_npe: the mean of ``npe`` over the conditions (each condition counts once).
        pooled_npe: the NPE of the family under the conditions' frequencies in ``c1``:
            :math:`|\sum_c p_c KE_c - \sum_c p_c W_2^2| / \sum_c p_c W_2^2` (its
            :math:`\sum_c p_c W_2^2` is the conditional OT cost of the samples).

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from sitransport import TransportFlow
        >>> from sitransport.ends.conditions import ConditionEncoder
        >>> from sitransport.metrics import conditional_npe
        >>> shift = lambda z, t, c: torch.ones_like(z) * (1.0 + c[:, None])  # label c: c + 1
        >>> flow = TransportFlow(shift, "linear", shape=(2,),
        ...                      condition=ConditionEncoder.fit([0, 1]))
        >>> x0 = np.random.default_rng(0).normal(size=(100, 2))
        >>> r = conditional_npe(flow, x0, np.concatenate([x0 + 1, x0 + 2]), [0] * 100 + [1] * 100)
        >>> r.conditions.tolist(), r.w2_squared.round(6).tolist(), round(r.mean_npe, 9)
        ([0, 1], [2.0, 8.0], 0.0)
    """

    conditions: np.ndarray
    kinetic_energy: np.ndarray
    kinetic_energy_stderr: np.ndarray
    w2_squared: np.ndarray
    npe: np.ndarray
    n0: np.ndarray
    n1: np.ndarray
    mean_npe: float
    pooled_npe: float

    def __str__(self) -> str:
        head = f"{'condition':<16}  {'KE':>10}  {'W2^2':>10}  {'NPE':>8}  {'n1':>6}"
        rows = [head]
        for k, c in enumerate(self.conditions):
            name = str(c if np.ndim(c) == 0 else np.round(c, 4).tolist())
            rows.append(
                f"{name:<16}  {self.kinetic_energy[k]:>10.5g}  {self.w2_squared[k]:>10.5g}  "
                f"{self.npe[k]:>8.4g}  {self.n1[k]:>6d}"
            )
        rows.append(f"mean NPE {self.mean_npe:.4g}, pooled NPE {self.pooled_npe:.4g}")
        return "\n".join(rows)


def conditional_npe(
    flow: TransportFlow, x0: Any, x1: Any, c1: Any, *, c0: Any = None, seed: int = 0
) -> ConditionalNPE:
    r"""The normalised path energy of a conditional flow per condition value, and averaged.

    For each distinct value ``c`` of ``c1`` (each label, or each distinct feature row), the
    flow pushes ``x0`` under ``c`` and its path energy :math:`KE_c` is compared with the exact
    :math:`W_2^2` (POT) between ``x0`` and the rows of ``x1`` whose condition is ``c``, as
    :func:`~sitransport.metrics.transport_report` does for one map (the same estimate, with
    the same finite-sample bias: the empirical :math:`W_2^2` of few samples exceeds the
    population's, so conditions with few ``x1`` rows read noisier). Features that take many
    distinct values leave one sample per value; group them first (e.g. round them).

    Args:
        flow: a conditional :class:`~sitransport.TransportFlow` (fitted with ``condition=``).
        x0: samples of ``rho0``, ``(m, d)``: shared by all conditions, or with ``c0`` the
            source samples of each condition.
        x1: target samples ``(m1, d)``, one condition per row in ``c1``.
        c1: the condition of each ``x1`` row: labels ``(m1,)`` or features ``(m1,)`` /
            ``(m1, k)``, as given to ``fit``.
        c0: the condition of each ``x0`` row (a flow fitted with ``condition=(c0, c1)``):
            each condition's ``KE`` and :math:`W_2^2` then use only its own ``x0`` rows.
            Default ``None``: all of ``x0`` for every condition.
        seed: seed of the subsample of the exact :math:`W_2` beyond its size limit. Default
            ``0``.

    Returns:
        :class:`ConditionalNPE`.

    Raises:
        ValueError: the flow is unconditional (the message starts ``condition:``); ``c1``
            (``c0``) without one row per ``x1`` (``x0``) sample; a condition with fewer than
            2 ``x1`` samples (or ``x0`` samples, with ``c0``); a value the flow does not know
            (named); ``x0`` and the samples of a condition the same points.
        TypeError: conditions that are neither labels nor float features.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from sitransport import TransportFlow
        >>> from sitransport.ends.conditions import ConditionEncoder
        >>> flow = TransportFlow(lambda z, t, c: torch.ones_like(z), "linear", shape=(1,),
        ...                      condition=ConditionEncoder.fit(["a", "b"]))
        >>> x0 = np.linspace(-1.0, 1.0, 50)[:, None]
        >>> x1, c1 = np.concatenate([x0 + 1, x0 + 3]), ["a"] * 50 + ["b"] * 50
        >>> report = conditional_npe(flow, x0, x1, c1)
        >>> report.npe.round(4).tolist()  # a unit shift is optimal for "a", not for "b"
        [0.0, 0.8889]
    """
    if flow.condition is None:
        raise ValueError(
            "condition: conditional_npe reports a conditional flow (fitted with condition=), "
            "and this flow is unconditional; use transport_report"
        )
    seed = check_seed(seed)
    a, b = samples(x0, "x0", min_samples=2), samples(x1, "x1", min_samples=2)
    values, groups1 = _groups(c1, len(b), "c1")
    rows0 = _source_rows(c0, values, len(a))
    cores = []
    for k, value in enumerate(values):
        mine = b[groups1 == k]
        if len(mine) < 2:
            raise ValueError(
                f"c1: condition {_show(value)} has {len(mine)} x1 sample(s), at least 2 are "
                "needed for its W2 (group nearby feature values first, e.g. by rounding)"
            )
        src = a if rows0 is None else a[rows0[k]]
        cores.append(energy_vs_w2(flow, src, mine, seed=seed, condition=_one(value)))
    ke = np.array([c.kinetic_energy for c in cores])
    w2sq = np.array([c.w2_squared for c in cores])
    n1 = np.bincount(groups1, minlength=len(values))
    p = n1 / n1.sum()
    pooled_w2 = float(p @ w2sq)
    return ConditionalNPE(
        conditions=values,
        kinetic_energy=ke,
        kinetic_energy_stderr=np.array([c.kinetic_energy_stderr for c in cores]),
        w2_squared=w2sq,
        npe=np.array([c.npe for c in cores]),
        n0=np.array([len(c.x0) for c in cores]),
        n1=n1,
        mean_npe=float(np.mean([c.npe for c in cores])),
        pooled_npe=abs(float(p @ ke) - pooled_w2) / pooled_w2,
    )


def _groups(c: Any, n: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of the conditions ``c`` (sorted rows) and each row's index among
    them."""
    arr = condition_array(c, name)
    if arr.shape[0] != n:
        raise ValueError(
            f"{name} must have one row per sample of {'x1' if name == 'c1' else 'x0'} ({n}), "
            f"got {arr.shape[0]} rows"
        )
    values, inverse = np.unique(arr, axis=0, return_inverse=True)
    return values, inverse.reshape(-1)


def _source_rows(c0: Any, values: np.ndarray, n0: int) -> list[np.ndarray] | None:
    """Per condition value, the ``x0`` rows of that condition (``None`` without ``c0``)."""
    if c0 is None:
        return None
    arr = condition_array(c0, "c0")
    if arr.shape[0] != n0:
        raise ValueError(f"c0 must have one row per sample of x0 ({n0}), got {arr.shape[0]} rows")
    if arr.ndim != values.ndim or arr.dtype.kind != values.dtype.kind:
        raise ValueError(
            f"c0 and c1 must be of one kind, got {arr.dtype} {arr.shape[1:]} and "
            f"{values.dtype} {values.shape[1:]}"
        )
    rows = []
    for value in values:
        same = arr == value if arr.ndim == 1 else (arr == value).all(axis=1)
        if int(same.sum()) < 2:
            raise ValueError(
                f"c0: condition {_show(value)} has {int(same.sum())} x0 sample(s), at least 2 "
                "are needed"
            )
        rows.append(np.flatnonzero(same))
    return rows


def _one(value: Any) -> Any:
    """One condition value as the flow methods take it: a label, or a feature row ``(1, k)``."""
    return value if np.ndim(value) == 0 else np.asarray(value)[None]


def _show(value: Any) -> str:
    return repr(value.item()) if np.ndim(value) == 0 else str(np.asarray(value).tolist())
