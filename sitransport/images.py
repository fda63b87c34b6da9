r"""Image data: uniform dequantisation, loaders for standard files, bits per dimension.

Pixels are integers ``k`` in ``{0, ..., L - 1}`` (``L = levels``, 256 for 8-bit images).
A continuous density is fitted to the *dequantised* values

.. math::

    x = (k + u) / L \in [0, 1)^d, \qquad u \sim \mathcal{U}[0, 1)^d,

drawn afresh for every batch, so the grid spacing (``bin_width``) is ``1 / L`` and the
continuous negative log-likelihood converts to bits per dimension as in
:func:`sitransport.metrics.bits_per_dim` (an upper bound of the discrete code length;
Theis et al., arXiv:1511.01844). :func:`sitransport.fit` takes an :class:`ImageData` (from
any loader here) directly: it dequantises every batch afresh and trains in its normalised
coordinates (pooled per-pixel mean of both ends and one scalar scale, from 2,048 draws of
each); ``log_prob`` and :func:`bpd` are in the caller's ``[0, 1]`` coordinates.

Loaders read from a folder the user gives (nothing is downloaded): CIFAR-10's python pickle
batches (read with an unpickler that only rebuilds numpy arrays, so no code runs),
ImageNet-32's ``.npz`` batches, a folder of image files (Pillow, optional), and
scikit-learn's bundled 8x8 digits (scikit-learn optional).
"""

from __future__ import annotations

import io
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sitransport._unpickle import restricted_load
from sitransport._validation import as_tensor, check_pixels, check_positive_int
from sitransport.ends.dequantized import DequantizedImages, dequantize, to_pixels
from sitransport.metrics import bits_per_dim

if TYPE_CHECKING:
    from sitransport.flow import TransportFlow

__all__ = [
    "BitsPerDim",
    "DequantizedImages",
    "ImageData",
    "bpd",
    "dequantize",
    "load_cifar10",
    "load_digits",
    "load_image_folder",
    "load_imagenet32",
    "save_grid",
    "to_pixels",
]


