"""The 2D toy data sets (the FFJORD / torchcfm benchmarks): one registry of samplers behind
:func:`names`, :func:`sample` and :func:`draw`, the exact densities of ``checkerboard`` and
``8gaussians`` (:func:`log_prob`), and :class:`ToyDistribution`, any of them as a torch
distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sitransport._validation import (
    Seed,
    as_tensor,
    check_choice,
    check_positive_int,
    numpy_generator,
)
from sitransport.datasets.gaussians import ArrayLike, GaussianMixture

__all__ = ["ToyDistribution", "draw", "log_prob", "names", "sample"]


# 8gaussians (FFJORD): centres 4 * (cos, sin)(j pi / 4), std 0.5, all divided by 1.414.
_EIGHT_RADIUS = 4.0 / 1.414
_EIGHT_STD = 0.5 / 1.414
_EIGHT_ANGLES = np.arange(8) * (np.pi / 4.0)
_EIGHT_GAUSSIANS = GaussianMixture(
    np.full(8, 1.0 / 8.0),
    _EIGHT_RADIUS * np.stack([np.cos(_EIGHT_ANGLES), np.sin(_EIGHT_ANGLES)], axis=1),
    np.broadcast_to(_EIGHT_STD**2 * np.eye(2), (8, 2, 2)),
)

# checkerboard (FFJORD): the squares [2a, 2a + 2] x [2b, 2b + 2], a, b in {-2, -1, 0, 1},
# a + b even -- eight squares of area 4, so the density is 1 / 32 on them.
_CHECKER_CELLS = np.array([(a, b) for a in range(-2, 2) for b in range(-2, 2) if (a + b) % 2 == 0])
_CHECKER_LOG_DENSITY = -math.log(32.0)


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    cells = _CHECKER_CELLS[rng.integers(0, len(_CHECKER_CELLS), size=n)]
    # Rounding is monotone, so 2 * cell + u with u in [0, 2) lands in the closed square.
    return 2.0 * cells + 2.0 * rng.random((n, 2))


def _checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    lo = torch.as_tensor(2.0 * _CHECKER_CELLS, dtype=x.dtype, device=x.device)  # (8, 2)
    xe = x.unsqueeze(1)  # (n, 1, 2)
    inside = ((xe >= lo) & (xe <= lo + 2.0)).all(dim=2).any(dim=1)  # closed squares
    value = torch.full_like(x[:, 0], _CHECKER_LOG_DENSITY)
    return torch.where(inside, value, torch.full_like(value, -math.inf))


def _eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    return _EIGHT_GAUSSIANS.sample(n, seed=rng)


def _eight_gaussians_log_prob(x: torch.Tensor) -> torch.Tensor:
    terms, _ = _EIGHT_GAUSSIANS._component_terms(x)
    return torch.logsumexp(terms, dim=1)


def _two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    # FFJORD "2spirals": the arm t (-cos t, sin t), t in [0, 3 pi], and its point reflection
    # -arm, each point on either arm with probability 1/2; jitter as in FFJORD.
    t = np.sqrt(rng.random(n)) * (540.0 * 2.0 * np.pi / 360.0)
    arm = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + 0.5 * rng.random((n, 2))
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    return sign * arm / 3.0 + 0.1 * rng.standard_normal((n, 2))


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    # Two interleaved half circles (scikit-learn's make_moons with noise 0.1, uniform random
    # angles), then FFJORD's affine map x * 2 + (-1, -0.2).
    theta = np.pi * rng.random(n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(theta), 1.0 - np.cos(theta))
    y = np.where(upper, np.sin(theta), 0.5 - np.sin(theta))
    pts = np.stack([x, y], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return 2.0 * pts + np.array([-1.0, -0.2])


def _circles(n: int, rng: np.random.Generator) -> np.ndarray:
    # Concentric circles of radii 1 and 0.5 (make_circles, factor 0.5, noise 0.08), times 3.
    theta = 2.0 * np.pi * rng.random(n)
    radius = np.where(rng.random(n) < 0.5, 1.0, 0.5)[:, None]
    pts = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return 3.0 * (pts + 0.08 * rng.standard_normal((n, 2)))


def _line(n: int, rng: np.random.Generator) -> np.ndarray:
    # Degenerate source: uniform on the segment [-4, 4] x {0}; covariance of rank exactly 1.
    x = np.zeros((n, 2))
    x[:, 0] = 8.0 * rng.random(n) - 4.0
    return x


def _pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    # FFJORD "pinwheel": five curved blades (radial std 0.3, tangential std 0.1, rate 0.25).
    n_blades, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    rads = np.linspace(0.0, 2.0 * np.pi, n_blades, endpoint=False)
    labels = rng.integers(0, n_blades, size=n)
    feats = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    feats[:, 0] += 1.0
    angles = rads[labels] + rate * np.exp(feats[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    out = np.stack([feats[:, 0] * c + feats[:, 1] * s, -feats[:, 0] * s + feats[:, 1] * c], 1)
    return 2.0 * out


def _swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    # scikit-learn's make_swiss_roll (noise 1.0) projected on its (x, z) plane, divided by 5.
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.standard_normal((n, 2))
    return pts / 5.0


_REGISTRY: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "2spirals": _two_spirals,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "circles": _circles,
    "line": _line,
    "moons": _moons,
    "pinwheel": _pinwheel,
    "spirals": _two_spirals,  # alias of "2spirals"
    "swissroll": _swissroll,
}

_EXACT_LOG_PROB: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "8gaussians": _eight_gaussians_log_prob,
    "checkerboard": _checkerboard_log_prob,
}


def names() -> list[str]:
    """The names accepted by :func:`sample`, sorted (``"spirals"`` is an alias of ``"2spirals"``).

    Returns:
        A new sorted list of the registry's keys.

    Example:
        >>> print(len(names()) > 0, "checkerboard" in names())
        True True
    """
    return sorted(_REGISTRY)


def sample(name: str, n: int, *, seed: Seed = None) -> np.ndarray:
    """Draw ``n`` points of a 2D toy data set.

    The data sets (FFJORD / torchcfm definitions, roughly within ``[-4, 4]^2``):
    ``checkerboard``, ``8gaussians``, ``2spirals`` (alias ``spirals``), ``moons``, ``circles``,
    ``line`` (uniform on ``[-4, 4] x {0}``: a rank-1, degenerate source), ``pinwheel``,
    ``swissroll``.

    Args:
        name: one of :func:`names`.
        n: number of samples, an integer ``>= 1``.
        seed: an ``int``, a :class:`numpy.random.Generator` or ``None``.

    Returns:
        A ``float64`` numpy array of shape ``(n, 2)``.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid names), ``n < 1``.
        TypeError: ``n`` not an integer, bad ``seed`` type.

    Example:
        >>> print(sample("moons", 100, seed=0).shape)
        (100, 2)
    """
    name = check_choice(name, "dataset name", _REGISTRY)
    n = check_positive_int(n, "n")
    x = _REGISTRY[name](n, numpy_generator(seed))
    return np.ascontiguousarray(x, dtype=np.float64)


def draw(name: str, n: int, seed: Seed = None, *, dim: int = 2) -> np.ndarray:
    """Draw ``n`` points of ``"gaussian"`` (the standard normal :math:`N(0, I_d)`, ``d = dim``)
    or of a 2D toy data set (as :func:`sample`): the ends the command line, the benchmarks
    and the quality tests name.

    For the same ``seed``, ``"gaussian"`` gives ``numpy.random.default_rng(seed)
    .standard_normal((n, dim))`` and a toy name gives ``sample(name, n, seed=seed)``.

    Args:
        name: ``"gaussian"`` or one of :func:`names`.
        n: number of samples, an integer ``>= 1``.
        seed: an ``int``, a :class:`numpy.random.Generator` or ``None``.
        dim: the dimension of ``"gaussian"``; a toy data set is 2D, so 2 is the only value
            accepted with one. Default ``2``.

    Returns:
        A ``float64`` numpy array of shape ``(n, dim)``.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid names), ``n < 1``,
            ``dim < 1``, or ``dim != 2`` with a toy data set.
        TypeError: ``n`` or ``dim`` not an integer, bad ``seed`` type.

    Example:
        >>> draw("gaussian", 4, 0, dim=3).shape, draw("moons", 4, 0).shape
        ((4, 3), (4, 2))
    """
    dim = check_positive_int(dim, "dim")
    if name != "gaussian":
        check_choice(name, "dataset name", {"gaussian": None, **_REGISTRY})
        if dim != 2:
            raise ValueError(f"dataset {name!r} is 2D, got dim={dim}")
        return sample(name, n, seed=seed)
    n = check_positive_int(n, "n")
    return numpy_generator(seed).standard_normal((n, dim))


def log_prob(name: str, x: ArrayLike) -> ArrayLike:
    """Exact log density of a 2D toy data set, for those that have one.

    * ``checkerboard``: :math:`\\log(1/32)` on the eight closed ``2 x 2`` squares
      ``[2a, 2a+2] x [2b, 2b+2]`` (``a, b`` in ``{-2, -1, 0, 1}``, ``a + b`` even), ``-inf``
      elsewhere (the boundaries have measure zero).
    * ``8gaussians``: the mixture of eight isotropic Gaussians, centres
      ``(4 / 1.414) (cos, sin)(j pi / 4)``, standard deviation ``0.5 / 1.414``, weights 1/8.

    Args:
        name: ``"checkerboard"`` or ``"8gaussians"``.
        x: points, numpy array (or torch tensor) of shape ``(n, 2)``, float32 or float64.

    Returns:
        Log densities of shape ``(n,)``, of the same array type as ``x``.

    Raises:
        ValueError: unknown name, a data set without an exact density, wrong shape, NaN/Inf.
        TypeError: ``x`` not an array or of non-floating dtype.

    Example:
        >>> print(log_prob("checkerboard", sample("checkerboard", 5, seed=0)).shape)
        (5,)
    """
    name = check_choice(name, "dataset name", _REGISTRY)
    if name not in _EXACT_LOG_PROB:
        raise ValueError(
            f"dataset {name!r} has no exact density; log_prob is available for: "
            f"{', '.join(sorted(_EXACT_LOG_PROB))}"
        )
    xt, back = as_tensor(x, "x", dim=2)
    return back(_EXACT_LOG_PROB[name](xt))


class ToyDistribution(torch.distributions.Distribution):
    """A 2D toy data set as a :mod:`torch.distributions` object: an endless stream of fresh
    draws, with :meth:`log_prob` for the sets that have an exact density.

    ``sitransport.fit("gaussian", ToyDistribution("checkerboard"))`` trains on new samples
    every batch, so what remains of the fit's error is the model's, not the finite sample's.
    Draws come from :func:`sample` seeded from torch's global generator (as every torch
    distribution draws), so ``torch.manual_seed`` makes them reproducible.

    Args:
        name: one of :func:`names`.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid names).

    Example:
        >>> import torch
        >>> from sitransport.datasets import ToyDistribution, log_prob
        >>> dist = ToyDistribution("checkerboard")
        >>> _ = torch.manual_seed(0)
        >>> x = dist.sample((4,))
        >>> x.shape, x.dtype
        (torch.Size([4, 2]), torch.float64)
        >>> bool((dist.log_prob(x) == log_prob("checkerboard", x)).all())
        True
    """

    arg_constraints: dict[str, Any] = {}
    support = torch.distributions.constraints.real_vector

    def __init__(self, name: str) -> None:
        self.name = check_choice(name, "dataset name", _REGISTRY)
        super().__init__(torch.Size(), torch.Size([2]), validate_args=False)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        """Draw ``float64`` points of shape ``(*sample_shape, 2)``.

        Args:
            sample_shape: leading shape of the draws (``torch.distributions`` convention). Default
                ``()``: one point.

        Example:
            >>> ToyDistribution("moons").sample((3, 5)).shape
            torch.Size([3, 5, 2])
        """
        shape = torch.Size(sample_shape)
        n = shape.numel()
        seed = int(torch.randint(0, 2**62, (1,)))
        x = _REGISTRY[self.name](n, numpy_generator(seed)) if n else np.zeros((0, 2))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).reshape(*shape, 2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact log density, as :func:`log_prob`, of shape ``value.shape[:-1]``.

        Args:
            value: points of shape ``(..., 2)``.

        Raises:
            NotImplementedError: the data set has no exact density.

        Example:
            >>> import torch
            >>> ToyDistribution("checkerboard").log_prob(torch.tensor([[1.0, 1.0], [1.0, 3.0]]))
            tensor([-3.4657,    -inf])
        """
        if self.name not in _EXACT_LOG_PROB:
            raise NotImplementedError(
                f"dataset {self.name!r} has no exact density; log_prob is available for: "
                f"{', '.join(sorted(_EXACT_LOG_PROB))}"
            )
        flat = value.reshape(-1, 2)
        return _EXACT_LOG_PROB[self.name](flat).reshape(value.shape[:-1])

    def __repr__(self) -> str:
        return f"ToyDistribution({self.name!r})"
