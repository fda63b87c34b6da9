"""Reference densities: 2D toy data sets and Gaussian (mixture) distributions.

Two families live here:

* **2D toy data sets** (the FFJORD / torchcfm benchmarks) drawn with :func:`sample` through one
  registry (:func:`names` lists it). Two of them have an exact density, :func:`log_prob`:
  ``checkerboard`` (uniform on eight 2 x 2 squares) and ``8gaussians`` (a mixture of eight
  isotropic Gaussians); it is written from the same definition the sampler uses.
  :class:`ToyDistribution` is any of them as a torch distribution: fresh draws for every
  batch of a fit. :func:`draw` also accepts ``"gaussian"`` (the standard normal, any
  dimension), the ends the command line and the benchmarks name.
* **Gaussians in any dimension**: the function :func:`gaussian` and the classes
  :class:`Gaussian` and :class:`GaussianMixture`, with exact ``log_prob``, ``score``
  (:math:`\\nabla_x \\log \\rho(x)`, in closed form), exact first two moments and a
  :mod:`torch.distributions` twin. They are the closed-form references the known-answer
  tests of the rest of the library are checked against.
* **Pairs with a known optimal-transport map** (:func:`known_ot_pair`,
  :class:`KnownOTPair`): a Gaussian (mixture) source and its push-forward by the gradient of
  a convex potential, the exact Brenier map, in any dimension; the reference of
  ``benchmarks/bench_ot_map.py``.
* **Tabular density-estimation sets** (POWER, GAS, HEPMASS, MINIBOONE, BSDS300) read from the
  preprocessed MAF files in a user-given folder by :func:`load_tabular`, with the standard
  splits and normalisation (nothing is downloaded).

Samples are numpy ``float64`` arrays of shape ``(n, d)``. Randomness comes only from the
``seed`` argument (an ``int``, a :class:`numpy.random.Generator` or ``None``); the global
random state is never touched.

References:
    Grathwohl et al., *FFJORD: Free-form Continuous Dynamics for Scalable Reversible
    Generative Models*, arXiv:1810.01367 (the toy data sets).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sitransport._unpickle import restricted_load
from sitransport._validation import (
    Seed,
    as_tensor,
    check_choice,
    check_covariance,
    check_mixture_weights,
    check_positive,
    check_positive_int,
    numpy_generator,
)

__all__ = [
    "Gaussian",
    "GaussianMixture",
    "KnownOTPair",
    "TabularSplits",
    "ToyDistribution",
    "draw",
    "gaussian",
    "known_ot_pair",
    "load_tabular",
    "log_prob",
    "names",
    "sample",
]

ArrayLike = Any

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _float_array(value: Any, name: str) -> np.ndarray:
    """Convert a real array-like parameter to a finite float64 numpy array (a copy)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.array(value)
    except (TypeError, ValueError) as err:  # ragged nested lists and the like
        raise TypeError(f"{name} must be an array of real numbers, got {value!r}") from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be an array of real numbers (int or float), got dtype {arr.dtype}"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} must be finite, got {int(np.sum(~np.isfinite(arr)))} "
            f"non-finite values out of {arr.size}"
        )
    return arr


