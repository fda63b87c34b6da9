"""Dequantised images as an end of a flow: :func:`dequantize` (pixels ``k`` to
``(k + u) / L``), :func:`to_pixels` (back) and :class:`DequantizedImages`, the
:class:`~sitransport.ends.densities.Density` of a set of pixel images dequantised afresh at
every draw. The loaders and bits per dimension are in :mod:`sitransport.images`, which
re-exports these."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sitransport._validation import as_tensor, check_pixels, check_positive_int, torch_generator
from sitransport.ends.densities import Density

__all__ = ["DequantizedImages", "dequantize", "to_pixels"]


def dequantize(pixels: Any, *, levels: int = 256, seed: int | torch.Generator | None = 0) -> Any:
    r"""Uniform dequantisation :math:`x = (k + u) / L`, ``u ~ U[0, 1)``, into ``[0, 1)``.

    Args:
        pixels: integer images (numpy or torch), values in ``{0, ..., levels - 1}``.
        levels: number of grid levels ``L`` (256 for 8-bit images). Default ``256``.
        seed: seed (an integer in ``[0, 2**63 - 1]``, or ``None`` for fresh entropy) or
            ``torch.Generator`` of the noise. Default ``0``.

    Returns:
        float64 numpy for numpy input; for a torch tensor, a float32 tensor on its device.

    Raises:
        TypeError: not an integer array, or a ``seed`` of another type.
        ValueError: values outside ``{0, ..., levels - 1}``, or a ``seed`` out of range.

    Example:
        >>> x = dequantize(np.array([[0, 255]], dtype=np.uint8), seed=0)
        >>> bool((x[0, 0] < 1 / 256) and (x[0, 1] >= 255 / 256))
        True
    """
    levels = check_positive_int(levels, "levels", minimum=2)
    check_pixels(pixels, "pixels", levels)
    gen = torch_generator(seed)
    k = torch.as_tensor(np.asarray(pixels)) if isinstance(pixels, np.ndarray) else pixels
    u = torch.rand(k.shape, generator=gen, dtype=torch.float64)
    x = (k.cpu().to(torch.float64) + u) / levels
    if isinstance(pixels, np.ndarray):
        return x.numpy()
    return x.to(device=pixels.device, dtype=torch.float32)


def to_pixels(x: Any, *, levels: int = 256) -> np.ndarray:
    """Quantise values in ``[0, 1]`` to integer pixels ``floor(x L)`` clipped to the grid
    (the inverse of :func:`dequantize`), as uint8 numpy (for ``levels <= 256``).

    Args:
        x: values in ``[0, 1]`` of 1 to 4 dimensions, e.g. images ``(n, c, h, w)`` (numpy, torch or
            xarray).
        levels: number of grid levels ``L >= 2``. Default ``256``.

    Example:
        >>> to_pixels(np.array([0.0, 0.5, 1.0])).tolist()
        [0, 128, 255]
    """
    levels = check_positive_int(levels, "levels", minimum=2)
    t, _ = as_tensor(x, "x", ndim=(1, 2, 3, 4))
    k = torch.floor(t.detach().cpu().to(torch.float64) * levels).clamp(0, levels - 1)
    return k.numpy().astype(np.uint8 if levels <= 256 else np.int64)


class DequantizedImages(Density):
    """The empirical measure of integer images, dequantised afresh at every draw, in ``[0, 1)``.

    Args:
        pixels: integer images ``(n, c, h, w)``.
        levels: grid levels. Default ``256``.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from sitransport.images import DequantizedImages
        >>> images = DequantizedImages(np.full((5, 1, 2, 2), 3, dtype=np.uint8), levels=4)
        >>> x = images.sample(8, torch.Generator().manual_seed(0))
        >>> x.shape, bool(((x >= 0.75) & (x < 1.0)).all())  # (3 + u) / 4
        (torch.Size([8, 1, 2, 2]), True)
    """

    def __init__(self, pixels: Any, levels: int = 256) -> None:
        self.levels = check_positive_int(levels, "levels", minimum=2)
        check_pixels(pixels, "pixels", self.levels)
        self.pixels = torch.as_tensor(np.asarray(pixels) if not torch.is_tensor(pixels) else pixels)
        self.shape = tuple(int(s) for s in self.pixels.shape[1:])

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def take(self, idx: Tensor, generator: torch.Generator) -> Tensor:
        """Dequantised images ``idx`` (float64), noise from ``generator``.

        Args:
            idx: integer indices of the images, shape ``(m,)``.
            generator: torch generator of the uniform dequantisation noise.

        Example:
            >>> pixels = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1)
            >>> images = DequantizedImages(pixels, levels=4)
            >>> x = images.take(torch.tensor([3, 0]), torch.Generator().manual_seed(0))
            >>> torch.floor(x * 4).flatten().tolist()  # the pixels of images 3 and 0
            [3.0, 0.0]
        """
        k = self.pixels[idx].to(torch.float64)
        return (k + torch.rand(k.shape, generator=generator, dtype=torch.float64)) / self.levels

    def subset(self, idx: Tensor) -> DequantizedImages:
        """The images ``idx`` as a new set (e.g. a training split).

        Args:
            idx: integer indices of the images to keep, shape ``(m,)``.

        Example:
            >>> images = DequantizedImages(np.zeros((10, 1, 2, 2), dtype=np.uint8))
            >>> len(images.subset(torch.arange(8)))
            8
        """
        return DequantizedImages(self.pixels[idx], self.levels)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` images drawn with replacement, each dequantised afresh (float64).

        Args:
            n: number of images to draw, an integer ``>= 1``.
            generator: torch generator of the indices and the dequantisation noise.

        Example:
            >>> images = DequantizedImages(np.zeros((3, 1, 2, 2), dtype=np.uint8))
            >>> images.sample(5, torch.Generator().manual_seed(0)).shape
            torch.Size([5, 1, 2, 2])
        """
        idx = torch.randint(0, len(self), (n,), generator=generator)
        return self.take(idx, generator)

    def spec(self) -> dict[str, Any]:
        """A plain-data description (stored with flows; the pixels are not).

        Example:
            >>> DequantizedImages(np.zeros((3, 1, 2, 2), dtype=np.uint8)).spec()
            {'kind': 'images', 'shape': [1, 2, 2], 'n': 3, 'levels': 256}
        """
        return {"kind": "images", "shape": list(self.shape), "n": len(self), "levels": self.levels}


# ------------------------------------------------------------------------------ loaders
