"""Gaussians in any dimension: :class:`GaussianMixture`, :class:`Gaussian` and the sampler
:func:`gaussian`, with exact ``log_prob``, ``score`` and first two moments, and the checks of
their parameters (real finite arrays, symmetric positive definite covariances) that the
other dataset modules share.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sitransport._validation import (
    Seed,
    as_tensor,
    check_covariance,
    check_mixture_weights,
    check_positive,
    check_positive_int,
    numpy_generator,
)

__all__ = ["Gaussian", "GaussianMixture", "gaussian"]

ArrayLike = Any

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def float_array(value: Any, name: str) -> np.ndarray:
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


def readonly(arr: np.ndarray) -> np.ndarray:
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
        w = float_array(weights, "weights")
        mu = float_array(means, "means")
        sig = float_array(covs, "covs")
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
        self._weights = readonly(w)
        self._means = readonly(mu)
        self._covs = readonly(sig)
        self._chols = readonly(chols)
        logdet = 2.0 * np.sum(np.log(np.diagonal(chols, axis1=1, axis2=2)), axis=1)
        d = mu.shape[1]
        # log w_c - (d log 2 pi + log det Sigma_c) / 2, per component
        self._log_coef = readonly(np.log(w) - 0.5 * (d * _LOG_2PI + logdet))
        mean = w @ mu
        second = np.einsum("c,cij->ij", w, sig + np.einsum("ci,cj->cij", mu, mu))
        cov = second - np.outer(mean, mean)
        self._mean = readonly(mean)
        self._cov = readonly(0.5 * (cov + cov.T))
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
    mu = float_array(mean, "mean")
    sig = float_array(cov, "cov")
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