@dataclass(frozen=True)
class ImageData:
    """Integer images: ``pixels`` of shape ``(n, c, h, w)`` (uint8 numpy) with values in
    ``{0, ..., levels - 1}``, and integer ``labels`` of shape ``(n,)`` (or ``None``).

    Args:
        pixels: integer images, uint8 numpy of shape ``(n, c, h, w)``, values in
            ``{0, ..., levels - 1}``.
        labels: integer class labels of shape ``(n,)``, or ``None`` for unlabelled images.
        levels: number of grey levels per channel, ``L`` (256 for 8-bit images). Default ``256``.

    Example:
        >>> import numpy as np
        >>> from sitransport.images import ImageData
        >>> pixels = np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2)  # 3-bit images
        >>> data = ImageData(pixels, np.array([0, 1]), levels=8)
        >>> len(data), data.shape, data.bin_width
        (2, (1, 2, 2), 0.125)
    """

    pixels: np.ndarray
    labels: np.ndarray | None
    levels: int = 256

    def __post_init__(self) -> None:
        check_pixels(self.pixels, "pixels", self.levels)

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-image shape ``(c, h, w)``."""
        return tuple(int(s) for s in self.pixels.shape[1:])

    @property
    def bin_width(self) -> float:
        """Grid spacing ``1 / levels`` of the dequantised values in ``[0, 1]``."""
        return 1.0 / self.levels

    def dequantized(self, *, seed: int = 0) -> np.ndarray:
        """One dequantised draw of every image, float64 in ``[0, 1)`` (see :func:`dequantize`).

        Args:
            seed: seed of the uniform dequantisation noise (the same seed, the same draw). Default
                ``0``.

        Example:
            >>> data = ImageData(np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2), None, 8)
            >>> x = data.dequantized(seed=0)
            >>> x.shape, x.dtype, bool((np.floor(x * 8) == data.pixels).all())
            ((2, 1, 2, 2), dtype('float64'), True)
        """
        return dequantize(self.pixels, levels=self.levels, seed=seed)


def _find(root: Path, name: str, what: str, hint: str, subfolder: str | None = None) -> Path:
    candidates = [root / name] + ([root / subfolder / name] if subfolder else [])
    for path in candidates:
        if path.is_file():
            return path
    where = " or ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"{what} file {name!r} not found: expected it at {where}. {hint}")


def _check_root(root: Any) -> Path:
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a path (str or pathlib.Path), got {type(root).__name__}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"root folder {str(path)!r} does not exist or is not a folder")
    return path


# Globals a CIFAR-10 batch (a dict of numpy arrays and lists) may name.
_ARRAY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


_CIFAR_HINT = (
    "Download 'CIFAR-10 python version' from https://www.cs.toronto.edu/~kriz/cifar.html and "
    "extract it into root."
)


def load_cifar10(root: str | Path, split: str = "train") -> ImageData:
    """CIFAR-10 from its python pickle batches (``data_batch_1`` .. ``data_batch_5``,
    ``test_batch``) in ``root`` or ``root/cifar-10-batches-py``.

    Each batch is a dict with ``b"data"`` (``(m, 3072)`` uint8, channels first) and
    ``b"labels"``. Only arrays are unpickled: a file asking for anything else is refused.

    Args:
        root: folder holding the batches.
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).

    Returns:
        :class:`ImageData` with pixels ``(n, 3, 32, 32)``, 256 levels.

    Raises:
        FileNotFoundError: a batch is missing (the message names it and where it was expected).
        ValueError: unknown split, or a file that is not a CIFAR batch.

    Example:
        A stand-in folder with the files' layout (two images per batch):

        >>> import pickle, tempfile
        >>> from pathlib import Path
        >>> def batch(m):
        ...     return {b"data": np.zeros((m, 3072), np.uint8), b"labels": list(range(m))}
        >>> with tempfile.TemporaryDirectory() as root:
        ...     for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        ...         _ = (Path(root) / name).write_bytes(pickle.dumps(batch(2)))
        ...     train, test = load_cifar10(root), load_cifar10(root, "test")
        >>> train.pixels.shape, test.pixels.shape, train.levels
        ((10, 3, 32, 32), (2, 3, 32, 32), 256)
    """
    root = _check_root(root)
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    if split not in names:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data, labels = [], []
    for name in names[split]:
        path = _find(root, name, "CIFAR-10", _CIFAR_HINT, "cifar-10-batches-py")
        try:
            with open(path, "rb") as f:
                batch = restricted_load(
                    f, _ARRAY_GLOBALS, what="dicts, lists and numpy arrays", encoding="bytes"
                )
            x, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, KeyError, TypeError, EOFError) as err:
            raise ValueError(f"{str(path)!r} is not a CIFAR-10 python batch: {err}") from None
        data.append(_rgb32_batch(path, x, y, "b'data'"))
        labels.append(y)
    return ImageData(np.concatenate(data), np.concatenate(labels), 256)


def _rgb32_batch(path: Path, x: np.ndarray, y: np.ndarray, key: str) -> np.ndarray:
    """A batch of 32x32 RGB images stored as rows of 3072 uint8 (channels first), checked
    against its labels and reshaped to ``(m, 3, 32, 32)``."""
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise ValueError(
            f"{str(path)!r}: expected {key} of shape (m, 3072) uint8 and m labels, got "
            f"{x.shape} {x.dtype} and {len(y)} labels"
        )
    return x.reshape(-1, 3, 32, 32)


def load_imagenet32(root: str | Path, split: str = "train", *, batches: int = 10) -> ImageData:
    """Downsampled ImageNet 32x32 (Chrabaszcz et al. 2017, arXiv:1707.08819) from its
    ``.npz`` batches: ``train_data_batch_1.npz`` .. ``train_data_batch_{batches}.npz`` or
    ``val_data.npz``, each with ``"data"`` (``(m, 3072)`` uint8, channels first) and
    ``"labels"`` (1-based; returned 0-based). Read with ``allow_pickle=False``.

    Args:
        root: folder holding the files.
        split: ``"train"`` or ``"val"``.
        batches: number of training batches to read (10 in the full set; fewer for a subset).
            Default ``10``.

    Returns:
        :class:`ImageData` with pixels ``(n, 3, 32, 32)``, 256 levels.

    Raises:
        FileNotFoundError: a batch is missing (the message names it and where it was expected).
        ValueError: unknown split or malformed file.

    Example:
        A stand-in folder with the files' layout (three images, labels 1-based):

        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as root:
        ...     data = np.zeros((3, 3072), np.uint8)
        ...     np.savez(Path(root) / "train_data_batch_1.npz", data=data, labels=[1, 2, 1000])
        ...     subset = load_imagenet32(root, batches=1)
        >>> subset.pixels.shape, subset.labels.tolist()
        ((3, 3, 32, 32), [0, 1, 999])
    """
    root = _check_root(root)
    batches = check_positive_int(batches, "batches")
    if split == "train":
        names = [f"train_data_batch_{i}.npz" for i in range(1, batches + 1)]
    elif split == "val":
        names = ["val_data.npz"]
    else:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    hint = "Download 'Imagenet32_train_npz' / 'Imagenet32_val_npz' from https://image-net.org."
    data, labels = [], []
    for name in names:
        path = _find(root, name, "ImageNet-32", hint)
        try:
            with np.load(path, allow_pickle=False) as f:
                x, y = np.asarray(f["data"]), np.asarray(f["labels"], dtype=np.int64)
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{str(path)!r} is not an ImageNet-32 npz batch: {err}") from None
        data.append(_rgb32_batch(path, x, y, "'data'"))
        labels.append(y - 1)
    return ImageData(np.concatenate(data), np.concatenate(labels), 256)


_IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".webp")


def load_image_folder(
    root: str | Path, *, size: int | None = None, mode: str = "RGB", limit: int | None = None
) -> ImageData:
    """Every image file under ``root`` (recursively, sorted by path) as 8-bit images.

    With ``size`` each image is centre-cropped to a square and resized to ``size x size``
    (bicubic), as for 128x128 Oxford flowers; without it all images must share one size.
    Needs Pillow (``pip install pillow`` or the ``images`` extra).

    Args:
        root: the folder.
        size: output side length, or ``None`` to keep the files' size.
        mode: Pillow mode, ``"RGB"`` (3 channels) or ``"L"`` (grey, 1 channel).
        limit: read at most this many files. Default ``None``.

    Returns:
        :class:`ImageData` with pixels ``(n, c, size, size)``, 256 levels, no labels.

    Raises:
        ImportError: Pillow is not installed.
        FileNotFoundError: no image files under ``root``.
        ValueError: mixed sizes without ``size``, bad ``mode``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as root:
        ...     for i, (w, h) in enumerate([(40, 30), (64, 64)]):
        ...         Image.new("RGB", (w, h), (255, 0, 0)).save(Path(root) / f"{i}.png")
        ...     flowers = load_image_folder(root, size=16)
        >>> flowers.pixels.shape, flowers.pixels[0, :, 0, 0].tolist()  # red
        ((2, 3, 16, 16), [255, 0, 0])
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "load_image_folder needs Pillow: pip install pillow (or sitransport[images])"
        ) from None
    root = _check_root(root)
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if size is not None:
        size = check_positive_int(size, "size")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if limit is not None:
        files = files[: check_positive_int(limit, "limit")]
    if not files:
        raise FileNotFoundError(
            f"no image files ({', '.join(_IMAGE_SUFFIXES)}) found under {str(root)!r}"
        )
    out: list[np.ndarray] = []
    for path in files:
        with Image.open(path) as opened:
            im = opened.convert(mode)
            if size is not None:
                w, h = im.size
                s = min(w, h)
                box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
                im = im.resize((size, size), Image.Resampling.BICUBIC, box=box)
            arr = np.asarray(im, dtype=np.uint8)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if out and arr.shape != out[0].shape:
            raise ValueError(
                f"images differ in size ({str(files[0])!r}: {out[0].shape[1:]}, "
                f"{str(path)!r}: {arr.shape[1:]}); pass size= to resize them"
            )
        out.append(arr)
    return ImageData(np.stack(out), None, 256)


