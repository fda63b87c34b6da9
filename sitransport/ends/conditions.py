"""Conditions: what a conditional fit is a family over. A condition is one row per sample,
either labels (integers or strings, ``(n,)``) or continuous features (floats, ``(n,)`` or
``(n, k)``); :class:`ConditionEncoder` learns them from the training set and turns the caller's
values into the *codes* a network reads:

- labels: ``int64`` indices ``(n,)`` into the sorted label set; index ``K`` (the number of
  labels) is the *null* condition of guidance (the condition dropped);
- features: ``(n, k + 1)`` in the network's dtype, the standardised features
  ``(c - mean) / scale`` and a last column of ones; the null condition is all zeros.

A value never seen in training (a label outside the set) is refused with a ``ValueError``
naming ``condition``: the network has no embedding for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ConditionEncoder", "condition_array"]

#: The kinds of condition.
KINDS = ("labels", "features")
#: Most distinct labels a condition may hold (an embedding table per label).
MAX_LABELS = 100_000
#: Most feature columns of a continuous condition.
MAX_FEATURES = 4096


def _describe(c: Any) -> str:
    shape = getattr(c, "shape", None)
    dtype = getattr(c, "dtype", None)
    return f"{type(c).__name__}" + (f"(shape={tuple(shape)}, dtype={dtype})" if shape else "")


def condition_array(c: Any, name: str = "condition") -> np.ndarray:
    """The caller's condition as a numpy array, ``(n,)`` for labels or ``(n, k)`` float64 for
    features: numpy, torch, xarray, pandas and lists are read; nothing is repaired.

    Args:
        c: the condition values.
        name: the argument's name in messages. Default ``"condition"``.

    Raises:
        TypeError: not array-like, or of a dtype that is neither integer, boolean, string nor
            float (complex, object of mixed types).
        ValueError: not 1-D or 2-D, empty, or non-finite features.

    Example:
        >>> import numpy as np
        >>> condition_array([0, 1, 1]).dtype.kind, condition_array(np.ones(3)).shape
        ('i', (3, 1))
    """
    if c is None:
        raise TypeError(f"{name} must be labels (n,) or features (n, k), got None")
    if isinstance(c, Tensor):
        c = c.detach().cpu().numpy()
    elif hasattr(c, "to_numpy"):  # pandas Series / DataFrame, also categorical columns
        c = c.to_numpy()
    elif hasattr(c, "values") and hasattr(c, "dims"):  # xarray
        c = c.values
    if isinstance(c, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy masked array, whose mask would be ignored")
    try:
        arr = np.asarray(c)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be array-like, got {_describe(c)}: {err}") from None
    if arr.dtype == object:
        kinds = {type(v) for v in arr.ravel().tolist()}
        if kinds <= {str}:
            arr = arr.astype(str)
        elif kinds and all(issubclass(k, (int, np.integer)) and k is not bool for k in kinds):
            arr = arr.astype(np.int64)
    if arr.ndim == 0 or arr.ndim > 2 or arr.shape[0] == 0:
        raise ValueError(
            f"{name} must hold one row per sample, labels (n,) or features (n, k), got shape "
            f"{arr.shape}"
        )
    kind = arr.dtype.kind
    if kind in "iub" or kind == "U":
        if arr.ndim != 1:
            raise ValueError(
                f"{name}: labels must be 1-D (n,), got shape {arr.shape}; continuous "
                "features (n, k) must be floats"
            )
        return arr.astype(np.int64) if kind in "ub" else arr
    if kind != "f":
        raise TypeError(
            f"{name} must be integer or string labels, or float features, got dtype {arr.dtype}"
        )
    feats = arr.astype(np.float64).reshape(arr.shape[0], -1)
    if not np.isfinite(feats).all():
        bad = int(np.argwhere(~np.isfinite(feats))[0, 0])
        raise ValueError(f"{name} holds nan or inf (row {bad}); features must be finite")
    return feats


@dataclass(frozen=True)
class ConditionEncoder:
    """The conditions of a fit: the label set, or the features' standardisation.

    Built from the training conditions by :meth:`fit`; stored with the flow
    (:meth:`spec`, :meth:`from_spec`).

    Args:
        kind: ``"labels"`` or ``"features"``.
        labels: the sorted label values (``kind="labels"``). Default ``()``.
        mean: the features' means (``kind="features"``). Default ``()``.
        scale: the features' standard deviations (1 where a column is constant). Default
            ``()``.

    Example:
        >>> from sitransport.ends import ConditionEncoder
        >>> enc = ConditionEncoder.fit(["b", "a", "b"])
        >>> enc.labels, enc.encode(["a", "b"], 2).tolist(), int(enc.null(1))
        (('a', 'b'), [0, 1], 2)
        >>> feats = ConditionEncoder.fit([[0.0], [2.0]])
        >>> feats.encode([[1.0]], 1).tolist()  # standardised, then the presence column
        [[0.0, 1.0]]
    """

    kind: str
    labels: tuple[Any, ...] = ()
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"condition kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "labels":
            if not 1 <= len(self.labels) <= MAX_LABELS:
                raise ValueError(
                    f"condition labels: 1 to {MAX_LABELS} labels, got {len(self.labels)}"
                )
            types = {type(v) for v in self.labels}
            if not (types <= {int} or types <= {str}):
                raise TypeError(f"condition labels must be all int or all str, got {types}")
            if list(self.labels) != sorted(set(self.labels)):
                raise ValueError("condition labels must be sorted and distinct")
        else:
            k = len(self.mean)
            if not 1 <= k <= MAX_FEATURES or len(self.scale) != k:
                raise ValueError(
                    f"condition features: 1 to {MAX_FEATURES} columns with a mean and a scale "
                    f"each, got {k} means and {len(self.scale)} scales"
                )
            for v in (*self.mean, *self.scale):
                if not isinstance(v, float) or not math.isfinite(v) or abs(v) > 1e300:
                    raise ValueError(f"condition features: mean/scale must be finite, got {v!r}")
            if min(self.scale) <= 0:
                raise ValueError(f"condition features: scales must be > 0, got {self.scale}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def fit(cls, c: Any, name: str = "condition") -> ConditionEncoder:
        """The encoder of training conditions ``c`` (labels or features, see the module).

        Args:
            c: the conditions, one row per sample.
            name: the argument's name in messages. Default ``"condition"``.

        Example:
            >>> ConditionEncoder.fit([3, 1, 3]).labels
            (1, 3)
        """
        arr = condition_array(c, name)
        if arr.ndim == 1:
            values = np.unique(arr)
            if values.size > MAX_LABELS:
                raise ValueError(f"{name} holds {values.size} labels, at most {MAX_LABELS}")
            cast = str if arr.dtype.kind == "U" else int
            return cls("labels", labels=tuple(cast(v) for v in values.tolist()))
        if arr.shape[1] > MAX_FEATURES:
            raise ValueError(f"{name} has {arr.shape[1]} columns, at most {MAX_FEATURES}")
        mean = arr.mean(0)
        std = arr.std(0)
        scale = np.where(std > 0, std, 1.0)
        return cls("features", mean=tuple(map(float, mean)), scale=tuple(map(float, scale)))

    def spec(self) -> dict[str, Any]:
        """Plain data for a flow file; :meth:`from_spec` reads it back.

        Example:
            >>> ConditionEncoder.fit([0, 2]).spec()
            {'kind': 'labels', 'labels': [0, 2]}
        """
        if self.kind == "labels":
            return {"kind": "labels", "labels": list(self.labels)}
        return {"kind": "features", "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_spec(cls, spec: Any) -> ConditionEncoder:
        """The encoder :meth:`spec` describes (checked: a ``ValueError``/``TypeError`` for
        anything else).

        Args:
            spec: the plain data of :meth:`spec` (a flow file's ``"condition"``).

        Example:
            >>> ConditionEncoder.from_spec({"kind": "labels", "labels": [0, 2]}).labels
            (0, 2)
        """
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
            raise ValueError(f"a condition spec is a dict with a 'kind', got {type(spec).__name__}")
        keys = {"labels": {"kind", "labels"}, "features": {"kind", "mean", "scale"}}
        expected = keys.get(spec["kind"])
        if expected is None or set(spec) != expected:
            raise ValueError(
                f"a condition spec has keys {sorted(expected or keys['labels'])}, "
                f"got {sorted(spec)}"
            )
        if spec["kind"] == "labels":
            if not isinstance(spec["labels"], list):
                raise ValueError("condition spec: 'labels' must be a list")
            return cls("labels", labels=tuple(spec["labels"]))
        if not isinstance(spec["mean"], list) or not isinstance(spec["scale"], list):
            raise ValueError("condition spec: 'mean' and 'scale' must be lists")
        return cls("features", mean=tuple(spec["mean"]), scale=tuple(spec["scale"]))

    # ----------------------------------------------------------------------- coding
    @property
    def size(self) -> int:
        """The width of the codes, the number of embeddings (labels and the null one) or
        ``k + 1``.

        Example:
            >>> ConditionEncoder.fit([0, 1, 2]).size, ConditionEncoder.fit([[0.0, 1.0]]).size
            (4, 3)
        """
        return len(self.labels) + 1 if self.kind == "labels" else len(self.mean) + 1

    @property
    def dim(self) -> int:
        """The number of feature columns ``k`` (0 for labels)."""
        return len(self.mean)

    def encode(
        self, c: Any, n: int, *, dtype: torch.dtype = torch.float32, name: str = "condition"
    ) -> Tensor:
        """The codes of ``n`` samples: ``c`` holds one value (broadcast to all ``n``) or ``n``
        rows.

        Args:
            c: a label, a feature vector, or one of them per sample.
            n: the number of samples.
            dtype: the dtype of feature codes (labels are ``int64``). Default
                ``torch.float32``.
            name: the argument's name in messages. Default ``"condition"``.

        Raises:
            ValueError: a label not in :attr:`labels`, a row count other than 1 or ``n``, or
                features of another width; labels given to a feature condition or the other
                way round.

        Example:
            >>> enc = ConditionEncoder.fit([0, 1])
            >>> enc.encode(1, 3).tolist()
            [1, 1, 1]
        """
        arr = self._rows(c, name)
        if arr.shape[0] not in (1, n):
            raise ValueError(
                f"{name} must hold one value (for all samples) or one row per sample ({n}), "
                f"got {arr.shape[0]} rows"
            )
        if self.kind == "labels":
            codes = self._label_codes(arr, name)
            out = torch.from_numpy(codes)
        else:
            z = (arr - np.asarray(self.mean)) / np.asarray(self.scale)
            out = torch.from_numpy(np.concatenate([z, np.ones((len(z), 1))], axis=1)).to(dtype)
        return out.expand(n, *out.shape[1:]).clone() if out.shape[0] == 1 else out

    def _rows(self, c: Any, name: str) -> np.ndarray:
        """``c`` as rows of this encoder's kind (a single value as one row)."""
        scalar = np.ndim(c) == 0 if not isinstance(c, (str, bytes)) else True
        arr = condition_array([c] if scalar else c, name)
        if self.kind == "labels":
            if arr.ndim != 1:
                raise ValueError(
                    f"{name}: this flow is conditioned on labels {self._shown()}, got float "
                    f"features of shape {arr.shape}"
                )
            return arr
        if arr.ndim == 1:
            if arr.dtype.kind == "U":
                raise ValueError(f"{name}: this flow takes {self.dim} float features, got labels")
            arr = arr.astype(np.float64).reshape(-1, 1)  # integer values of a feature
        if arr.shape[1] != self.dim:
            if arr.shape[0] == self.dim and arr.shape[1] == 1 and not scalar:
                arr = arr.reshape(1, -1)  # one feature vector given flat
            else:
                raise ValueError(
                    f"{name} must have {self.dim} feature column(s), got shape {arr.shape}"
                )
        return arr

    def _label_codes(self, arr: np.ndarray, name: str) -> np.ndarray:
        known = np.asarray(self.labels)
        if (arr.dtype.kind == "U") != (known.dtype.kind == "U"):
            raise ValueError(
                f"{name}: this flow's labels are {self._shown()}, got values of dtype {arr.dtype}"
            )
        idx = np.searchsorted(known, arr)
        idx_c = np.minimum(idx, len(known) - 1)
        bad = known[idx_c] != arr
        if bad.any():
            unseen = sorted({v for v in arr[bad].tolist()})[:5]
            raise ValueError(
                f"{name} holds label(s) never seen in training: {unseen}; this flow knows "
                f"{self._shown()}"
            )
        return idx_c.astype(np.int64)

    def _shown(self) -> str:
        labels = list(self.labels)
        return str(labels) if len(labels) <= 10 else f"{labels[:10]}... ({len(labels)} labels)"

    def null(self, n: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
        """The codes of the null condition (dropped, for guidance) for ``n`` samples.

        Args:
            n: the number of samples.
            dtype: the dtype of feature codes (labels are ``int64``). Default
                ``torch.float32``.

        Example:
            >>> ConditionEncoder.fit([[1.0], [2.0]]).null(2).tolist()
            [[0.0, 0.0], [0.0, 0.0]]
        """
        if self.kind == "labels":
            return torch.full((n,), len(self.labels), dtype=torch.int64)
        return torch.zeros(n, self.size, dtype=dtype)

    def groups(self, codes: Tensor) -> Tensor:
        """An integer group per row for pairing within conditions: the label index, or the
        index of the row's distinct feature vector.

        Args:
            codes: codes of this encoder (:meth:`encode`), ``(n,)`` or ``(n, k + 1)``.

        Example:
            >>> enc = ConditionEncoder.fit([[1.0], [2.0]])
            >>> enc.groups(enc.encode([[2.0], [1.0], [2.0]], 3)).tolist()
            [1, 0, 1]
        """
        if self.kind == "labels":
            return codes
        return torch.unique(codes, dim=0, return_inverse=True)[1]

    def __repr__(self) -> str:
        if self.kind == "labels":
            return f"ConditionEncoder(labels={self._shown()})"
        return f"ConditionEncoder(features={self.dim})"