def _check_spd(cov: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one ``(d, d)`` covariance; return it symmetrised and its Cholesky factor."""
    cov = check_covariance(cov, name, definite=True)
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        smallest = float(np.linalg.eigvalsh(cov)[0])
        raise ValueError(
            f"{name} must be symmetric positive definite, got a matrix whose Cholesky "
            f"factorisation fails (smallest eigenvalue {smallest:.6g})"
        ) from err
    return cov, chol


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, dtype=np.float64)
    arr.flags.writeable = False
    return arr


# --------------------------------------------------------------------------------------
# Gaussian mixtures
# --------------------------------------------------------------------------------------


class GaussianMixture:
    r"""A finite mixture of multivariate Gaussians with exact density, score and moments.

    .. math::
        \rho(x) = \sum_{c=1}^{k} w_c \, \mathcal N(x; \mu_c, \Sigma_c).

    Parameters are validated once, stored as read-only ``float64`` numpy arrays and exposed
    through read-only properties. ``log_prob`` and ``score`` accept a numpy array or a torch
    tensor of shape ``(n, d)`` (float32 or float64) and return the same type; for a tensor the
    result has its dtype and device and is differentiable with respect to it.

    Args:
        weights: mixture weights, shape ``(k,)``, all ``> 0`` and summing to 1 within ``1e-6``
            (they are not renormalised).
        means: component means, shape ``(k, d)``.
        covs: component covariances, shape ``(k, d, d)``, each symmetric positive definite.

    Raises:
        TypeError: a parameter is not a real array.
        ValueError: wrong shapes, non-finite values, non-positive weights, weights not summing
            to 1, or a covariance that is not symmetric positive definite.

    Example:
        >>> import numpy as np
        >>> from sitransport.datasets import GaussianMixture
        >>> gm = GaussianMixture([0.3, 0.7], [[0.0, 0.0], [3.0, 0.0]], [np.eye(2), np.eye(2)])
        >>> x = gm.sample(5, seed=0)
        >>> print(x.shape, gm.log_prob(x).shape, gm.score(x).shape, gm.mean.shape, gm.cov.shape)
        (5, 2) (5,) (5, 2) (2,) (2, 2)
    """

    def __init__(self, weights: ArrayLike, means: ArrayLike, covs: ArrayLike) -> None:
        w = _float_array(weights, "weights")
        mu = _float_array(means, "means")
        sig = _float_array(covs, "covs")
        if w.ndim != 1 or w.shape[0] < 1:
            raise ValueError(f"weights must have shape (k,) with k >= 1, got shape {w.shape}")
        k = w.shape[0]
        if mu.ndim != 2 or mu.shape[0] != k or mu.shape[1] < 1:
            raise ValueError(
                f"means must have shape (k, d) = ({k}, d) to match weights of length {k}, "
                f"got shape {mu.shape}"
            )
        d = mu.shape[1]
        if sig.shape != (k, d, d):
            raise ValueError(
                f"covs must have shape (k, d, d) = ({k}, {d}, {d}) to match means of shape "
                f"{mu.shape}, got shape {sig.shape}"
            )
        self._init_checked(w, mu, sig, cov_names=[f"covs[{c}]" for c in range(k)])

    def _init_checked(
        self, w: np.ndarray, mu: np.ndarray, sig: np.ndarray, *, cov_names: list[str]
    ) -> None:
        """Finish construction from shape-checked arrays: check weights and SPD, precompute."""
        check_mixture_weights(w, "weights")
        chols = np.empty_like(sig)
        for c in range(sig.shape[0]):
            sig[c], chols[c] = _check_spd(sig[c], cov_names[c])
        self._weights = _readonly(w)
        self._means = _readonly(mu)
        self._covs = _readonly(sig)
        self._chols = _readonly(chols)
        logdet = 2.0 * np.sum(np.log(np.diagonal(chols, axis1=1, axis2=2)), axis=1)
        d = mu.shape[1]
        # log w_c - (d log 2 pi + log det Sigma_c) / 2, per component
        self._log_coef = _readonly(np.log(w) - 0.5 * (d * _LOG_2PI + logdet))
        mean = w @ mu
        second = np.einsum("c,cij->ij", w, sig + np.einsum("ci,cj->cij", mu, mu))
        cov = second - np.outer(mean, mean)
        self._mean = _readonly(mean)
        self._cov = _readonly(0.5 * (cov + cov.T))
        self._torch_cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}

    # -- read-only parameters ----------------------------------------------------------

    @property
    def dim(self) -> int:
        """The dimension ``d`` of the space."""
        return int(self._means.shape[1])

    @property
    def n_components(self) -> int:
        """The number of components ``k``."""
        return int(self._weights.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """Mixture weights, shape ``(k,)`` (read-only)."""
        return self._weights

    @property
    def means(self) -> np.ndarray:
        """Component means, shape ``(k, d)`` (read-only)."""
        return self._means

    @property
    def covs(self) -> np.ndarray:
        """Component covariances, shape ``(k, d, d)`` (read-only)."""
        return self._covs

    @property
    def mean(self) -> np.ndarray:
        r"""Exact mean of the mixture :math:`\sum_c w_c \mu_c`, shape ``(d,)``."""
        return self._mean

    @property
    def cov(self) -> np.ndarray:
        r"""Exact covariance :math:`\sum_c w_c (\Sigma_c + \mu_c \mu_c^\top) - m m^\top`, (d, d)."""
        return self._cov

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_components={self.n_components}, dim={self.dim})"

    # -- sampling ----------------------------------------------------------------------

    def sample(self, n: int, *, seed: Seed = None) -> np.ndarray:
        """Draw ``n`` independent samples.

        Args:
            n: number of samples, an integer ``>= 1``.
            seed: an ``int``, a :class:`numpy.random.Generator` or ``None`` (fresh entropy).

        Returns:
            A ``float64`` numpy array of shape ``(n, d)``.

        Raises:
            TypeError: ``n`` is not an integer, or ``seed`` has the wrong type.
            ValueError: ``n < 1`` or a ``seed`` outside ``[0, 2**63 - 1]``.

        Example:
            >>> print(Gaussian([0.0, 1.0], np.eye(2)).sample(3, seed=0).shape)
            (3, 2)
        """
        n = check_positive_int(n, "n")
        rng = numpy_generator(seed)
        labels = rng.choice(self.n_components, size=n, p=self._weights)
        z = rng.standard_normal((n, self.dim))
        x = np.empty((n, self.dim), dtype=np.float64)
        for c in range(self.n_components):
            mask = labels == c
            x[mask] = self._means[c] + z[mask] @ self._chols[c].T
        return x

    # -- density and score -------------------------------------------------------------

    def _params(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
        key = (dtype, device)
        if key not in self._torch_cache:
            self._torch_cache[key] = tuple(
                torch.tensor(a, dtype=dtype, device=device)
                for a in (self._means, self._chols, self._log_coef)
            )
        return self._torch_cache[key]

    def _component_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-component log(w_c N(x; mu_c, Sigma_c)), shape (n, k), and x - mu_c, (k, d, n)."""
        means, chols, log_coef = self._params(x.dtype, x.device)
        diff = (x.unsqueeze(0) - means.unsqueeze(1)).transpose(1, 2)  # (k, d, n)
        white = torch.linalg.solve_triangular(chols, diff, upper=False)  # L_c^{-1}(x - mu_c)
        maha = white.square().sum(dim=1).T  # (n, k)
        return log_coef - 0.5 * maha, diff

    def log_prob(self, x: ArrayLike) -> ArrayLike:
        r"""Exact log density :math:`\log \rho(x)` (a log-sum-exp over components).

        Args:
            x: points, numpy array or torch tensor of shape ``(n, d)``, float32 or float64.

        Returns:
            Log densities of shape ``(n,)``, of the same array type as ``x`` (for a tensor:
            same dtype and device, differentiable with respect to ``x``).

        Raises:
            TypeError: ``x`` is not an array or has a non-floating dtype.
            ValueError: ``x`` has the wrong shape or holds NaN/Inf.

        Example:
            >>> g = Gaussian(np.zeros(2), np.eye(2))
            >>> print(g.log_prob(np.zeros((4, 2))).shape)
            (4,)
        """
        xt, back = as_tensor(x, "x", dim=self.dim)
        terms, _ = self._component_terms(xt)
        return back(torch.logsumexp(terms, dim=1))

    def score(self, x: ArrayLike) -> ArrayLike:
        r"""Exact score :math:`\nabla_x \log \rho(x)` in closed form.

        .. math::
            \nabla_x \log \rho(x) = -\sum_c r_c(x)\, \Sigma_c^{-1}(x - \mu_c), \qquad
            r_c(x) = \frac{w_c \mathcal N(x; \mu_c, \Sigma_c)}{\rho(x)}.

        Args:
            x: points, numpy array or torch tensor of shape ``(n, d)``, float32 or float64.

        Returns:
            Scores of shape ``(n, d)``, of the same array type (dtype, device) as ``x``.

        Raises:
            TypeError: ``x`` is not an array or has a non-floating dtype.
            ValueError: ``x`` has the wrong shape or holds NaN/Inf.

        Example:
            >>> g = Gaussian(np.zeros(2), np.eye(2))
            >>> print(g.score(np.ones((4, 2))).shape)
            (4, 2)
        """
        xt, back = as_tensor(x, "x", dim=self.dim)
        terms, diff = self._component_terms(xt)
        resp = torch.softmax(terms, dim=1)  # (n, k)
        _, chols, _ = self._params(xt.dtype, xt.device)
        prec_diff = torch.cholesky_solve(diff, chols, upper=False)  # Sigma_c^{-1}(x - mu_c)
        return back(-torch.einsum("nk,kdn->nd", resp, prec_diff))

    def to_torch(
        self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> torch.distributions.Distribution:
        """The same distribution as a :mod:`torch.distributions` object.

        Args:
            dtype: ``torch.float32`` or ``torch.float64``. Default ``torch.float64``.
            device: device of the parameters (default: CPU).

        Returns:
            A :class:`~torch.distributions.MixtureSameFamily` of
            :class:`~torch.distributions.MultivariateNormal` components (a plain
            ``MultivariateNormal`` for :class:`Gaussian`).

        Raises:
            TypeError: ``dtype`` is not float32 or float64.

        Example:
            >>> dist = Gaussian(np.zeros(3), np.eye(3)).to_torch()
            >>> print(dist.sample((5,)).shape)
            torch.Size([5, 3])
        """
        means, chols = self._torch_params_for_dist(dtype, device)
        weights = torch.tensor(self._weights, dtype=dtype, device=means.device)
        return torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=weights),
            torch.distributions.MultivariateNormal(loc=means, scale_tril=chols),
        )

    def _torch_params_for_dist(
        self, dtype: torch.dtype, device: torch.device | str | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        dev = torch.device("cpu") if device is None else torch.device(device)
        means = torch.tensor(self._means, dtype=dtype, device=dev)
        chols = torch.tensor(self._chols, dtype=dtype, device=dev)
        return means, chols

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def random(cls, k: int, d: int, *, seed: Seed = None, scale: float = 2.0) -> GaussianMixture:
        """A random, well-conditioned mixture for tests and examples.

        Means are drawn from :math:`\\mathcal N(0, \\text{scale}^2 I)`; each covariance is
        :math:`Q \\operatorname{diag}(\\lambda) Q^\\top` with :math:`Q` a random rotation and
        :math:`\\lambda \\in [0.25, 1]` (condition number at most 4); weights are at least
        ``0.5 / k``.

        Args:
            k: number of components, ``>= 1``.
            d: dimension, ``>= 1``.
            seed: an ``int``, a :class:`numpy.random.Generator` or ``None``.
            scale: spread of the component means, ``> 0``. Default ``2.0``.

        Returns:
            A :class:`GaussianMixture` (a :class:`Gaussian` when called as
            ``Gaussian.random(1, d)``).

        Raises:
            TypeError: ``k``, ``d`` not integers, ``scale`` not a number.
            ValueError: ``k < 1``, ``d < 1``, ``scale <= 0``.

        Example:
            >>> gm = GaussianMixture.random(3, 2, seed=0)
            >>> print(gm.weights.shape, gm.means.shape, gm.covs.shape)
            (3,) (3, 2) (3, 2, 2)
        """
        k = check_positive_int(k, "k")
        d = check_positive_int(d, "d")
        scale = check_positive(scale, "scale")
        rng = numpy_generator(seed)
        weights = 0.5 / k + 0.5 * rng.dirichlet(np.full(k, 5.0))
        weights = weights / weights.sum()
        means = scale * rng.standard_normal((k, d))
        covs = np.empty((k, d, d))
        for c in range(k):
            q, r = np.linalg.qr(rng.standard_normal((d, d)))
            q = q * np.sign(np.diagonal(r))  # Haar-distributed rotation
            lam = rng.uniform(0.25, 1.0, size=d)
            covs[c] = (q * lam) @ q.T
        return GaussianMixture(weights, means, covs)


class Gaussian(GaussianMixture):
    r"""A multivariate Gaussian :math:`\mathcal N(\mu, \Sigma)`: a one-component mixture.

    Everything of :class:`GaussianMixture` applies (``sample``, ``log_prob``, ``score``,
    ``to_torch``, the read-only ``weights``/``means``/``covs``/``mean``/``cov``); the score
    is :math:`-\Sigma^{-1}(x - \mu)`.

    Args:
        mean: the mean, shape ``(d,)``.
        cov: the covariance, shape ``(d, d)``, symmetric positive definite.

    Raises:
        TypeError: a parameter is not a real array.
        ValueError: ``mean`` not 1-D, ``cov`` not ``(d, d)``, non-finite values, or ``cov``
            not symmetric positive definite.

    Example:
        >>> from sitransport.datasets import Gaussian
        >>> g = Gaussian([1.0, -1.0], [[2.0, 0.5], [0.5, 1.0]])
        >>> print(g.dim, g.mean.shape, g.cov.shape, g.sample(4, seed=0).shape)
        2 (2,) (2, 2) (4, 2)
    """

    def __init__(self, mean: ArrayLike, cov: ArrayLike) -> None:
        mu, sig = _check_mean_cov(mean, cov)
        self._init_checked(np.ones(1), mu[None, :], sig[None, :, :], cov_names=["cov"])

    def __repr__(self) -> str:
        return f"Gaussian(dim={self.dim})"

    def to_torch(
        self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> torch.distributions.Distribution:
        """The same distribution as a :class:`torch.distributions.MultivariateNormal`.

        Args:
            dtype: ``torch.float32`` or ``torch.float64``. Default ``torch.float64``.
            device: device of the parameters (default: CPU).

        Returns:
            A :class:`~torch.distributions.MultivariateNormal`.

        Raises:
            TypeError: ``dtype`` is not float32 or float64.

        Example:
            >>> print(Gaussian(np.zeros(2), np.eye(2)).to_torch().mean.shape)
            torch.Size([2])
        """
        means, chols = self._torch_params_for_dist(dtype, device)
        return torch.distributions.MultivariateNormal(loc=means[0], scale_tril=chols[0])

    @classmethod
    def random(cls, k: int, d: int, *, seed: Seed = None, scale: float = 2.0) -> Gaussian:
        """A random, well-conditioned Gaussian; see :meth:`GaussianMixture.random`.

        Args:
            k: must be 1 (kept so the signature matches :meth:`GaussianMixture.random`).
            d: dimension, ``>= 1``.
            seed: an ``int``, a :class:`numpy.random.Generator` or ``None``.
            scale: spread of the mean, ``> 0``. Default ``2.0``.

        Returns:
            A :class:`Gaussian`.

        Raises:
            ValueError: ``k != 1`` (and as :meth:`GaussianMixture.random`).

        Example:
            >>> print(Gaussian.random(1, 3, seed=0).cov.shape)
            (3, 3)
        """
        k = check_positive_int(k, "k")
        if k != 1:
            raise ValueError(f"k must be 1 for a Gaussian, got {k}; use GaussianMixture.random")
        gm = GaussianMixture.random(1, d, seed=seed, scale=scale)
        return Gaussian(gm.means[0], gm.covs[0])


def _check_mean_cov(mean: ArrayLike, cov: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    mu = _float_array(mean, "mean")
    sig = _float_array(cov, "cov")
    if mu.ndim != 1 or mu.shape[0] < 1:
        raise ValueError(f"mean must be 1-D of shape (d,) with d >= 1, got shape {mu.shape}")
    d = mu.shape[0]
    if sig.shape != (d, d):
        raise ValueError(
            f"cov must have shape ({d}, {d}) to match mean of length {d}, got shape {sig.shape}"
        )
    return mu, sig


def gaussian(n: int, mean: ArrayLike, cov: ArrayLike, *, seed: Seed = None) -> np.ndarray:
    r"""Draw ``n`` samples of :math:`\mathcal N(\text{mean}, \text{cov})` in any dimension.

    Args:
        n: number of samples, an integer ``>= 1``.
        mean: the mean, shape ``(d,)``.
        cov: the covariance, shape ``(d, d)``, symmetric positive definite.
        seed: an ``int``, a :class:`numpy.random.Generator` or ``None``.

    Returns:
        A ``float64`` numpy array of shape ``(n, d)``.

    Raises:
        TypeError: ``n`` not an integer, parameters not real arrays, bad ``seed`` type.
        ValueError: ``n < 1``, ``mean`` not 1-D, ``cov`` not ``(d, d)`` or not symmetric
            positive definite, non-finite parameters.

    Example:
        >>> print(gaussian(10, np.zeros(3), np.eye(3), seed=0).shape)
        (10, 3)
    """
    n = check_positive_int(n, "n")
    return Gaussian(mean, cov).sample(n, seed=seed)


# --------------------------------------------------------------------------------------
# Pairs with a known optimal-transport map
# --------------------------------------------------------------------------------------


class KnownOTPair:
    r"""A source and the push-forward of it by a known optimal-transport map.

    The map is the gradient of the convex potential

    .. math::

        \varphi(x) = \tfrac12 x^\top A x + b^\top x
        + \frac{a}{\beta} \sum_{j=1}^m \operatorname{softplus}\big(\beta (w_j^\top x - c_j)\big),
        \qquad
        T(x) = \nabla\varphi(x) = A x + b + a \sum_j \sigma\big(\beta (w_j^\top x - c_j)\big) w_j,

    with ``A`` symmetric positive semi-definite and ``a >= 0`` (a one-hidden-layer
    input-convex network with non-negative output weights plus a quadratic). The target is
    :math:`\rho_1 = T_\#\rho_0`; by Brenier's theorem ``T`` is the optimal-transport map for
    the squared Euclidean cost (:math:`\rho_0` has a density), so a learned map can be scored
    against it pointwise (:func:`~sitransport.metrics.map_error`). Its Jacobian
    :math:`A + a\beta \sum_j \sigma'(\cdot) w_j w_j^\top` is symmetric positive
    semi-definite. Build the benchmark pairs with :func:`known_ot_pair`.

    Args:
        source: :math:`\rho_0`, a :class:`GaussianMixture` (or :class:`Gaussian`).
        quadratic: ``A``, shape ``(d, d)``, symmetric positive semi-definite.
        linear: ``b``, shape ``(d,)``.
        directions: ``w``, shape ``(m, d)`` (``m = 0``: an affine map). Default ``None``.
        offsets: ``c``, shape ``(m,)``. Default ``None``.
        amplitude: ``a >= 0``. Default ``0.0``.
        sharpness: ``beta > 0``. Default ``1.0``.
        kind: a label for tables (``"gaussian"``, ``"mixture"``, ...). Default ``"custom"``.

    Raises:
        TypeError: a parameter is not a real array.
        ValueError: shapes that do not match ``source.dim``, ``A`` not symmetric positive
            semi-definite, ``a < 0`` or ``beta <= 0``.

    Example:
        >>> import numpy as np
        >>> from sitransport.datasets import Gaussian, KnownOTPair
        >>> pair = KnownOTPair(Gaussian(np.zeros(2), np.eye(2)), 2 * np.eye(2), [1.0, 0.0])
        >>> x0, x1 = pair.sample(3, seed=0)  # independent draws of rho0 and rho1 = N(b, 4 I)
        >>> x0.shape, x1.shape
        ((3, 2), (3, 2))
        >>> pair.ot_map(np.array([[1.0, 1.0]])), pair.target_variance
        (array([[3., 2.]]), 8.0)
    """

    def __init__(
        self,
        source: GaussianMixture,
        quadratic: ArrayLike,
        linear: ArrayLike,
        directions: ArrayLike | None = None,
        offsets: ArrayLike | None = None,
        amplitude: float = 0.0,
        sharpness: float = 1.0,
        kind: str = "custom",
    ) -> None:
        if not isinstance(source, GaussianMixture):
            raise TypeError(f"source must be a GaussianMixture, got {type(source).__name__}")
        d = source.dim
        a = _float_array(quadratic, "quadratic")
        b = _float_array(linear, "linear")
        w = _float_array(directions if directions is not None else np.zeros((0, d)), "directions")
        c = _float_array(offsets if offsets is not None else np.zeros(w.shape[0]), "offsets")
        if a.shape != (d, d) or b.shape != (d,):
            raise ValueError(
                f"quadratic and linear must have shapes ({d}, {d}) and ({d},) for a source of "
                f"dimension {d}, got {a.shape} and {b.shape}"
            )
        if w.ndim != 2 or w.shape[1] != d or c.shape != (w.shape[0],):
            raise ValueError(
                f"directions and offsets must have shapes (m, {d}) and (m,), got {w.shape} "
                f"and {c.shape}"
            )
        a = check_covariance(a, "quadratic", definite=False)
        self._source = source
        self._a, self._b = _readonly(a), _readonly(b)
        self._w, self._c = _readonly(w), _readonly(c)
        self._amplitude = check_positive(amplitude, "amplitude", allow_zero=True)
        self._sharpness = check_positive(sharpness, "sharpness")
        self._kind = str(kind)
        self._variance: float | None = None

    @property
    def source(self) -> GaussianMixture:
        """:math:`\\rho_0`."""
        return self._source

    @property
    def dim(self) -> int:
        """The dimension ``d``."""
        return self._source.dim

    @property
    def kind(self) -> str:
        """The label given at construction."""
        return self._kind

    def __repr__(self) -> str:
        return f"KnownOTPair(kind={self._kind!r}, dim={self.dim}, ridges={self._w.shape[0]})"

    def _ridges(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.tensor(self._w, dtype=x.dtype, device=x.device)
        c = torch.tensor(self._c, dtype=x.dtype, device=x.device)
        return self._sharpness * (x @ w.T - c)

    def potential(self, x: ArrayLike) -> ArrayLike:
        r"""The convex potential :math:`\varphi(x)`, shape ``(n,)`` (same array type as ``x``;
        a tensor result is differentiable with respect to ``x``).

        Args:
            x: points of shape ``(n, d)``: numpy, torch or xarray.

        Example:
            >>> pair = known_ot_pair("mixture", 2, seed=0)
            >>> pair.potential(np.zeros((4, 2))).shape
            (4,)
        """
        xt, back = as_tensor(x, "x", dim=self.dim)
        a = torch.tensor(self._a, dtype=xt.dtype, device=xt.device)
        b = torch.tensor(self._b, dtype=xt.dtype, device=xt.device)
        z = self._ridges(xt)
        soft = torch.logaddexp(torch.zeros_like(z), z).sum(1)  # softplus without its cut-off
        phi = 0.5 * ((xt @ a) * xt).sum(1) + xt @ b + self._amplitude / self._sharpness * soft
        return back(phi)

    def ot_map(self, x: ArrayLike) -> ArrayLike:
        r"""The optimal-transport map :math:`T(x) = \nabla\varphi(x)` in closed form, shape
        ``(n, d)``, same array type as ``x``.

        Args:
            x: points of shape ``(n, d)``: numpy, torch or xarray.

        Example:
            >>> import torch
            >>> pair = known_ot_pair("mixture", 3, seed=0)
            >>> x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
            >>> grad = torch.autograd.grad(pair.potential(x).sum(), x)[0]
            >>> torch.allclose(pair.ot_map(x), grad)  # the gradient of the potential
            True
        """
        xt, back = as_tensor(x, "x", dim=self.dim)
        a = torch.tensor(self._a, dtype=xt.dtype, device=xt.device)
        b = torch.tensor(self._b, dtype=xt.dtype, device=xt.device)
        w = torch.tensor(self._w, dtype=xt.dtype, device=xt.device)
        push = self._amplitude * torch.sigmoid(self._ridges(xt)) @ w
        return back(xt @ a + b + push)

    def sample(self, n: int, *, seed: Seed = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws of :math:`\\rho_0` and ``n`` *independent* draws of :math:`\\rho_1`
        (the push-forward of a second, independent source sample): what a solver sees.

        Args:
            n: number of samples of each end, an integer ``>= 1``.
            seed: an ``int``, a :class:`numpy.random.Generator` or ``None`` (fresh entropy) for both
                draws. Default ``None``.

        Returns:
            ``(x0, x1)``, ``float64`` arrays of shape ``(n, d)``.

        Example:
            >>> x0, x1 = known_ot_pair("gaussian", 4, seed=0).sample(10, seed=1)
            >>> x0.shape, x1.shape
            ((10, 4), (10, 4))
        """
        n = check_positive_int(n, "n")
        rng = numpy_generator(seed)
        x0 = self._source.sample(n, seed=rng)
        return x0, self.ot_map(self._source.sample(n, seed=rng))

    @property
    def target_variance(self) -> float:
        r"""Total variance of :math:`\rho_1`, :math:`\operatorname{tr}\operatorname{Cov}(T(X))`
        (the denominator of L2-UVP): exact for an affine map of a Gaussian, otherwise a
        Monte Carlo estimate from 200,000 source draws (seed 0; relative standard error
        about ``sqrt(2 / 200000 / d)`` for a near-Gaussian target), computed once.
        """
        if self._variance is None:
            if self._w.shape[0] == 0 or self._amplitude == 0.0:
                a = self._a
                self._variance = float(np.trace(a @ self._source.cov @ a))
            else:
                y = self.ot_map(self._source.sample(200_000, seed=0))
                self._variance = float(y.var(axis=0, ddof=1).sum())
        return self._variance


def known_ot_pair(kind: str, dim: int, *, seed: Seed = 0) -> KnownOTPair:
    r"""A random pair of densities with a known optimal-transport map (a benchmark problem).

    - ``"gaussian"``: :math:`\mathcal N(m_0, \Sigma_0) \to \mathcal N(m_1, \Sigma_1)` with
      random means and random covariances (eigenvalues in ``[0.25, 1]`` for the source,
      log-uniform in ``[0.25, 4]`` for the target, random rotations); the map is the linear
      Brenier map of :func:`~sitransport.metrics.gaussian_ot_map`.
    - ``"mixture"``: a random 3-component Gaussian mixture
      (:meth:`GaussianMixture.random`, means of scale 1.5) pushed forward by the gradient of
      :math:`\varphi(x) = \frac{0.3}{2}|x|^2 + \frac{a}{\beta}\sum_{j=1}^{d}
      \operatorname{softplus}(\beta(w_j^\top x - c_j))`: ``d`` ridges with random unit normals
      :math:`w_j`, each through a random source point, sharpness :math:`\beta = 4`,
      amplitude :math:`a = 2.5`. The map stretches the source across each ridge; its
      Jacobian eigenvalues lie between 0.3 and about 7, and the moment-matched affine map
      misses it by an L2-UVP of 7-9% for ``d`` from 4 to 64 (24% at ``d = 2``; seed 0).

    In the spirit of Korotin et al. (2021), whose benchmark pairs come from input-convex
    networks too; these are smaller, closed-form and cheap to sample.

    Args:
        kind: ``"gaussian"`` or ``"mixture"``.
        dim: dimension ``d >= 1``.
        seed: an ``int`` or :class:`numpy.random.Generator`: the same seed gives the same pair.
            Default ``0``.

    Returns:
        :class:`KnownOTPair`.

    Raises:
        ValueError: unknown ``kind`` (the message lists the valid ones), ``dim < 1``.

    References:
        Korotin et al., *Do Neural Optimal Transport Solvers Work? A Continuous Wasserstein-2
        Benchmark*, arXiv:2106.01954. Brenier (1991), *Polar factorization and monotone
        rearrangement of vector-valued functions*.

    Example:
        >>> pair = known_ot_pair("mixture", 8, seed=0)
        >>> pair
        KnownOTPair(kind='mixture', dim=8, ridges=8)
        >>> x0, x1 = pair.sample(1000, seed=1)
        >>> y = pair.ot_map(x0)  # where each source point goes
        >>> y.shape, round(pair.target_variance / 8, 1)
        ((1000, 8), 2.4)
    """
    check_choice(kind, "kind", ("gaussian", "mixture"))
    d = check_positive_int(dim, "dim")
    rng = numpy_generator(seed)
    if kind == "gaussian":
        from sitransport.metrics import gaussian_ot_map

        gaussian = Gaussian.random(1, d, seed=rng, scale=1.0)
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        q = q * np.sign(np.diagonal(r))
        cov1 = (q * np.exp(rng.uniform(np.log(0.25), np.log(4.0), size=d))) @ q.T
        mean1 = rng.standard_normal(d)
        a, b = gaussian_ot_map(
            gaussian.mean.copy(), gaussian.cov.copy(), mean1, 0.5 * (cov1 + cov1.T)
        )
        return KnownOTPair(gaussian, a, b, kind="gaussian")
    source = GaussianMixture.random(3, d, seed=rng, scale=1.5)
    w = rng.standard_normal((d, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    through = source.sample(d, seed=rng)
    c = (w * through).sum(1)
    return KnownOTPair(
        source, 0.3 * np.eye(d), np.zeros(d), w, c, amplitude=2.5, sharpness=4.0, kind="mixture"
    )


# --------------------------------------------------------------------------------------
# 2D toy data sets
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Tabular density-estimation sets (preprocessed MAF files)
# --------------------------------------------------------------------------------------

#: Files each set reads under ``root``, as distributed with MAF (Papamakarios et al. 2017).
TABULAR_FILES: dict[str, tuple[str, ...]] = {
    "bsds300": ("BSDS300/BSDS300.hdf5",),
    "gas": ("gas/ethylene_CO.pickle",),
    "hepmass": ("hepmass/1000_train.csv", "hepmass/1000_test.csv"),
    "miniboone": ("miniboone/data.npy",),
    "power": ("power/data.npy",),
}
_MAF_SOURCE = (
    "the preprocessed files of Papamakarios et al. (2017), https://zenodo.org/record/1161203 "
    "(MAF repository, gpapamak/maf)"
)


@dataclass(frozen=True)
class TabularSplits:
    """Train, validation and test samples of a tabular density-estimation set.

    Attributes:
        name: the set (``"power"``, ``"gas"``, ``"hepmass"``, ``"miniboone"``, ``"bsds300"``).
        train: read-only ``float64`` array of shape ``(n_train, d)``.
        validation: read-only ``float64`` array of shape ``(n_validation, d)``.
        test: read-only ``float64`` array of shape ``(n_test, d)``.

    Example:
        >>> import numpy as np
        >>> from sitransport.datasets import TabularSplits
        >>> s = TabularSplits("toy", np.zeros((4, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
        >>> print(s.dim, s.train.shape)
        2 (4, 2)
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def dim(self) -> int:
        """The dimension ``d``."""
        return int(self.train.shape[1])


def load_tabular(name: str, root: str | os.PathLike | None = None) -> TabularSplits:
    """Load a standard tabular density-estimation set with the standard splits and scaling.

    Reads the preprocessed MAF files from ``root`` (``root / TABULAR_FILES[name]``) and
    reproduces the preprocessing of the MAF code (also used by FFJORD and the stochastic
    interpolant paper), so test NLLs are comparable with published ones:

    * ``power`` (d = 6): ``power/data.npy``; rows shuffled by ``RandomState(42)``, columns 3
      and 1 dropped, uniform jitter added (0.001 on the first column, 0.01 on voltage, 1 on
      the three sub-meterings); last 10% test, last 10% of the rest validation;
      standardised with the mean and std of train + validation.
    * ``gas`` (d = 8): ``gas/ethylene_CO.pickle`` (a pandas DataFrame); ``Meth``, ``Eth``,
      ``Time`` dropped, then repeatedly the first column with more than one correlation
      ``> 0.98`` removed; standardised on all rows; last 10% test, last 10% of the rest
      validation. The pickle is read by a restricted unpickler that only builds pandas and
      numpy containers: loading never executes other code.
    * ``hepmass`` (d = 21): ``hepmass/1000_train.csv`` and ``1000_test.csv``; positive class
      only, label (and the test file's extra last column) dropped; standardised with the
      training mean and std; features whose smallest value occurs more than 5 times in the
      training set removed; last 10% of training as validation.
    * ``miniboone`` (d = 43): ``miniboone/data.npy``; last 10% test, last 10% of the rest
      validation; standardised with train + validation statistics.
    * ``bsds300`` (d = 63): ``BSDS300/BSDS300.hdf5`` with its ``train``, ``validation`` and
      ``test`` arrays, used as stored (needs the optional package ``h5py``).

    Args:
        name: one of ``"bsds300"``, ``"gas"``, ``"hepmass"``, ``"miniboone"``, ``"power"``.
        root: the folder holding the MAF data folders; defaults to the ``SITRANSPORT_DATA``
            environment variable.

    Returns:
        :class:`TabularSplits` of read-only ``float64`` arrays (the MAF code casts to
        float32 after the same preprocessing).

    Raises:
        ValueError: unknown ``name`` (the valid names are listed), no ``root`` and no
            ``SITRANSPORT_DATA``, or a file whose content is not in the expected format.
        FileNotFoundError: an expected file is missing; the message names it and where it was
            looked for.
        ImportError: ``bsds300`` without ``h5py`` installed.

    References:
        Papamakarios, Pavlakou & Murray, *Masked Autoregressive Flow for Density Estimation*
        (NeurIPS 2017), arXiv 1705.07057.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "miniboone").mkdir()
        >>> np.save(root / "miniboone" / "data.npy", np.random.default_rng(0).random((200, 43)))
        >>> s = load_tabular("miniboone", root=root)
        >>> print(s.train.shape, s.validation.shape, s.test.shape)
        (162, 43) (18, 43) (20, 43)
    """
    name = check_choice(name, "tabular data set", TABULAR_FILES)
    if root is None:
        root = os.environ.get("SITRANSPORT_DATA")
        if not root:
            raise ValueError(
                f"load_tabular({name!r}) needs the data folder: pass root=... or set the "
                f"SITRANSPORT_DATA environment variable to the folder holding "
                f"{', '.join(TABULAR_FILES[name])} ({_MAF_SOURCE})"
            )
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
    paths = [Path(root) / rel for rel in TABULAR_FILES[name]]
    for rel, path in zip(TABULAR_FILES[name], paths, strict=True):
        if not path.is_file():
            raise FileNotFoundError(
                f"load_tabular({name!r}) expects the file {rel} under {str(root)!r}, but "
                f"{str(path)!r} does not exist; the data are {_MAF_SOURCE}"
            )
    train, validation, test = _TABULAR_LOADERS[name](*paths)
    arrays = []
    for split, arr in (("train", train), ("validation", validation), ("test", test)):
        arr = np.array(arr, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ValueError(f"{name}: the {split} split has shape {arr.shape}, expected (n, d)")
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{name}: the {split} split holds {int(np.sum(~np.isfinite(arr)))} non-finite "
                f"values after preprocessing (e.g. a constant column); is {paths[0]} the "
                "original MAF file?"
            )
        arrays.append(_readonly(arr))
    return TabularSplits(name, *arrays)


def _split_tail(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MAF's split: the last 10% test, then the last 10% of the rest validation."""
    n_test = int(0.1 * data.shape[0])
    test, rest = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * rest.shape[0])
    return rest[:-n_val], rest[-n_val:], test


def _standardise_by_train_and_validation(
    train: np.ndarray, validation: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pooled = np.vstack((train, validation))
    mu, s = pooled.mean(axis=0), _check_scale(pooled.std(axis=0))
    return (train - mu) / s, (validation - mu) / s, (test - mu) / s


def _check_scale(s: Any) -> Any:
    """Refuse to standardise by a zero standard deviation (a constant column)."""
    values = np.asarray(s, dtype=np.float64)
    if not np.all(values > 0):
        bad = np.flatnonzero(~(values > 0)).tolist()
        raise ValueError(
            f"cannot standardise: column(s) {bad} are constant (standard deviation 0); "
            "the file does not hold the original MAF data"
        )
    return s


def _load_npy(path: Path, name: str, columns: int | None = None) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{name}: {str(path)!r} is not a plain numpy array file: {err}") from None
    if data.ndim != 2 or (columns is not None and data.shape[1] != columns):
        want = f"(n, {columns})" if columns is not None else "(n, d)"
        raise ValueError(f"{name}: {str(path)!r} holds shape {data.shape}, expected {want}")
    return np.asarray(data, dtype=np.float64)


def _load_power(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = _load_npy(path, "power", columns=8)  # gap, grp, voltage, gintens, sm1-3, time
    rng = np.random.RandomState(42)  # the MAF split: legacy generator, fixed seed
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sm_noise = rng.rand(n, 3)
    time_noise = np.zeros((n, 1))
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, time_noise))
    return _standardise_by_train_and_validation(*_split_tail(data))


def _load_miniboone(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = _load_npy(path, "miniboone")
    return _standardise_by_train_and_validation(*_split_tail(data))


def _load_gas(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    data = _restricted_unpickle(path)
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"gas: {str(path)!r} holds a {type(data).__name__}, not a DataFrame")
    missing = [c for c in ("Meth", "Eth", "Time") if c not in data.columns]
    if missing:
        raise ValueError(f"gas: {str(path)!r} lacks the columns {missing}")
    data = data.drop(columns=["Meth", "Eth", "Time"])

    def correlated(df: pd.DataFrame) -> np.ndarray:
        return (df.corr() > 0.98).to_numpy().sum(axis=1)

    counts = correlated(data)
    while np.any(counts > 1):
        data = data.drop(columns=data.columns[np.where(counts > 1)[0][0]])
        counts = correlated(data)
    data = (data - data.mean()) / _check_scale(data.std())
    return _split_tail(data.to_numpy(dtype=np.float64))


def _load_hepmass(train_path: Path, test_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    train = pd.read_csv(train_path, index_col=False)
    test = pd.read_csv(test_path, index_col=False)
    train = train[train[train.columns[0]] == 1].drop(columns=train.columns[0])
    test = test[test[test.columns[0]] == 1].drop(columns=test.columns[0])
    test = test.drop(columns=test.columns[-1])  # the test file has one column too many
    mu, s = train.mean(), _check_scale(train.std())
    train = (train - mu) / s
    test = ((test - mu) / s).reindex(columns=train.columns)
    train_arr, test_arr = train.to_numpy(dtype=np.float64), test.to_numpy(dtype=np.float64)
    # features whose smallest value recurs more than 5 times are (nearly) discrete: drop them
    keep = [j for j, col in enumerate(train_arr.T) if np.sum(col == col.min()) <= 5]
    train_arr, test_arr = train_arr[:, keep], test_arr[:, keep]
    n_val = int(0.1 * train_arr.shape[0])
    return train_arr[:-n_val], train_arr[-n_val:], test_arr


def _load_bsds300(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "load_tabular('bsds300') reads an HDF5 file and needs the optional package h5py: "
            "pip install h5py"
        ) from None
    with h5py.File(path, "r") as f:
        missing = [k for k in ("train", "validation", "test") if k not in f]
        if missing:
            raise ValueError(f"bsds300: {str(path)!r} lacks the datasets {missing}")
        return f["train"][:], f["validation"][:], f["test"][:]


_TABULAR_LOADERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "bsds300": _load_bsds300,
    "gas": _load_gas,
    "hepmass": _load_hepmass,
    "miniboone": _load_miniboone,
    "power": _load_power,
}

# Globals a pickled DataFrame of float columns may name (pandas 0.x to 3.x, numpy 1.x/2.x),
# after the renames below; anything else is refused, so unpickling cannot run other code.
_PICKLE_ALLOWED = {
    ("builtins", "object"),
    ("builtins", "slice"),
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("pandas", "DataFrame"),
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("pandas", "StringDtype"),
    ("pandas.arrays", "StringArray"),
    ("pandas.core.arrays.string_", "StringArray"),
    ("pandas.core.arrays.string_", "StringDtype"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
    # renamed by pandas' own compatibility unpickler (pandas 1.x pickles)
    ("pandas.core.internals.blocks", "new_block"),
    ("pandas.core.indexes.numeric", "Float64Index"),
    ("pandas.core.indexes.numeric", "Int64Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"),
}
_PICKLE_RENAMES = {  # pandas < 1.0 module paths
    ("pandas.indexes.base", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.indexes.base", "Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.index", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.index", "Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.indexes.range", "RangeIndex"): ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.internals", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
}


def _restricted_unpickle(path: Path) -> Any:
    """Unpickle a pandas DataFrame, refusing every global outside :data:`_PICKLE_ALLOWED`."""
    import pickle

    from pandas.compat.pickle_compat import Unpickler

    with open(path, "rb") as f:
        try:
            return restricted_load(
                f,
                _PICKLE_ALLOWED,
                what="a pandas DataFrame of numbers",
                renames=_PICKLE_RENAMES,
                unpickler=Unpickler,
                encoding="latin1",
            )
        except pickle.UnpicklingError:
            raise
        except Exception as err:  # truncated or foreign files raise many types
            raise ValueError(
                f"gas: {str(path)!r} is not a readable pickled DataFrame: "
                f"{type(err).__name__}: {err}"
            ) from None