def load_digits() -> ImageData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download): pixels
    ``(1797, 1, 8, 8)`` with the original 17 grey levels ``0..16``, and labels.

    Raises:
        ImportError: scikit-learn is not installed.

    Example:
        >>> digits = load_digits()
        >>> digits.pixels.shape, digits.levels
        ((1797, 1, 8, 8), 17)
    """
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise ImportError(
            "load_digits needs scikit-learn (it ships the digits): pip install scikit-learn"
        ) from None
    bunch = sk_digits()
    pixels = np.rint(bunch.images).astype(np.uint8)[:, None]
    return ImageData(pixels, np.asarray(bunch.target, dtype=np.int64), 17)


# --------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class BitsPerDim:
    """Bits per dimension of a flow on dequantised images: the mean over images, its
    standard error (spread of the per-image values / sqrt(n): sampling and, for Hutchinson,
    probe noise together), the mean NLL in nats per image, ``n`` and the ODE's NFE.

    Attributes:
        bpd: mean bits per dimension over the images.
        stderr: its standard error: spread of the per-image values over ``sqrt(n)`` (``nan`` for one
            image).
        nll: mean negative log-likelihood of the dequantised images, nats per image (density of the
            ``[0, 1]``-scaled values).
        n: number of images evaluated.
        nfe: velocity evaluations of the augmented ODE per batch, averaged over batches.

    Example:
        >>> import sitransport as st
        >>> import numpy as np
        >>> from sitransport.images import ImageData, bpd
        >>> flow = st.TransportFlow(lambda z, t: 0 * z, "linear", base="gaussian", shape=(1, 2, 2))
        >>> result = bpd(flow, ImageData(np.zeros((3, 1, 2, 2), np.uint8), None, 2))
        >>> result.n, result.stderr > 0  # spread of the dequantisation noise
        (3, True)
        >>> bool(np.isclose(result.bpd, result.nll / (4 * np.log(2)) + 1))  # bin width 1/2
        True
    """

    bpd: float
    stderr: float
    nll: float
    n: int
    nfe: float


def bpd(
    flow: TransportFlow,
    data: ImageData | Any,
    *,
    bin_width: float | None = None,
    method: str = "auto",
    probes: int = 4,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    ode: Any = None,
    condition: Any = None,
) -> BitsPerDim:
    r"""Bits per dimension of ``flow`` on dequantised data, with a standard error.

    .. math::

        \mathrm{bpd} = \frac{-\log\hat\rho_1(x) - d\log(\mathrm{bin\_width})}{d\ln 2},

    averaged over images (:func:`sitransport.metrics.bits_per_dim`). ``log_prob`` uses the
    exact divergence for ``d <= 16`` and Hutchinson's unbiased estimator above
    (``method="auto"``), so the mean is unbiased and the standard error covers the probes.

    Args:
        flow: a fitted :class:`~sitransport.TransportFlow` with a base density (e.g.
            ``rho0="gaussian"``).
        data: :class:`ImageData` (dequantised here with ``seed``; ``bin_width = 1/levels``)
            or already dequantised float images ``(n, c, h, w)`` in the flow's coordinates
            with their ``bin_width``.
        bin_width: grid spacing, required for float input. Default ``None``.
        method: divergence of the log-density ODE: ``"exact"`` (autograd trace),
            ``"hutchinson"`` (unbiased, ``probes`` Rademacher probes) or ``"auto"`` (exact for
            ``d <= 16``); see :meth:`~sitransport.flow.TransportFlow.log_prob_estimate`.
        probes: Hutchinson probes per image (default 4); their spread gives the standard
            error.
        seed: seed of the dequantisation noise and the probes. Default ``0``.
        batch_size: images integrated at once. Default ``256``.
        progress: show a progress bar over batches. Default ``True``.
        ode: :class:`~sitransport.ode.ODEOptions` (default: the flow's).
        condition: a conditional flow's condition (``fit(..., condition=)``): one label or
            feature vector for all images, or one row per image (e.g. ``data.labels``), so
            the bits/dim are those of ``rho1(x | c)``; ``None`` (default) for an
            unconditional flow. An :class:`ImageData`'s labels are not used unless passed.

    Returns:
        :class:`BitsPerDim`.

    Raises:
        TypeError, ValueError: bad ``data``, ``bin_width`` or options of the log-density
            (:meth:`~sitransport.flow.TransportFlow.log_prob_estimate`; one probe is allowed),
            or a missing, unexpected or unknown ``condition``.
        NonFiniteOutputError: the log-densities are nan or inf; the message names ``bpd``
            and what to try.

    Example:
        >>> import sitransport as st
        >>> flow = st.TransportFlow(lambda z, t: 0 * z, "linear", base="gaussian",
        ...                         shape=(1, 2, 2))
        >>> data = ImageData(np.zeros((3, 1, 2, 2), dtype=np.uint8), None, 2)
        >>> round(bpd(flow, data).bpd, 2) > 1.0  # N(0, I) is worse than uniform on [0, 1]
        True
    """
    if isinstance(data, ImageData):
        if bin_width is not None:
            raise ValueError("bin_width is set by ImageData (1 / levels); do not pass it")
        x = data.dequantized(seed=seed)
        bin_width = data.bin_width
    else:
        if bin_width is None:
            raise ValueError("bin_width is required for float images (1 / levels for [0, 1])")
        x = data
    xt, _ = as_tensor(x, "data", ndim=1 + len(flow.shape), dim=tuple(flow.shape))
    d = math.prod(flow.shape)
    est = flow._log_prob(  # the per-image spread is the error bar: one probe will do
        xt,
        "bpd",
        method=method,
        probes=probes,
        seed=seed,
        ode=ode,
        batch_size=batch_size,
        progress=progress,
        condition=condition,
    )
    per_image = torch.as_tensor(est.log_prob, dtype=torch.float64).cpu().numpy()
    per_bpd = np.array([bits_per_dim(-float(v), d, bin_width=bin_width) for v in per_image])
    n = len(per_bpd)
    stderr = float(per_bpd.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return BitsPerDim(float(per_bpd.mean()), stderr, float(-per_image.mean()), n, float(est.nfe))


def save_grid(
    images: Any,
    path: str | Path,
    *,
    nrow: int | None = None,
    levels: int = 256,
    scale: int = 1,
) -> Path:
    """Write images ``(n, c, h, w)`` with values in ``[0, 1]``, or integer pixels of
    ``levels`` grey levels, as one PNG grid (matplotlib's writer; no Pillow needed), each
    pixel drawn as a ``scale x scale`` block. Returns the path.

    Args:
        images: images ``(n, c, h, w)`` with ``c`` 1 or 3: floats in ``[0, 1]`` (numpy, torch or
            xarray; clipped) or integer numpy pixels.
        path: PNG file to write; missing folders are created.
        nrow: images per grid row; ``None``: ``ceil(sqrt(n))``. Default ``None``.
        levels: grey levels of integer pixels (ignored for floats). Default ``256``.
        scale: each pixel becomes a ``scale x scale`` block, an integer ``>= 1``. Default ``1``.

    Example:
        >>> import tempfile, os
        >>> p = save_grid(np.zeros((4, 1, 8, 8)), os.path.join(tempfile.mkdtemp(), "g.png"))
        >>> p.name
        'g.png'
    """
    import matplotlib.image

    if isinstance(images, np.ndarray) and images.dtype.kind in "ui":
        levels = check_positive_int(levels, "levels", minimum=2)
        check_pixels(images, "images", levels)
        x = images.astype(np.float64) / (levels - 1)
    else:
        t, _ = as_tensor(images, "images", ndim=4)
        x = t.detach().cpu().to(torch.float64).clamp(0, 1).numpy()
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, 1 or 3, h, w), got {x.shape}")
    n, c, h, w = x.shape
    nrow = check_positive_int(nrow, "nrow") if nrow is not None else math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.ones((ncol * (h + 2), nrow * (w + 2), c))
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[r * (h + 2) + 1 : r * (h + 2) + 1 + h, q * (w + 2) + 1 : q * (w + 2) + 1 + w] = x[
            i
        ].transpose(1, 2, 0)
    scale = check_positive_int(scale, "scale")
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, grid[..., 0] if c == 1 else grid, cmap="gray", format="png")
    path.write_bytes(buf.getvalue())
    return path
