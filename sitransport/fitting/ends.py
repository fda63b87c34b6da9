"""The two ends of :func:`~sitransport.fit`: resolved from the caller's arguments (samples,
images, distributions, datasets), their effective ranks compared, split into training and
held-out parts, and the normalisation computed from the training parts."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from sitransport._validation import check_choice, check_pixels
from sitransport.distributed import ShardedDataset
from sitransport.ends.densities import Density, EmpiricalDensity, StandardNormal, as_density
from sitransport.ends.normalization import Moments, Normalization
from sitransport.images import DequantizedImages, ImageData
from sitransport.interpolants import Interpolant, Linear, Stochastic, Trig

# The other functions are fit's own steps, imported by the package, not public API.
__all__ = ["effective_rank"]

# held-out pairs of the validation loss: at most this many (of each end) are kept
MAX_HELD_OUT = 4096


def _end(rho: Any, name: str, shape: tuple[int, ...] | None = None) -> Density:
    """An end of ``fit``: integer images dequantised per draw, anything else as_density."""
    if isinstance(rho, ImageData):
        return DequantizedImages(rho.pixels, rho.levels)
    if isinstance(rho, Tensor):  # data is data: no gradient flows into the caller's tensor
        rho = rho.detach()
    return as_density(rho, name, shape=shape)


def resolve_ends(
    rho0: Any, rho1: Any, seed: int, num_workers: int
) -> tuple[Density, Density | None, ShardedDataset | None]:
    """``(rho0, rho1, source)`` of ``fit``: both ends as densities, except a torch ``Dataset``
    (or a ``DataLoader`` over one) at ``rho1``, which is read through ``source`` (``rho1`` is
    then ``None``); the two are checked to have the same sample shape.

    Args:
        rho0: ``fit``'s source end, as the caller gave it.
        rho1: ``fit``'s target end, as the caller gave it.
        seed: the run's seed (a dataset's shuffling).
        num_workers: ``fit``'s ``num_workers=``.
    """
    source = None
    if isinstance(rho1, torch.utils.data.DataLoader):  # its dataset and workers; fit batches
        rho1, num_workers = rho1.dataset, max(num_workers, rho1.num_workers)
    if isinstance(rho0, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        raise TypeError("rho0 cannot be a torch Dataset; pass it as rho1 (data at t = 1)")
    if not isinstance(rho1, torch.utils.data.Dataset) and num_workers:
        raise ValueError(
            f"num_workers={num_workers} does not apply: rho1 is not a torch Dataset or "
            "DataLoader, so no DataLoader workers are started (leave num_workers=0)"
        )
    if isinstance(rho1, torch.utils.data.Dataset):
        source = ShardedDataset(rho1, seed=seed, num_workers=num_workers)
        d1 = None
        d0 = _end(rho0, "rho0", source.shape)
        shape1 = source.shape
    elif isinstance(rho1, str):  # "gaussian" takes its dimension from the other end
        d0 = _end(rho0, "rho0")
        d1 = _end(rho1, "rho1", d0.shape)
        shape1 = d1.shape
    else:
        d1 = _end(rho1, "rho1")
        d0 = _end(rho0, "rho0", d1.shape)
        shape1 = d1.shape
    if d0.shape != shape1:
        raise ValueError(
            f"rho0 and rho1 must have the same dimension, got samples of shape {d0.shape} "
            f"and {shape1}"
        )
    if len(d0.shape) not in (1, 3):
        raise ValueError(
            f"fit takes vectors (n, d) or images (n, c, h, w), got sample shape {d0.shape}"
        )
    return d0, d1, source


def check_remedy(d0: Density, d1: Density | None, remedy: Any) -> None:
    """Refuse a ``remedy`` other than ``None`` / ``"auto"``, or one for images or a dataset
    (their covariance ranks are not computed), before any work is done.

    Raises:
        ValueError: as :func:`check_ranks`.
    """
    if remedy is None:
        return
    check_choice(remedy, "remedy", ("auto",))
    if len(d0.shape) == 3 or d1 is None:  # images, datasets: no d x d covariance computed
        raise ValueError(
            f"remedy={remedy!r} does not apply to images or datasets: it compares the "
            "covariance ranks of vector ends; pass a Stochastic interpolant instead"
        )


def check_ranks(
    d0: Density, d1: Density | None, interp: Interpolant, remedy: Any, scale: float = 1.0
) -> tuple[Interpolant, tuple[int, int] | None, bool]:
    r"""``(interpolant to train, (rank0, rank1) or None for images, sample by the SDE)``,
    after comparing the effective ranks of two vector ends: with ``rho0`` of lower rank, a
    warning, or with ``remedy="auto"`` a stochastic interpolant sampled by the SDE.

    The remedy's noise :math:`\gamma(t) = a \sin^2(\pi t)` has the amplitude ``a = scale``,
    the spread of the data (the normalisation's scale): noise that fills the missing
    directions must be of the data's size, whatever its units.

    Args:
        d0: the source end.
        d1: the target end (``None``: a dataset).
        interp: the interpolant the caller chose.
        remedy: ``fit``'s ``remedy=``.
        scale: the data's scale (``Normalization.scale``; 1 with ``normalize=False``).

    Raises:
        ValueError: ``remedy`` is not ``None`` or ``"auto"``, or is set for images or a
            dataset, whose ranks are not computed.
    """
    check_remedy(d0, d1, remedy)
    if len(d0.shape) == 3 or d1 is None:
        return interp, None, False
    rank0, rank1 = _rank_of(d0), _rank_of(d1)
    if rank0 >= rank1:
        return interp, (rank0, rank1), False
    if remedy == "auto" and not interp.stochastic:
        base_name = interp.spec().get("name") if isinstance(interp, (Linear, Trig)) else None
        interp = Stochastic(base_name or "linear", "sin2", float(scale))
        return interp, (rank0, rank1), True
    warnings.warn(
        f"rho0 has effective rank {rank0} but rho1 has {rank1}: a deterministic flow "
        "maps rho0's support onto a set of dimension at most "
        f"{rank0} and cannot fill rho1. Remedies: fit(..., remedy='auto') (stochastic "
        "interpolant + SDE sampling), a stochastic interpolant, or a latent flow",
        stacklevel=3,
    )
    return interp, (rank0, rank1), False


def split(end: Any, fraction: float, gen: torch.Generator, name: str) -> tuple[Any, Any]:
    """Hold out ``fraction`` of a finite end: ``(training end, held-out samples or None)``.

    Sample sets, integer images (dequantised with ``gen``) and datasets (items loaded and
    dequantised) are split by one random permutation from ``gen``; at most
    :data:`MAX_HELD_OUT` held-out samples are kept. Other ends (distributions) are returned
    whole, with ``None``.

    Args:
        end: an end of ``fit`` (a density or a :class:`~sitransport.distributed.ShardedDataset`).
        fraction: the fraction held out (``0``: none).
        gen: the generator of the permutation (and of the dequantisation).
        name: the end's name in messages (``"rho0"``, ``"rho1"``).
    """
    train, held, _ = split_rows(end, fraction, gen, name)
    return train, held


def split_rows(
    end: Any, fraction: float, gen: torch.Generator, name: str
) -> tuple[Any, Any, tuple[Tensor, Tensor] | None]:
    """:func:`split`, and the rows of the end that went each way: ``(training end, held-out
    samples, (training rows, held-out rows))`` as index tensors into ``end`` in the order of
    the training end and of the held-out samples (``None`` where nothing was split), so that
    what goes with each row (a condition) can be split the same way."""
    if fraction == 0.0:
        return end, None, None
    if isinstance(end, ShardedDataset):
        perm, n_val = _hold_out(len(end.dataset), fraction, gen, f"items of the {name} dataset")
        held = torch.utils.data.Subset(end.dataset, perm[:n_val].tolist())
        train_set = ShardedDataset(
            torch.utils.data.Subset(end.dataset, perm[n_val:].tolist()),
            levels=end.levels,
            seed=end.seed,
            num_workers=end.num_workers,
        )
        held_source = ShardedDataset(held, levels=end.levels)
        items, picked = _dataset_items(held_source, MAX_HELD_OUT, gen, with_indices=True)
        return train_set, items, (perm[n_val:], perm[:n_val][picked])
    if isinstance(end, DequantizedImages):
        perm, n_val = _hold_out(len(end), fraction, gen, f"images of {name}")
        rows = (perm[n_val:], perm[:n_val][:MAX_HELD_OUT])
        return end.subset(rows[0]), end.take(rows[1], gen), rows
    if isinstance(end, EmpiricalDensity):
        x = end.samples
        perm, n_val = _hold_out(x.shape[0], fraction, gen, f"samples of {name}")
        rows = (perm[n_val:], perm[:n_val][:MAX_HELD_OUT])
        return EmpiricalDensity(x[rows[0]]), x[rows[1]], rows
    return end, None, None


def _hold_out(n: int, fraction: float, gen: torch.Generator, what: str) -> tuple[Tensor, int]:
    """A random permutation of ``range(n)`` (from ``gen``) whose first ``n_val`` entries,
    ``fraction`` of ``n``, are held out; ``(permutation, n_val)``.

    Raises:
        ValueError: fewer than 1 held-out or 2 training items would be left.
    """
    n_val = int(round(fraction * n))
    if n_val < 1 or n - n_val < 2:
        raise ValueError(
            f"validation={fraction} leaves {n - n_val} training and {n_val} held-out {what} "
            f"(n={n}); need at least 2 and 1: use more data or validation=0"
        )
    return torch.randperm(n, generator=gen), n_val


def normalization(
    train0: Any, train1: Any, normalize: bool, dtype: torch.dtype, gen: torch.Generator
) -> Normalization:
    """The coordinates ``(x - m) / s`` of ``fit``, from the training ends (sample sets as
    they are; ``"gaussian"`` by its exact moments, counted as a draw of 20,000 samples, or
    2048 for images; other ends, and images, through such a bounded draw from ``gen``).

    Args:
        train0: the training source end.
        train1: the training target end (a density or a dataset).
        normalize: ``fit``'s ``normalize=`` (``False``: the identity).
        dtype: the network's dtype, in which the coordinates must be finite.
        gen: the generator of the draws.
    """
    if not normalize:
        return Normalization.identity(train0.shape)
    images = len(train0.shape) == 3
    n_stat = 20_000 if not images else 2048  # images: a bounded pool for the statistics
    pool = [
        train.samples
        if isinstance(train, EmpiricalDensity) and not images
        else Moments.standard_normal(train.shape, n_stat)  # no d x n_stat draws held
        if isinstance(train, StandardNormal)
        else train.sample(n_stat, gen)
        if isinstance(train, Density)
        else _dataset_items(train, n_stat, gen)
        for train in (train0, train1)
    ]
    return Normalization.from_samples(*pool, names=("rho0", "rho1"), dtype=dtype)


def validation_pairs(
    train0: Density,
    held0: Tensor | None,
    train1: Any,
    held1: Tensor | None,
    norm: Normalization,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Held-out ``(x0, x1)`` in normalised coordinates, as many of each: the held-out
    samples of an end, or fresh draws from ``gen`` of a distribution, as many as the other
    end holds out (:data:`MAX_HELD_OUT` when neither does).

    Args:
        train0: the training source end (drawn from when nothing is held out).
        held0: the held-out source samples, or ``None``.
        train1: the training target end (drawn from when nothing is held out).
        held1: the held-out target samples, or ``None``.
        norm: the normalisation of the fit.
        gen: the generator of fresh draws.
    """
    m = min([h.shape[0] for h in (held0, held1) if h is not None], default=MAX_HELD_OUT)
    v0 = held0 if held0 is not None else train0.sample(m, gen)
    v1 = held1 if held1 is not None else train1.sample(m, gen)
    return norm.encode(v0[:m]), norm.encode(v1[:m])


def _dataset_items(
    source: ShardedDataset, n: int, gen: torch.Generator, *, with_indices: bool = False
) -> Any:
    """Up to ``n`` random items of a dataset, dequantised (float64); with ``with_indices``,
    ``(items, their positions in the dataset)``."""
    m = min(n, len(source.dataset))
    picked = torch.randperm(len(source.dataset), generator=gen)[:m]
    x = source.images(picked.tolist()).detach()
    if torch.is_floating_point(x):
        out = x.to(torch.float64)
    else:
        check_pixels(x, "dataset images", source.levels)
        u = torch.rand(x.shape, generator=gen, dtype=torch.float64)
        out = (x.to(torch.float64) + u) / source.levels
    return (out, picked) if with_indices else out


def effective_rank(x: Tensor, rtol: float = 1e-6) -> int:
    """Number of covariance eigenvalues above ``rtol`` times the largest: the dimension of
    the affine span the samples fill (a line in the plane has rank 1). With fewer samples
    than dimensions (``n < d``) the same nonzero eigenvalues are read off the ``n x n`` Gram
    matrix of the centred samples: memory and time scale with the data, not with ``d^2``.

    Args:
        x: samples of shape ``(n, ...)``, flattened to ``(n, d)``; fewer than two samples give rank
            0.
        rtol: relative threshold on the eigenvalues of the sample covariance. Default ``1e-6``.

    Example:
        >>> import sitransport as st
        >>> effective_rank(torch.from_numpy(st.datasets.sample("line", 500, seed=0)))
        1
    """
    flat = x.flatten(1).to(torch.float64)
    n, d = flat.shape
    if n < 2:
        return 0
    if n < d:  # the n x n Gram matrix of the centred samples has the same nonzero spectrum
        centred = flat - flat.mean(0)
        eig = torch.linalg.eigvalsh(centred @ centred.T / (n - 1))
    else:
        eig = torch.linalg.eigvalsh(_covariance(flat))
    top = float(eig.max())
    return int((eig > rtol * top).sum()) if top > 0 else 0


def _covariance(flat: Tensor) -> Tensor:
    """The ``(d, d)`` sample covariance of ``(n, d)`` samples, centred in blocks of rows (no
    centred copy of all the samples is held)."""
    (n, d), mean = flat.shape, flat.mean(0)
    cov = torch.zeros(d, d, dtype=flat.dtype)
    for block in flat.split(max(1, 2**20 // d)):  # blocks of about 8 MB
        centred = block - mean
        cov += centred.T @ centred
    return cov / (n - 1)


def _rank_of(density: Density) -> int:
    if isinstance(density, EmpiricalDensity):
        return effective_rank(density.samples)
    return math.prod(density.shape)  # Gaussian / distribution ends: full rank
