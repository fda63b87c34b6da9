"""The conditions of a conditional :func:`~sitransport.fit`: ``condition=c`` (one row per
sample of ``rho1``) or ``condition=(c0, c1)`` (one row per sample of each end) resolved and
checked against the ends, split with them, and drawn with them: the draw of a conditional
run returns ``(x0, x1, codes)``, ``x0`` a source sample that may go with the condition of
``x1`` (any one for ``condition=c``; one of the same condition for ``(c0, c1)``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from sitransport._validation import check_positive
from sitransport.couplings import Coupling, End, FeaturePlans, GlobalOT, GroupPlans, PairSource
from sitransport.distributed import ShardedDataset
from sitransport.ends.conditions import ConditionEncoder, condition_array
from sitransport.ends.densities import Density, EmpiricalDensity
from sitransport.ends.normalization import Normalization
from sitransport.fitting.ends import split_rows
from sitransport.images import DequantizedImages
from sitransport.train.step import Conditions

# fit's own steps, imported by the package, not public API
__all__: list[str] = []


@dataclass
class FitConditions:
    """The resolved conditions of a fit: the encoder, the kind recorded in
    ``FitConfig.condition``, and the raw values of each end's rows (``c0`` only for
    ``condition=(c0, c1)``)."""

    encoder: ConditionEncoder
    kind: str
    c1: np.ndarray
    c0: np.ndarray | None = None

    @property
    def paired(self) -> bool:
        return self.c0 is not None

    def digest(self) -> str:
        """SHA-256 of the conditions (for resume fingerprints)."""
        h = hashlib.sha256(repr(self.encoder.spec()).encode())
        for c in (self.c0, self.c1):
            if c is not None:
                h.update(repr(c.shape).encode() + np.ascontiguousarray(c).tobytes())
        return h.hexdigest()


def _rows(end: Any) -> int | None:
    """The number of samples of a finite end (``None`` for a distribution)."""
    if isinstance(end, ShardedDataset):
        return len(end.dataset)
    if isinstance(end, EmpiricalDensity):
        return int(end.samples.shape[0])
    if isinstance(end, DequantizedImages):
        return len(end)
    return None


def resolve_conditions(
    condition: Any, d0: Density, d1: Density | ShardedDataset | None
) -> FitConditions | None:
    """``fit``'s ``condition=`` checked against its ends (``d1`` a dataset's source for a
    dataset at ``rho1``: one condition per item).

    Raises:
        ValueError: ``rho1`` is not a finite set of samples (a distribution or a dataset),
            the rows do not match the samples, ``(c0, c1)`` of different kinds, a condition
            of ``rho1`` with no ``rho0`` sample, or ``rho0`` not samples for ``(c0, c1)``.
        TypeError: values that are neither labels nor float features.
    """
    if condition is None:
        return None
    n1 = _rows(d1)
    if n1 is None:
        kind = "nothing" if d1 is None else "a " + str(getattr(d1, "kind", type(d1).__name__))
        raise ValueError(
            "condition= gives one row per sample of rho1, so rho1 must be samples (an array, "
            f"ImageData or a torch Dataset), got {kind}"
        )
    if isinstance(condition, tuple):
        if len(condition) != 2:
            raise ValueError(
                f"condition must be c (one row per sample of rho1) or a pair (c0, c1), got a "
                f"tuple of {len(condition)}"
            )
        return _paired(condition, d0, n1)
    c1 = condition_array(condition, "condition")
    _check_rows(c1, n1, "condition", "rho1")
    encoder = ConditionEncoder.fit(c1, "condition")
    return FitConditions(encoder, encoder.kind, c1)


def check_condition_settings(
    conditions: FitConditions | None, settings: Any, coupling: Any, weight: Any
) -> None:
    """The settings that only a conditional fit takes, and what it cannot take.

    Raises:
        ValueError: ``condition_dropout`` or ``condition_weight`` without ``condition=``;
            ``condition_weight`` for labels or ``(c0, c1)`` (pairs stay within equal
            values there).
    """
    if conditions is None:
        if settings.condition_dropout > 0:
            raise ValueError(
                f"training.condition_dropout={settings.condition_dropout} drops conditions, "
                "but the fit has none: pass condition= or leave condition_dropout=0"
            )
        if weight is not None:
            raise ValueError(f"condition_weight={weight!r} needs condition= (float features)")
        return
    if weight is not None:
        check_positive(weight, "condition_weight")
        if conditions.kind != "features":
            raise ValueError(
                f"condition_weight={weight!r} weighs float features in the pairing cost; "
                f"this fit's conditions are {conditions.kind}, paired within equal values"
            )


def training_conditions(
    conditions: FitConditions | None, weight: float | None, dropout: float
) -> Conditions | None:
    """The trainer's :class:`~sitransport.train.step.Conditions` of a fit's conditions."""
    if conditions is None:
        return None
    grouped = conditions.kind != "features"
    return Conditions(conditions.encoder, grouped, weight, dropout)


def condition_record(conditions: FitConditions, c1_train: np.ndarray | None) -> dict[str, Any]:
    """What ``flow.history.attrs`` records of a conditional fit: ``condition`` (its kind, as
    ``FitConfig.condition``), and for labels ``condition_labels`` (the label set, sorted)
    and ``condition_counts`` (the training rows of ``rho1`` per label, validation held
    out); for features ``condition_features`` (their number ``k``).

    Example:
        >>> import numpy as np
        >>> enc = ConditionEncoder.fit(["b", "a", "b"])
        >>> rows = np.array(["b", "a", "b"])
        >>> condition_record(FitConditions(enc, "labels", rows), rows)
        {'condition': 'labels', 'condition_labels': ['a', 'b'], 'condition_counts': [1, 2]}
    """
    enc = conditions.encoder
    record: dict[str, Any] = {"condition": conditions.kind}
    if enc.kind == "features":
        record["condition_features"] = enc.dim
        return record
    record["condition_labels"] = list(enc.labels)
    rows = conditions.c1 if c1_train is None else c1_train
    codes = enc.encode(rows, len(rows))
    record["condition_counts"] = torch.bincount(codes, minlength=len(enc.labels)).tolist()
    return record


def _check_rows(c: np.ndarray, n: int, name: str, end: str) -> None:
    if c.shape[0] != n:
        raise ValueError(
            f"{name} must have one row per sample of {end} ({n}), got {c.shape[0]} rows"
        )


def _paired(condition: tuple[Any, Any], d0: Density, n1: int) -> FitConditions:
    n0 = _rows(d0)
    if n0 is None:
        raise ValueError(
            "condition=(c0, c1) gives one row per sample of each end, so rho0 must be samples "
            f"too, got a {d0.kind}; with a distribution at rho0 pass condition=c1"
        )
    c0 = condition_array(condition[0], "condition[0]")
    c1 = condition_array(condition[1], "condition[1]")
    _check_rows(c0, n0, "condition[0]", "rho0")
    _check_rows(c1, n1, "condition[1]", "rho1")
    if c0.ndim != c1.ndim or c0.dtype.kind != c1.dtype.kind or c0.shape[1:] != c1.shape[1:]:
        raise ValueError(
            f"condition=(c0, c1) must be of one kind, got {c0.dtype} {c0.shape[1:]} and "
            f"{c1.dtype} {c1.shape[1:]}"
        )
    encoder = ConditionEncoder.fit(np.concatenate([c0, c1]), "condition")
    values0 = {tuple(np.atleast_1d(v).tolist()) for v in c0}
    missing = [v for v in {tuple(np.atleast_1d(v).tolist()) for v in c1} if v not in values0]
    if missing:
        shown = sorted(missing)[:5]
        raise ValueError(
            f"condition=(c0, c1): rho1 has samples of condition(s) {shown} that no rho0 sample "
            "has; pairs are drawn within a condition, so every condition of rho1 needs rho0 "
            "samples"
        )
    kind = "paired labels" if encoder.kind == "labels" else "paired features"
    return FitConditions(encoder, kind, c1, c0)


def split_conditions(
    end: Any, c: np.ndarray | None, fraction: float, gen: torch.Generator, name: str
) -> tuple[Any, Any, np.ndarray | None, np.ndarray | None]:
    """:func:`~sitransport.fitting.ends.split` with the end's condition rows split the same
    way: ``(training end, held-out samples, training rows, held-out rows)``."""
    train, held, rows = split_rows(end, fraction, gen, name)
    if c is None or rows is None:
        return train, held, c, None
    return train, held, c[rows[0].numpy()], c[rows[1].numpy()]


class ConditionalDraw:
    """``draw(n, g) -> (x0, x1, codes)`` of a conditional fit, normalised: ``n`` target rows
    drawn uniformly with their codes, and for each a source sample: a draw of ``rho0`` for
    ``condition=c``, a uniform draw among the ``rho0`` samples of the same condition for
    ``(c0, c1)``.

    Args:
        train0: the training source end.
        train1: the training target samples (:class:`EmpiricalDensity` or images; a
            dataset's reader in :class:`ConditionalDatasetDraw`).
        c1: the condition rows of ``train1``.
        encoder: the conditions' encoder.
        norm: the fit's normalisation.
        dtype: the dtype of feature codes.
        c0: the condition rows of ``train0`` (``condition=(c0, c1)``), else ``None``.
    """

    def __init__(
        self,
        train0: Density,
        train1: Density | ShardedDataset,
        c1: np.ndarray,
        encoder: ConditionEncoder,
        norm: Normalization,
        dtype: torch.dtype,
        c0: np.ndarray | None = None,
    ) -> None:
        self.train0, self.train1, self.norm = train0, train1, norm
        self.encoder, self.dtype, self.c0 = encoder, dtype, c0
        self.encoder_groups = encoder.groups
        self.codes1 = encoder.encode(c1, len(c1), dtype=dtype)
        self.groups0: tuple[Tensor, Tensor, Tensor] | None = None
        if c0 is not None:
            codes0 = encoder.encode(c0, len(c0), dtype=dtype)
            both = encoder.groups(torch.cat([codes0, self.codes1]))
            g0, self.g1 = both[: len(c0)], both[len(c0) :]
            order = torch.argsort(g0, stable=True)
            counts = torch.bincount(g0, minlength=int(both.max()) + 1)
            starts = torch.cumsum(counts, 0) - counts
            self.groups0 = (order, starts, counts)

    def _x1(self, idx: Tensor, g: torch.Generator) -> Tensor:
        """The target samples ``idx`` (dequantised afresh for images)."""
        end = self.train1
        if isinstance(end, DequantizedImages):
            return end.take(idx, g)
        return cast(EmpiricalDensity, end).samples[idx]

    def _x0(self, idx1: Tensor, g: torch.Generator) -> Tensor:
        if self.groups0 is None:
            return self.train0.sample(idx1.shape[0], g)
        order, starts, counts = self.groups0
        group = self.g1[idx1]
        u = torch.rand(idx1.shape[0], generator=g, dtype=torch.float64)
        pos = starts[group] + (u * counts[group]).long().clamp(max=counts[group] - 1)
        rows = order[pos]
        end = self.train0
        if isinstance(end, DequantizedImages):
            return end.take(rows, g)
        return cast(EmpiricalDensity, end).samples[rows]

    def rows(self, idx1: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """The target rows ``idx1``, each with a source sample that may go with it, and
        their codes (normalised samples)."""
        x0 = self._x0(idx1, g)
        x1 = self._x1(idx1, g)
        return self.norm.encode(x0), self.norm.encode(x1), self.codes1[idx1]

    def __call__(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        return self.rows(torch.randint(0, self.codes1.shape[0], (n,), generator=g), g)


class ConditionalDatasetDraw(ConditionalDraw):
    """:class:`ConditionalDraw` of a dataset at ``rho1``: its next global batch (read in
    shuffled order by the :class:`~sitransport.distributed.ShardedDataset`, whose position
    is checkpointed) with the conditions of the items read, and a source sample for each.

    Takes the arguments of :class:`ConditionalDraw`, with ``train1`` the target dataset's
    reader (the training split) and ``c1`` the condition of each of its items, in order.
    """

    def __call__(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        source = cast(ShardedDataset, self.train1)
        x1 = source(n, g)
        idx1 = source.last_indices
        assert idx1 is not None  # set by every call of the source
        idx1 = idx1.cpu()
        return self.norm.encode(self._x0(idx1, g)), self.norm.encode(x1), self.codes1[idx1]

    def state_dict(self) -> dict[str, int]:
        """The dataset's position (:meth:`ShardedDataset.state_dict`)."""
        return cast(ShardedDataset, self.train1).state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position of :meth:`state_dict`."""
        cast(ShardedDataset, self.train1).load_state_dict(state)


def conditional_draw(
    train0: Density,
    train1: Density | ShardedDataset,
    rows: tuple[np.ndarray | None, np.ndarray],
    encoder: ConditionEncoder,
    norm: Normalization,
    dtype: torch.dtype,
) -> ConditionalDraw:
    """The draw of a conditional fit: a :class:`ConditionalDatasetDraw` for a dataset at
    ``rho1``, a :class:`ConditionalDraw` otherwise; ``rows`` are the training conditions
    ``(c0 or None, c1)``."""
    kind = ConditionalDatasetDraw if isinstance(train1, ShardedDataset) else ConditionalDraw
    return kind(train0, train1, rows[1], encoder, norm, dtype, rows[0])


def held_out_rows(
    draw: ConditionalDraw, held1: Tensor, c1_held: np.ndarray, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """The validation pairs of a conditional fit: every held-out target sample, with its
    codes and a source sample drawn from ``gen`` as the training draw would pair it."""
    held = ConditionalDraw(
        draw.train0, EmpiricalDensity(held1), c1_held, draw.encoder, draw.norm, draw.dtype, draw.c0
    )
    return held.rows(torch.arange(held1.shape[0]), gen)


def conditional_source(
    draw: ConditionalDraw, coupling: Coupling, weight: float | None, seed: int
) -> PairSource:
    """The pair source of a conditional fit: a global plan's batches drawn from plans within
    conditions (:func:`plan_draw`), any other coupling's paired within conditions by the
    trainer. A dataset's draw is given to a global plan as it is (which refuses it)."""
    if isinstance(coupling, GlobalOT) and not isinstance(draw, ConditionalDatasetDraw):
        return coupling.source(plan_draw(draw, coupling, weight, seed), seed=seed)
    return coupling.source(draw, seed=seed)


def plan_draw(
    draw: ConditionalDraw, coupling: GlobalOT, weight: float | None, seed: int
) -> GroupPlans | FeaturePlans:
    """The draw of a conditional fit with ``coupling="global_ot"``: the batches of ``draw``'s
    ends drawn from plans within conditions, normalised (see
    :mod:`~sitransport.couplings.conditional_plan`): one plan per condition value (labels,
    ``(c0, c1)``; each group's ``rho0`` samples for ``(c0, c1)``, ``rho0`` whole otherwise), or
    one plan between points augmented with their features. Seeded by ``seed + 4``, as an
    unconditional fit's plans."""
    codes1 = draw.codes1
    if draw.groups0 is None and codes1.is_floating_point():  # condition=c, float features
        train1, norm = draw.train1, draw.norm
        x1: Tensor | Callable[[Tensor, torch.Generator], Tensor]
        if isinstance(train1, DequantizedImages):
            x1 = lambda idx, g: norm.encode(train1.take(idx, g))  # noqa: E731
        else:
            x1 = norm.encode(cast(EmpiricalDensity, train1).samples)
        return FeaturePlans(
            coupling, _shared_source(draw), x1, codes1, weight=weight, seed=seed + 4
        )
    g1 = draw.g1 if draw.groups0 is not None else draw.encoder_groups(codes1)
    present, counts = torch.unique(g1, return_counts=True)
    shared = _shared_source(draw) if draw.groups0 is None else None
    ends: list[tuple[End, End]] = []
    for k in present.tolist():
        rows1 = torch.nonzero(g1 == k).flatten()
        source = shared if shared is not None else _group_source(draw, k)
        ends.append((source, _rows_end(cast(Density, draw.train1), rows1, draw.norm)))
    first = torch.stack([torch.nonzero(g1 == k)[0, 0] for k in present.tolist()])
    return GroupPlans(coupling, ends, codes1[first], counts, seed=seed + 4)


def _shared_source(draw: ConditionalDraw) -> End:
    """``rho0`` whole (normalised): its samples, or a stream of its draws."""
    train0, norm = draw.train0, draw.norm
    if isinstance(train0, EmpiricalDensity):
        return norm.encode(train0.samples)
    return lambda m, g: norm.encode(train0.sample(m, g))


def _group_source(draw: ConditionalDraw, k: int) -> End:
    """The ``rho0`` samples of group ``k`` (``condition=(c0, c1)``), normalised."""
    assert draw.groups0 is not None  # called for (c0, c1) only
    order, starts, counts = draw.groups0
    rows0 = order[int(starts[k]) : int(starts[k] + counts[k])]
    return _rows_end(draw.train0, rows0, draw.norm)


def _rows_end(end: Density, rows: Tensor, norm: Normalization) -> End:
    """The rows ``rows`` of a finite end, normalised: a set of samples, or a stream of
    images drawn uniformly among them (dequantised afresh)."""
    if isinstance(end, DequantizedImages):
        images = end

        def sample(m: int, g: torch.Generator) -> Tensor:
            pick = rows[torch.randint(0, rows.shape[0], (m,), generator=g)]
            return norm.encode(images.take(pick, g))

        return sample
    return norm.encode(cast(EmpiricalDensity, end).samples[rows])
