"""Quality of a fitted model: map error, sample quality against held-out data, NLL and bpd.

The one job of this module is to score what a model produced against a reference: a learned
map against the known optimal one (:func:`map_error`), generated samples against held-out
samples next to the noise floor (:func:`sample_quality`), and a flow's likelihood of data
(:func:`nll`, :func:`bits_per_dim`).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from sitransport._validation import check_positive, check_positive_int, check_same_dim
from sitransport.metrics.distances import samples, w2
from sitransport.protocols import Flow

__all__ = ["MapError", "SampleQuality", "bits_per_dim", "map_error", "nll", "sample_quality"]

#: The fewest samples per compared set (``len(held_out) // 2``) for which
#: :func:`sample_quality` does not warn. A perfect model's ratio falls, 90% of the time, in
#: [0.45, 2.25] at m = 2, [0.58, 1.75] at m = 5 and [0.65, 1.46] at m = 10 (two standard
#: Gaussians in d = 2, 300 draws each); the band narrows slowly beyond (``[0.71, 1.41]`` at
#: m = 20; in d = 1 it stays near [0.55, 1.7] at any m up to 200): below 10 a model off by a
#: factor two is not told from a perfect one.
_MIN_QUALITY_SAMPLES = 10

# --------------------------------------------------------------------------- map error


@dataclass(frozen=True)
class MapError:
    """Pointwise error of a transport map against the known optimal map (:func:`map_error`).

    Attributes:
        l2_uvp: ``100 E|T_hat(x) - T*(x)|^2 / Var(target)``, in percent (0 is perfect).
        cosine: cosine similarity of the displacements ``T_hat - id`` and ``T* - id`` in
            :math:`L^2(\\rho_0)` (1 is perfect).
        n: number of source points.

    Example:
        >>> from sitransport.metrics import MapError
        >>> MapError(l2_uvp=1.5, cosine=0.99, n=1000).l2_uvp
        1.5
    """

    l2_uvp: float
    cosine: float
    n: int


def map_error(x: Any, mapped: Any, optimal: Any, target_variance: float | None = None) -> MapError:
    r"""L2-UVP and displacement cosine of a learned map against the optimal-transport map.

    .. math::

        \text{L2-UVP} = 100\,\frac{\mathbb E_{x\sim\rho_0}|\hat T(x) - T^*(x)|^2}
        {\operatorname{tr}\operatorname{Cov}(\rho_1)}\ \%, \qquad
        \cos = \frac{\langle \hat T - \mathrm{id},\, T^* - \mathrm{id}\rangle_{L^2(\rho_0)}}
        {\|\hat T - \mathrm{id}\|_{L^2(\rho_0)}\, \|T^* - \mathrm{id}\|_{L^2(\rho_0)}},

    estimated on the given source points (Korotin et al. 2021: unexplained variance
    percentage; a constant map at the target mean scores 100%).

    Args:
        x: source points ``x ~ rho0``, shape ``(n, d)``; use points the map was not fit on.
        mapped: the learned map's images :math:`\hat T(x)`, shape ``(n, d)``.
        optimal: the optimal map's images :math:`T^*(x)`, shape ``(n, d)`` (e.g.
            :meth:`~sitransport.datasets.KnownOTPair.ot_map`).
        target_variance: total variance of the target (e.g.
            :attr:`~sitransport.datasets.KnownOTPair.target_variance`); default: the sample
            total variance of ``optimal``, whose rows are draws of the target.

    Returns:
        :class:`MapError`.

    Raises:
        TypeError, ValueError: bad arrays (shape, dimension mismatch, NaN/Inf), or a
            non-positive ``target_variance``.

    References:
        Korotin et al., *Do Neural Optimal Transport Solvers Work? A Continuous Wasserstein-2
        Benchmark*, arXiv:2106.01954.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(1000, 2))
        >>> optimal = 2.0 * x + 1.0  # N(0, I) -> N(1, 4 I)
        >>> err = map_error(x, optimal + 0.2, optimal, target_variance=8.0)
        >>> round(err.l2_uvp, 6), round(err.cosine, 3)  # L2-UVP = 100 * 0.08 / 8
        (1.0, 0.996)
    """
    x_ = samples(x, "x", min_samples=2)
    got = samples(mapped, "mapped", min_samples=2)
    ref = samples(optimal, "optimal", min_samples=2)
    for arr, name in ((got, "mapped"), (ref, "optimal")):
        if arr.shape != x_.shape:
            raise ValueError(f"{name} must have the shape of x {x_.shape}, got {arr.shape}")
    if target_variance is None:
        target_variance = float(ref.var(axis=0, ddof=1).sum())
    variance = check_positive(target_variance, "target_variance")
    uvp = 100.0 * float(np.square(got - ref).sum(1).mean()) / variance
    learned, true = got - x_, ref - x_
    norms = float(np.sqrt(np.square(learned).sum() * np.square(true).sum()))
    cosine = float((learned * true).sum()) / norms if norms > 0 else float("nan")
    return MapError(uvp, cosine, x_.shape[0])


@dataclass(frozen=True)
class SampleQuality:
    """Exact ``w2`` of generated vs held-out samples, the ``noise_floor`` (held-out vs an
    independent held-out set of the same size ``n``) and their ``ratio`` (1 is perfect).

    Attributes:
        w2: exact :math:`W_2` (POT) between the generated and the held-out samples.
        noise_floor: :math:`W_2` between two independent held-out sets of size ``n``: what a perfect
            model would score.
        ratio: ``w2 / noise_floor``: 1 is perfect, larger is worse.
        n: number of samples in each compared set.

    Example:
        >>> import numpy as np
        >>> from sitransport.metrics import sample_quality
        >>> rng = np.random.default_rng(0)
        >>> shifted = rng.normal(size=(500, 2)) + [1.0, 0.0]  # a model off by one unit
        >>> q = sample_quality(shifted, rng.normal(size=(1000, 2)))
        >>> q.n, round(q.w2, 2), round(q.noise_floor, 2), q.ratio > 2
        (500, 0.92, 0.24, True)
    """

    w2: float
    noise_floor: float
    ratio: float
    n: int


def sample_quality(generated: Any, held_out: Any) -> SampleQuality:
    r"""How close generated samples are to a target, relative to sampling noise.

    With ``m = len(held_out) // 2``, compares ``generated[:m]`` with ``held_out[:m]`` by exact
    :func:`w2` and reports it next to :math:`W_2` between ``held_out[:m]`` and
    ``held_out[m:2m]``: the distance a perfect model would show at this sample size.

    The floor is one draw, itself noisy: below ``m = 10`` a perfect model's ratio ranges over
    more than a factor 2 (90% of draws in ``[0.58, 1.75]`` at ``m = 5``, two Gaussians in
    ``d = 2``), and a ``UserWarning`` says so.

    Args:
        generated: at least ``m`` model samples, shape ``(n, d)``.
        held_out: ``2 m`` target samples not used in training, shape ``(2m, d)``.

    Returns:
        :class:`SampleQuality`.

    Raises:
        TypeError, ValueError: bad samples (the message names them); fewer than ``m``
            ``generated`` samples.
        ValueError: the two halves of ``held_out`` are the same points (a zero noise floor,
            e.g. constant or duplicated samples): the ratio is undefined.

    Warns:
        UserWarning: ``m < 10``: the noise floor, one draw from ``m`` points per set, is too
            noisy for the ratio to tell a good model from a bad one.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> q = sample_quality(rng.normal(size=(500, 2)), rng.normal(size=(1000, 2)))
        >>> q.n, 0.5 < q.ratio < 2.0
        (500, True)
    """
    gen = samples(generated, "generated")
    held = samples(held_out, "held_out", min_samples=2)
    check_same_dim(gen, held, "generated", "held_out")
    m = held.shape[0] // 2
    if gen.shape[0] < m:
        raise ValueError(
            f"generated must have at least len(held_out) // 2 = {m} samples, got {gen.shape[0]}"
        )
    if m < _MIN_QUALITY_SAMPLES:
        warnings.warn(
            f"held_out gives m={m} samples per compared set, fewer than "
            f"{_MIN_QUALITY_SAMPLES}: the noise floor is too noisy for the ratio to mean much "
            f"(a perfect model's ratio varies by more than a factor 2); pass at least "
            f"{2 * _MIN_QUALITY_SAMPLES} held-out samples",
            stacklevel=2,
        )
    dist = w2(gen[:m], held[:m])
    floor = w2(held[:m], held[m : 2 * m])
    if floor == 0.0:
        raise ValueError(
            f"the two halves of held_out (rows :{m} and {m}:{2 * m}) are the same points, so "
            "the noise floor W2 between them is 0 and the ratio w2 / noise floor is undefined; "
            "pass independent held-out samples (not constant or duplicated ones)"
        )
    return SampleQuality(dist, floor, dist / floor, m)


def nll(flow: Flow, x: Any, **log_prob_kwargs: Any) -> float:
    r"""Mean negative log-likelihood of samples under a flow's ``rho1``, in nats.

    .. math::

        \mathrm{NLL} = -\frac{1}{n} \sum_i \log \hat\rho_1(x_i).

    On held-out samples of a law with density :math:`\rho`, its expectation is the
    cross-entropy :math:`H(\rho) + \mathrm{KL}(\rho \,\|\, \hat\rho_1) \geq H(\rho)`.

    For data on a grid (pixels, counts), dequantise first and convert with
    :func:`bits_per_dim`.

    Args:
        flow: a :class:`~sitransport.Flow` with a base density.
        x: samples, shape ``(n, d)``.
        **log_prob_kwargs: passed to :meth:`~sitransport.TransportFlow.log_prob`
            (``method``, ``probes``, ``seed``, ``ode``, ``batch_size``, ``progress``):
            large test sets are evaluated ``batch_size`` points at a time with a progress bar.

    Returns:
        The mean NLL (nats) as a Python float.

    Example:
        >>> from sitransport import TransportFlow
        >>> identity = TransportFlow(lambda z, t: 0 * z, "linear", base="gaussian", shape=(1,))
        >>> print(round(nll(identity, np.zeros((4, 1)), progress=False), 4))  # log(2 pi) / 2
        0.9189
    """
    return float(-np.mean(np.asarray(flow.log_prob(x, **log_prob_kwargs), dtype=np.float64)))


def bits_per_dim(nll: float, d: int, *, bin_width: float) -> float:
    r"""Convert a continuous NLL of dequantised grid data to bits per dimension.

    Data on a grid with spacing ``bin_width`` (in the model's coordinates) is dequantised by
    adding uniform noise on one cell; a density :math:`\hat\rho` of the dequantised data
    gives the discrete model :math:`P(\text{cell}) \approx \hat\rho(x)\,
    \mathrm{bin\_width}^d`, whose code length per dimension in bits is

    .. math::

        \mathrm{bpd} = \frac{\mathrm{NLL} - d \log(\mathrm{bin\_width})}{d \ln 2}.

    (The expected continuous NLL of the dequantised data upper-bounds the discrete one, so the
    bpd is an upper bound on the discrete model's code length, as reported for image flows.)
    For pixels rescaled to ``[0, 1]`` with 256 levels, ``bin_width = 1/256`` adds 8 bits.

    Args:
        nll: mean negative log-likelihood in nats per sample (of dimension ``d``) of the
            dequantised data, e.g. from :func:`nll`; may be negative.
        d: the number of dimensions per sample (``c * h * w`` for images).
        bin_width: the grid spacing of the data in the model's coordinates (``> 0``).

    Returns:
        Bits per dimension as a Python float.

    Raises:
        TypeError: ``nll`` or ``bin_width`` not a real number, ``d`` not an integer.
        ValueError: ``nll`` not finite, ``d < 1`` or ``bin_width`` not finite and ``> 0``.

    References:
        Theis, van den Oord & Bethge, *A note on the evaluation of generative models*
        (ICLR 2016), arXiv 1511.01844.

    Example:
        >>> print(bits_per_dim(0.0, 3, bin_width=1 / 256))  # uniform on [0, 1]^3, 8-bit grid
        8.0
        >>> print(round(bits_per_dim(-3.0, 2, bin_width=1.0), 4))
        -2.164
    """
    if isinstance(nll, bool) or not isinstance(nll, numbers.Real):
        raise TypeError(f"nll must be a real number (nats per sample), got {nll!r}")
    if not np.isfinite(float(nll)):
        raise ValueError(f"nll must be finite, got {nll}")
    d = check_positive_int(d, "d")
    bin_width = check_positive(bin_width, "bin_width")
    return float((float(nll) - d * np.log(bin_width)) / (d * np.log(2.0)))
