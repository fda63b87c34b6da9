"""Sources of samples for the two ends of a flow: Gaussian, torch Distribution, or samples.

A ``Density`` end can be drawn from; ``log_prob`` exists only where a density is known
(``"gaussian"`` and torch distributions), not for an empirical set of samples.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor

from sitransport._validation import as_tensor

__all__ = ["Density", "DistributionDensity", "EmpiricalDensity", "StandardNormal", "as_density"]


class Density(abc.ABC):
    """Abstract end of a flow: :meth:`sample` and, when known, :meth:`log_prob`.

    Subclasses implement :meth:`sample` and :meth:`spec` and set :attr:`shape`; those with a
    known density set :attr:`has_density` and override :meth:`log_prob`.

    Example:
        >>> import torch
        >>> from sitransport.ends import as_density
        >>> end = as_density(torch.zeros(10, 3), "rho1")
        >>> type(end).__name__, end.shape, end.has_density
        ('EmpiricalDensity', (3,), False)
    """

    #: Whether :meth:`log_prob` is available.
    has_density: bool = False
    shape: tuple[int, ...]

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws, float64 tensor of shape ``(n, *shape)``, from ``generator``.

        Args:
            n: the number of draws.
            generator: the random source of the draws.

        Example:
            >>> StandardNormal((2,)).sample(4, torch.Generator().manual_seed(0)).shape
            torch.Size([4, 2])
        """
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density at ``x`` of shape ``(n, *shape)``, shape ``(n,)``; only where
        :attr:`has_density` (others raise ``NotImplementedError``).

        Args:
            x: points, a tensor of shape ``(n, *shape)`` in the density's dtype and device.

        Example:
            >>> x = torch.zeros(1, 2, dtype=torch.float64)
            >>> round(float(StandardNormal((2,)).log_prob(x)[0]), 4)  # -log(2 pi)
            -1.8379
            >>> EmpiricalDensity(torch.zeros(5, 2)).has_density
            False
        """
        raise NotImplementedError

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """A plain-data description of this end (what saved flows record).

        Example:
            >>> StandardNormal((2,)).spec()
            {'kind': 'gaussian', 'shape': [2]}
        """
        raise NotImplementedError

    @property
    def kind(self) -> str:
        """Which end this is, as :meth:`spec` names it (``"gaussian"``, ``"distribution"``,
        ``"samples"``, ...)."""
        return self.spec()["kind"]


class StandardNormal(Density):
    """``N(0, I)`` over samples of shape ``shape`` (``(d,)`` for vectors).

    Args:
        shape: the per-sample shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.

    Example:
        >>> import torch
        >>> from sitransport.ends import StandardNormal
        >>> StandardNormal((3,)).sample(2, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3])
    """

    has_density = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(s) for s in shape)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` standard normal draws of shape ``(n, *shape)``, float64.

        Args:
            n: the number of draws.
            generator: the random source of the draws.

        Example:
            >>> import torch
            >>> from sitransport.ends import StandardNormal
            >>> StandardNormal((2,)).sample(3, torch.Generator().manual_seed(0)).dtype
            torch.float64
        """
        return torch.randn((n, *self.shape), generator=generator, dtype=torch.float64)

    def log_prob(self, x: Tensor) -> Tensor:
        d = math.prod(self.shape)
        return -0.5 * x.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)

    def spec(self) -> dict[str, Any]:
        return {"kind": "gaussian", "shape": list(self.shape)}


