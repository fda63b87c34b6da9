"""The change of coordinates ``z = (x - m) / s`` (one shift, one scalar scale shared by both
ends) that ``fit`` builds before training, and its check that the network's dtype resolves
each end in it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Moments", "Normalization"]


#: The fewest distinct values per standard deviation of each end that the network's dtype
#: must resolve, in the caller's and the normalised coordinates (``fit`` refuses fewer).
_MIN_LEVELS = 100

#: A standard normal end is checked for resolution over ``[-6, 6]`` in each coordinate: all but
#: ``2e-9`` of its mass (draws of it reach about 4.5 to 6 standard deviations).
_NORMAL_BULK = 6.0


@dataclass(frozen=True)
class Moments:
    """What the normalisation reads of one end, per coordinate (float64 tensors of the sample
    shape): the count ``n``, the ``mean``, the unbiased variance ``var`` and the smallest and
    largest values ``low``, ``high``.

    Args:
        n: the number of samples the end counts as in the pooled statistics.
        mean: the per-coordinate mean.
        var: the per-coordinate unbiased variance (``0`` for a single sample).
        low: the per-coordinate smallest value.
        high: the per-coordinate largest value.

    Example:
        >>> import torch
        >>> m = Moments.of(torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=torch.float64))
        >>> m.n, m.mean.tolist(), m.var.tolist(), m.low.tolist(), m.high.tolist()
        (2, [1.0, 1.0], [2.0, 0.0], [0.0, 1.0], [2.0, 1.0])
    """

    n: int
    mean: Tensor
    var: Tensor
    low: Tensor
    high: Tensor

    @classmethod
    def of(cls, x: Tensor) -> Moments:
        """The moments of the samples ``x`` of shape ``(n, ...)``, read without copying them
        (beyond a conversion to float64).

        Args:
            x: the samples; ``n >= 1``.

        Example:
            >>> import torch
            >>> Moments.of(torch.tensor([[-1.0], [3.0]])).high.tolist()
            [3.0]
        """
        x = x.to(torch.float64)
        low, high = torch.aminmax(x, dim=0)
        var = x.var(0) if x.shape[0] > 1 else torch.zeros_like(low)
        return cls(x.shape[0], x.mean(0), var, low, high)

    @classmethod
    def standard_normal(cls, shape: tuple[int, ...], n: int) -> Moments:
        """The exact moments of ``N(0, I)`` over samples of shape ``shape``, counting as ``n``
        draws; its values are taken to lie in ``[-6, 6]`` (all but ``2e-9`` of its mass).

        Args:
            shape: the sample shape, e.g. ``(d,)``.
            n: the number of draws it stands for in the pooled statistics.

        Example:
            >>> m = Moments.standard_normal((2,), 100)
            >>> m.mean.tolist(), m.var.tolist(), m.high.tolist()
            ([0.0, 0.0], [1.0, 1.0], [6.0, 6.0])
        """
        zeros = torch.zeros(shape, dtype=torch.float64)
        return cls(n, zeros, zeros + 1.0, zeros - _NORMAL_BULK, zeros + _NORMAL_BULK)

    @property
    def top(self) -> float:
        """The largest magnitude, ``max |x|``.

        Example:
            >>> import torch
            >>> Moments.of(torch.tensor([[-4.0], [3.0]])).top
            4.0
        """
        return max(float(-self.low.min()), float(self.high.max()))

    @property
    def spread(self) -> float:
        """The root-mean per-coordinate standard deviation (``0`` for a single sample).

        Example:
            >>> import torch
            >>> Moments.of(torch.tensor([[0.0, 0.0], [2.0, 0.0]])).spread  # sqrt((2 + 0) / 2)
            1.0
        """
        return float(self.var.mean().sqrt()) if self.n > 1 else 0.0


def _concatenated(samples: list[Tensor]) -> tuple[Tensor, float]:
    """``(mean, root-mean variance)`` of the sample sets concatenated (one float64 copy)."""
    pooled = torch.cat([s.to(torch.float64) for s in samples])
    return pooled.mean(0), float(pooled.var(0).mean().sqrt())


def _pooled(moments: list[Moments]) -> tuple[Tensor, float]:
    """``(mean, root-mean variance)`` of the union of ends given by their moments (the
    unbiased variance of the pooled samples, within-end plus between-end parts)."""
    total = sum(m.n for m in moments)
    shift = torch.stack([m.n * m.mean for m in moments]).sum(0) / total
    squares = torch.stack([(m.n - 1) * m.var + m.n * (m.mean - shift) ** 2 for m in moments])
    return shift, float((squares.sum(0) / (total - 1)).mean().sqrt())


@dataclass(frozen=True)
class Normalization:
    """Affine map ``z = (x - shift) / scale`` with a scalar ``scale`` (a similarity).

    Args:
        shift: the pooled mean, a finite float64 tensor of the sample shape (e.g. ``(d,)``).
        scale: the root-mean per-coordinate standard deviation, a finite float ``> 0``.

    Raises:
        ValueError: ``scale`` is not finite and positive, or ``shift`` is not finite.

    Example:
        >>> import torch
        >>> from sitransport.flow import Normalization
        >>> norm = Normalization(torch.tensor([1.0, 2.0], dtype=torch.float64), 2.0)
        >>> x = torch.tensor([[3.0, 2.0]], dtype=torch.float64)
        >>> norm.encode(x), norm.decode(norm.encode(x))
        (tensor([[1., 0.]], dtype=torch.float64), tensor([[3., 2.]], dtype=torch.float64))
    """

    shift: Tensor
    scale: float

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise TypeError(f"normalization scale must be a float, got {type(self.scale).__name__}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"normalization scale must be finite and > 0, got {self.scale!r}")
        if not isinstance(self.shift, Tensor) or not bool(torch.isfinite(self.shift).all()):
            raise ValueError(f"normalization shift must be a finite tensor, got {self.shift!r}")

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> Normalization:
        """The identity map (zero shift, unit scale) for samples of shape ``shape``.

        Args:
            shape: the sample shape, e.g. ``(d,)`` or ``(c, h, w)``.

        Example:
            >>> Normalization.identity((2,))
            Normalization(shift=tensor([0., 0.], dtype=torch.float64), scale=1.0)
        """
        return cls(torch.zeros(shape, dtype=torch.float64), 1.0)

    @classmethod
    def from_samples(
        cls,
        *samples: Tensor | Moments,
        names: tuple[str, ...] | None = None,
        dtype: torch.dtype | None = None,
    ) -> Normalization:
        """Pooled mean and root-mean per-coordinate variance of all ``samples``.

        An end may be given by its :class:`Moments` instead of samples (e.g. the exact
        moments of ``N(0, I)``, :meth:`Moments.standard_normal`): it then enters the pooled
        statistics as that many samples with those moments, and no draws are needed. Sample
        sets alone are pooled as one concatenated set.

        With ``dtype`` (the network's), each sample set must also be resolvable in it: its
        values' squares must not overflow, and it must keep at least 100 distinct values per
        standard deviation both as given and in normalised coordinates (two ends far apart
        relative to their spreads, or of very different spreads, collapse to a few points).

        Args:
            *samples: sample sets, shape ``(n_i, ...)``, or their :class:`Moments`, one per end.
            names: their names in error messages (default ``samples[i]``).
            dtype: the dtype the samples will be transported in (``None``: not checked).

        Raises:
            ValueError: all samples are identical (zero variance); the pooled mean or
                variance is not finite (it overflows float64); or ``dtype`` cannot resolve
                a sample set (the message names it, and ``dtype=torch.float64`` when that
                resolves it).

        Example:
            >>> import torch
            >>> x0 = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
            >>> x1 = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
            >>> norm = Normalization.from_samples(x0, x1)  # both ends share one map
            >>> norm.shift.tolist(), round(norm.scale, 4)  # variance 4/3 in each coordinate
            ([1.0, 1.0], 1.1547)
            >>> norm = Normalization.from_samples(Moments.standard_normal((2,), 2), x1)
            >>> norm.shift.tolist(), round(norm.scale, 4)  # N(0, I) as 2 samples, and x1
            ([0.5, 1.0], 1.2247)
        """
        names = names or tuple(f"samples[{i}]" for i in range(len(samples)))
        moments = [s if isinstance(s, Moments) else Moments.of(s) for s in samples]
        sets = [s for s in samples if isinstance(s, Tensor)]
        shift, scale = _concatenated(sets) if len(sets) == len(samples) else _pooled(moments)
        what = f"the samples of {' and '.join(names)}"
        if not (math.isfinite(scale) and bool(torch.isfinite(shift).all())):
            top = max(m.top for m in moments)
            raise ValueError(
                f"cannot normalise {what}: their pooled mean or variance overflows float64 "
                f"(scale={scale!r}, largest magnitude {top:.3g}); rescale the data"
            )
        if not scale > 0:
            raise ValueError(
                f"cannot normalise {what}: all samples are identical (zero variance); pass "
                "normalize=False"
            )
        norm = cls(shift, scale)
        if dtype is not None:
            for m, name in zip(moments, names, strict=True):
                norm._check_resolution(m, name, dtype)
        return norm

    def _levels(self, m: Moments, dtype: torch.dtype) -> float:
        """Distinct values of ``dtype`` per standard deviation of an end of moments ``m``,
        the fewer of those in the caller's and the normalised coordinates."""
        spread = m.spread
        if spread == 0:
            return math.inf  # a point mass: nothing to resolve
        shifted = float(torch.maximum(m.high - self.shift, self.shift - m.low).max())
        return spread / (torch.finfo(dtype).eps * max(m.top, shifted))

    def _check_resolution(self, m: Moments, name: str, dtype: torch.dtype) -> None:
        """Refuse ends ``dtype`` cannot hold: squares overflow, or fewer than
        ``_MIN_LEVELS`` values per standard deviation."""
        top = m.top
        fix = (
            "fit with dtype=torch.float64"
            if dtype != torch.float64 and self._fits(m, torch.float64)
            else "no floating dtype resolves it: rescale the data so that both ends have "
            "comparable spreads and offsets (e.g. standardise each end yourself)"
        )
        if top > math.sqrt(torch.finfo(dtype).max):
            raise ValueError(
                f"{name} has values up to {top:.3g}, whose squares overflow {dtype} (largest "
                f"{torch.finfo(dtype).max:.3g}): {fix}"
            )
        levels = self._levels(m, dtype)
        if levels < _MIN_LEVELS:
            raise ValueError(
                f"{name} cannot be resolved in {dtype} in the normalisation shared by both "
                f"ends (shift up to {float(self.shift.abs().max()):.3g}, scale "
                f"{self.scale:.3g}): {dtype} keeps only {levels:.3g} distinct values per "
                f"standard deviation of {name} (needs >= {_MIN_LEVELS}), so its samples "
                f"would collapse to a few points; {fix}"
            )

    def _fits(self, m: Moments, dtype: torch.dtype) -> bool:
        return m.top <= math.sqrt(torch.finfo(dtype).max) and self._levels(m, dtype) >= _MIN_LEVELS

    def encode(self, x: Tensor) -> Tensor:
        """Caller's coordinates to normalised ones, ``(x - shift) / scale``.

        Args:
            x: points in the caller's coordinates, shape ``(n, *shape)``; the result keeps their
                dtype.

        Example:
            >>> import torch
            >>> norm = Normalization(torch.tensor([1.0, -1.0]), 0.5)
            >>> norm.encode(torch.tensor([[1.0, 0.0]]))
            tensor([[0., 2.]])
        """
        return (x - self.shift.to(x)) / self.scale

    def decode(self, z: Tensor) -> Tensor:
        """Normalised coordinates back to the caller's, ``z * scale + shift``.

        Args:
            z: points in normalised coordinates, shape ``(n, *shape)``; the result keeps their
                dtype.

        Example:
            >>> import torch
            >>> norm = Normalization(torch.tensor([1.0, -1.0]), 0.5)
            >>> norm.decode(torch.tensor([[0.0, 2.0]]))
            tensor([[1., 0.]])
        """
        return z * self.scale + self.shift.to(z)
