"""The change of coordinates ``z = (x - m) / s`` (one shift, one scalar scale shared by both
ends) that ``fit`` builds before training, and its check that the network's dtype resolves
each end in it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Normalization"]


#: The fewest distinct values per standard deviation of each end that the network's dtype
#: must resolve, in the caller's and the normalised coordinates (``fit`` refuses fewer).
_MIN_LEVELS = 100


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
        *samples: Tensor,
        names: tuple[str, ...] | None = None,
        dtype: torch.dtype | None = None,
    ) -> Normalization:
        """Pooled mean and root-mean per-coordinate variance of all ``samples``.

        With ``dtype`` (the network's), each sample set must also be resolvable in it: its
        values' squares must not overflow, and it must keep at least 100 distinct values per
        standard deviation both as given and in normalised coordinates (two ends far apart
        relative to their spreads, or of very different spreads, collapse to a few points).

        Args:
            *samples: sample sets, shape ``(n_i, ...)``, one per end.
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
        """
        names = names or tuple(f"samples[{i}]" for i in range(len(samples)))
        pooled = torch.cat([s.to(torch.float64) for s in samples])
        shift = pooled.mean(0)
        scale = float(pooled.var(0).mean().sqrt())
        what = f"the samples of {' and '.join(names)}"
        if not (math.isfinite(scale) and bool(torch.isfinite(shift).all())):
            top = float(pooled.abs().max())
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
            for s, name in zip(samples, names, strict=True):
                norm._check_resolution(s.to(torch.float64), name, dtype)
        return norm

    def _levels(self, x: Tensor, dtype: torch.dtype) -> float:
        """Distinct values of ``dtype`` per standard deviation of ``x``, the fewer of those
        in the caller's and the normalised coordinates."""
        spread = float(x.var(0).mean().sqrt()) if x.shape[0] > 1 else 0.0
        if spread == 0:
            return math.inf  # a point mass: nothing to resolve
        top = max(float(x.abs().max()), float((x - self.shift).abs().max()))
        return spread / (torch.finfo(dtype).eps * top)

    def _check_resolution(self, x: Tensor, name: str, dtype: torch.dtype) -> None:
        """Refuse sample sets ``dtype`` cannot hold: squares overflow, or fewer than
        ``_MIN_LEVELS`` values per standard deviation."""
        top = float(x.abs().max())
        fix = (
            "fit with dtype=torch.float64"
            if dtype != torch.float64 and self._fits(x, torch.float64)
            else "no floating dtype resolves it: rescale the data so that both ends have "
            "comparable spreads and offsets (e.g. standardise each end yourself)"
        )
        if top > math.sqrt(torch.finfo(dtype).max):
            raise ValueError(
                f"{name} has values up to {top:.3g}, whose squares overflow {dtype} (largest "
                f"{torch.finfo(dtype).max:.3g}): {fix}"
            )
        levels = self._levels(x, dtype)
        if levels < _MIN_LEVELS:
            raise ValueError(
                f"{name} cannot be resolved in {dtype} in the normalisation shared by both "
                f"ends (shift up to {float(self.shift.abs().max()):.3g}, scale "
                f"{self.scale:.3g}): {dtype} keeps only {levels:.3g} distinct values per "
                f"standard deviation of {name} (needs >= {_MIN_LEVELS}), so its samples "
                f"would collapse to a few points; {fix}"
            )

    def _fits(self, x: Tensor, dtype: torch.dtype) -> bool:
        top = float(x.abs().max())
        return top <= math.sqrt(torch.finfo(dtype).max) and self._levels(x, dtype) >= _MIN_LEVELS

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