class DistributionDensity(Density):
    """A ``torch.distributions.Distribution`` with event shape ``shape``.

    torch distributions draw from the global RNG; sampling here runs inside
    ``torch.random.fork_rng`` seeded from the caller's generator, so results are reproducible
    and the global RNG state is left untouched.

    Args:
        dist: a distribution with an empty ``batch_shape`` and an event shape of at least one
            dimension.
        name: the argument's name, for error messages (``"rho0"`` or ``"rho1"``).

    Raises:
        ValueError: a batch of distributions, or a scalar event shape.

    Example:
        >>> import torch
        >>> from sitransport.ends import DistributionDensity
        >>> normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
        >>> DistributionDensity(normal, "rho0").sample(3, torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
    """

    has_density = True

    def __init__(self, dist: torch.distributions.Distribution, name: str) -> None:
        if dist.batch_shape != torch.Size([]):
            raise ValueError(
                f"{name} must be a distribution with an empty batch_shape (one distribution "
                f"over vectors, e.g. MultivariateNormal or Independent(Normal, 1)), got "
                f"batch_shape={tuple(dist.batch_shape)}, event_shape={tuple(dist.event_shape)}"
            )
        if len(dist.event_shape) == 0:
            raise ValueError(
                f"{name} must have an event_shape of at least one dimension, got a scalar "
                "distribution; wrap it, e.g. Independent(Normal(loc, scale), 1) with loc of "
                "shape (d,)"
            )
        self.dist = dist
        self.shape = tuple(dist.event_shape)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws of the distribution, float64, reproducible from ``generator``.

        Args:
            n: the number of draws.
            generator: seeds the draws (the global RNG state is left untouched).

        Example:
            >>> import torch
            >>> from sitransport.ends import DistributionDensity
            >>> normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
            >>> end = DistributionDensity(normal, "rho0")
            >>> a = end.sample(2, torch.Generator().manual_seed(1))
            >>> torch.equal(a, end.sample(2, torch.Generator().manual_seed(1)))  # reproducible
            True
        """
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dist.sample((n,)).to(torch.float64)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.dist.log_prob(x)

    def spec(self) -> dict[str, Any]:
        return {"kind": "distribution", "shape": list(self.shape), "repr": repr(self.dist)}


class EmpiricalDensity(Density):
    """The empirical measure of samples; :meth:`sample` resamples them with replacement.

    Args:
        samples: a tensor of shape ``(n, *shape)``.

    Example:
        >>> import torch
        >>> from sitransport.ends import EmpiricalDensity
        >>> end = EmpiricalDensity(torch.arange(4.0).reshape(4, 1))
        >>> end.shape, end.has_density
        ((1,), False)
    """

    def __init__(self, samples: Tensor) -> None:
        self.samples = samples
        self.shape = tuple(samples.shape[1:])

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` rows of the samples, drawn uniformly with replacement.

        Args:
            n: the number of draws.
            generator: the random source of the row indices.

        Example:
            >>> import torch
            >>> from sitransport.ends import EmpiricalDensity
            >>> end = EmpiricalDensity(torch.tensor([[1.0], [2.0]]))
            >>> rows = end.sample(8, torch.Generator().manual_seed(0))
            >>> rows.shape, set(rows.flatten().tolist()) <= {1.0, 2.0}
            (torch.Size([8, 1]), True)
        """
        idx = torch.randint(0, self.samples.shape[0], (n,), generator=generator)
        return self.samples[idx]

    def spec(self) -> dict[str, Any]:
        return {"kind": "samples", "shape": list(self.shape), "n": int(self.samples.shape[0])}


def as_density(rho: Any, name: str, *, shape: tuple[int, ...] | None = None) -> Density:
    """Resolve ``"gaussian"``, a torch Distribution, an object with ``to_torch()`` (e.g.
    :class:`sitransport.datasets.GaussianMixture`) or an ``(n, d)`` array of samples.

    Args:
        rho: ``"gaussian"``, a torch distribution, an object with ``to_torch()``, or samples
            of shape ``(n, d)`` or ``(n, c, h, w)`` (numpy, torch or xarray).
        name: the argument's name, for error messages (``"rho0"`` or ``"rho1"``).
        shape: the per-sample shape for ``"gaussian"``, taken from the other end. Default
            ``None`` (required for ``"gaussian"``).

    Raises:
        ValueError: another string, ``"gaussian"`` without ``shape``, or bad samples.

    Example:
        >>> from sitransport.ends import as_density
        >>> as_density("gaussian", "rho0", shape=(2,)).spec()
        {'kind': 'gaussian', 'shape': [2]}
    """
    if isinstance(rho, str):
        if rho != "gaussian":
            raise ValueError(
                f"{name} must be samples of shape (n, d), 'gaussian' or a torch Distribution; "
                f"got the string {rho!r} (for a built-in dataset use "
                f"sitransport.datasets.sample({rho!r}, n))"
            )
        if shape is None:
            raise ValueError(
                f"{name}='gaussian' needs samples at the other end to fix the dimension"
            )
        return StandardNormal(shape)
    if hasattr(rho, "to_torch") and not isinstance(rho, torch.Tensor):
        rho = rho.to_torch()
    if isinstance(rho, torch.distributions.Distribution):
        return DistributionDensity(rho, name)
    x, _ = as_tensor(rho, name, ndim=(2, 4), min_samples=2)
    return EmpiricalDensity(x.to(torch.float64))
