r"""The quadratic loss of the interpolant velocity, the flow-matching loss and time samplers.

For a velocity field :math:`v` and an interpolant :math:`x_t` the paper's objective is

.. math::

    G(v) = \mathbb{E}_{t, x_0, x_1}\big[\,|v_t(x_t)|^2 - 2\, \partial_t x_t \cdot v_t(x_t)\big],

minimised by :math:`v_t(x) = \mathbb{E}[\partial_t x_t \mid x_t = x]`. Since
:math:`G(v) = \mathbb{E}|v - \partial_t x_t|^2 - \mathbb{E}|\partial_t x_t|^2`, it differs
from the flow-matching loss by a constant: both have the same gradients; both are reported.
At the minimiser :math:`G = -\int_0^1 \mathbb{E}_{\rho_t}|v_t|^2 dt`, minus the kinetic energy
of the path (for uniform time sampling).

References:
    Albergo & Vanden-Eijnden, arXiv:2209.15571, Eq. (10).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special
from torch import Tensor

from sitransport._validation import check_fraction, check_positive, resolve
from sitransport.interpolants import Interpolant

__all__ = [
    "AtZeroTime",
    "BETA_RANGE",
    "BetaTime",
    "LossOutput",
    "TimeSampler",
    "UniformTime",
    "denoiser_loss",
    "get_time_sampler",
    "quadratic_loss",
]


@dataclass(frozen=True)
class LossOutput:
    """Batch losses (scalars). ``quadratic`` is the paper's G, ``flow_matching`` the
    mean squared error to the velocity target; ``flow_matching - quadratic`` is the batch
    mean of ``|dI/dt|^2``, a constant of the data.

    Attributes:
        quadratic: the paper's quadratic loss G, batch mean, a scalar tensor.
        flow_matching: the batch mean of ``|v(x_t) - dI/dt|^2``, a scalar tensor.
        kinetic: the batch mean of ``|v(x_t)|^2`` (at the optimum, a Monte Carlo estimate of the
            path's kinetic energy, for uniform times), a scalar tensor.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.losses import quadratic_loss
        >>> x0, x1 = torch.zeros(4, 2), torch.full((4, 2), 3.0)  # dI/dt = (3, 3)
        >>> out = quadratic_loss(lambda x, t: torch.zeros_like(x), Linear(), x0, x1, torch.rand(4))
        >>> float(out.quadratic), float(out.flow_matching), float(out.kinetic)
        (0.0, 18.0, 0.0)
    """

    quadratic: Tensor
    flow_matching: Tensor
    kinetic: Tensor


def quadratic_loss(
    velocity: Callable[[Tensor, Tensor], Tensor],
    interpolant: Interpolant,
    x0: Tensor,
    x1: Tensor,
    t: Tensor,
    z: Tensor | None = None,
) -> LossOutput:
    r"""Monte Carlo estimate of G (and of the flow-matching loss) on one batch.

    Args:
        velocity: ``v(x, t)`` mapping ``(n, ...)`` and ``(n,)`` to ``(n, ...)``.
        interpolant: the path :math:`x_t`.
        x0: samples of rho0, shape ``(n, ...)``; paired with ``x1`` by the coupling.
        x1: samples of rho1, same shape.
        t: times, shape ``(n,)``.
        z: noise for stochastic interpolants. Default ``None``.

    Returns:
        :class:`LossOutput` with both losses averaged over the batch and summed over dimensions.

    Example:
        >>> from sitransport.interpolants import Linear
        >>> x0, x1 = torch.zeros(4, 2), torch.ones(4, 2)
        >>> out = quadratic_loss(lambda x, t: torch.ones_like(x), Linear(), x0, x1, torch.rand(4))
        >>> float(out.quadratic), float(out.flow_matching)
        (-2.0, 0.0)
    """
    xt = interpolant.interpolate(x0, x1, t, z)
    target = interpolant.velocity_target(x0, x1, t, z)
    v = velocity(xt, t)
    v_flat, target_flat = v.flatten(1), target.flatten(1)
    quadratic = (v_flat.pow(2) - 2.0 * target_flat * v_flat).sum(1).mean()
    flow_matching = (v_flat - target_flat).pow(2).sum(1).mean()
    return LossOutput(quadratic, flow_matching, v_flat.pow(2).sum(1).mean())


def denoiser_loss(
    denoiser: Callable[[Tensor, Tensor], Tensor],
    interpolant: Interpolant,
    x0: Tensor,
    x1: Tensor,
    t: Tensor,
    z: Tensor,
) -> Tensor:
    r"""Noise-denoiser loss :math:`\mathbb{E}|\eta_z(x_t, t) - z|^2` of a stochastic interpolant,
    minimised by :math:`\eta_z(x) = \mathbb{E}[z | x_t = x] = -\gamma\nabla\log\rho_t(x)`.

    Args:
        denoiser: ``eta_z(x, t)`` mapping ``(n, ...)`` and ``(n,)`` to ``(n, ...)``.
        interpolant: a stochastic interpolant (:class:`~sitransport.interpolants.Stochastic`).
        x0: samples of rho0, shape ``(n, ...)``.
        x1: samples of rho1, same shape.
        t: times, shape ``(n,)``.
        z: the standard normal noise of :math:`x_t`, same shape as ``x0``.

    Returns:
        The batch mean of :math:`|\eta_z(x_t, t) - z|^2` (summed over dimensions), a scalar.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Stochastic
        >>> x0, x1, z = torch.zeros(4, 2), torch.ones(4, 2), torch.ones(4, 2)
        >>> t = torch.full((4,), 0.5)
        >>> zero = lambda x, t: torch.zeros_like(x)
        >>> float(denoiser_loss(zero, Stochastic(), x0, x1, t, z))  # E|z|^2
        2.0
    """
    xt = interpolant.interpolate(x0, x1, t, z)
    return (denoiser(xt, t) - z).flatten(1).pow(2).sum(1).mean()


class TimeSampler(abc.ABC):
    """Abstract distribution of training times on ``[0, 1]``.

    Subclasses implement :meth:`icdf` (abstract; :meth:`spec` only to be saved by name);
    :meth:`sample` draws ``t = icdf(u)`` with ``u`` uniform, or with ``antithetic=True`` the
    pairs ``icdf(u)`` and ``icdf(1 - u)`` (both marginally correct, negatively correlated:
    lower variance of the batch loss).

    Example:
        >>> import torch
        >>> from sitransport.losses import BetaTime
        >>> g = torch.Generator().manual_seed(0)
        >>> t = BetaTime(2.0, 2.0).sample(6, generator=g, antithetic=True)
        >>> t.shape
        torch.Size([6])
        >>> bool(((t > 0) & (t < 1)).all())
        True
    """

    @abc.abstractmethod
    def icdf(self, u: Tensor) -> Tensor:
        """Inverse CDF: the time at quantile ``u`` (float64 tensor of values in ``[0, 1]``).

        Args:
            u: quantiles, a float64 tensor of any shape with values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> u = torch.tensor([0.1, 0.5], dtype=torch.float64)
            >>> UniformTime().icdf(u)
            tensor([0.1000, 0.5000], dtype=torch.float64)
            >>> float(BetaTime(2.0, 2.0).icdf(u)[1])  # the median of a symmetric Beta
            0.5
        """
        raise NotImplementedError

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        antithetic: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Draw ``n`` times of shape ``(n,)``.

        Args:
            n: number of times.
            generator: random source. Default ``None``.
            antithetic: draw pairs ``icdf(u)``, ``icdf(1 - u)``. Default ``False``.
            device: device of the result. Default ``"cpu"``.
            dtype: dtype of the result. Default ``torch.float32``.

        Example:
            >>> import torch
            >>> g = torch.Generator().manual_seed(0)
            >>> t = UniformTime().sample(4, generator=g, antithetic=True, dtype=torch.float64)
            >>> t[:2] + t[2:]  # u and 1 - u
            tensor([1., 1.], dtype=torch.float64)
        """
        m = (n + 1) // 2 if antithetic else n
        u = torch.rand(m, generator=generator, dtype=torch.float64)
        if antithetic:
            u = torch.cat([u, 1.0 - u])[:n]
        return self.icdf(u).to(device=device, dtype=dtype)

    def spec(self) -> dict[str, Any]:
        """A plain-data description from which :func:`get_time_sampler` rebuilds this object.

        Example:
            >>> BetaTime(2.0, 5.0).spec()
            {'name': 'beta', 'a': 2.0, 'b': 5.0}
            >>> get_time_sampler(UniformTime().spec())
            UniformTime()
        """
        raise NotImplementedError


class UniformTime(TimeSampler):
    """Uniform times on ``[0, 1]`` (the paper's choice).

    Example:
        >>> import torch
        >>> from sitransport.losses import UniformTime
        >>> g = torch.Generator().manual_seed(0)
        >>> t = UniformTime().sample(1000, generator=g)
        >>> t.shape, t.dtype, round(float(t.mean()), 1)
        (torch.Size([1000]), torch.float32, 0.5)
    """

    def icdf(self, u: Tensor) -> Tensor:
        return u

    def spec(self) -> dict[str, Any]:
        return {"name": "uniform"}

    def __repr__(self) -> str:
        return "UniformTime()"


#: Shape parameters a Beta time sampler accepts; outside them its times degenerate (see
#: :class:`BetaTime`).
BETA_RANGE = (1e-3, 1e3)


def _beta_parameter(value: Any, name: str) -> float:
    """``value`` as a float if it is a number in :data:`BETA_RANGE`; otherwise raise."""
    v = check_positive(value, f"time_sampler Beta parameter {name}")
    low, high = BETA_RANGE
    if not low <= v <= high:
        raise ValueError(
            f"time_sampler Beta parameter {name} must be in [{low:g}, {high:g}], got {value!r}: "
            "below, the times pile up at 0 or 1 (the median of Beta(1e-3, 1) is 0.5**1000, "
            "about 1e-301, 0 in float32); above, at a single time (Beta(1e3, 1e3) has a "
            "standard deviation of 0.011)"
        )
    return v


class BetaTime(TimeSampler):
    """Beta(a, b) times: reweights the loss toward one end (``a < b``: toward ``t = 0``).

    Args:
        a: first shape parameter, in ``[1e-3, 1e3]``. Default ``1.0``.
        b: second shape parameter, in ``[1e-3, 1e3]``. Default ``1.0``.

    Raises:
        ValueError: ``a`` or ``b`` outside ``[1e-3, 1e3]`` (:data:`BETA_RANGE`), where the
            times degenerate: below, they pile up at ``0`` or ``1`` (the median of
            ``Beta(1e-3, 1)`` is ``0.5**1000``, about ``1e-301``: ``0`` in float32); above,
            at a single time (``Beta(1e3, 1e3)`` has a standard deviation of ``0.011``).

    Example:
        >>> import torch
        >>> from sitransport.losses import BetaTime
        >>> g = torch.Generator().manual_seed(0)
        >>> t = BetaTime(1.0, 3.0).sample(2000, generator=g)
        >>> round(float(t.mean()), 2)  # a / (a + b)
        0.25
    """

    def __init__(self, a: float = 1.0, b: float = 1.0) -> None:
        self.a = _beta_parameter(a, "a")
        self.b = _beta_parameter(b, "b")

    def icdf(self, u: Tensor) -> Tensor:
        return torch.from_numpy(special.betaincinv(self.a, self.b, u.numpy()).astype(np.float64))

    def spec(self) -> dict[str, Any]:
        return {"name": "beta", "a": self.a, "b": self.b}

    def __repr__(self) -> str:
        return f"BetaTime(a={self.a}, b={self.b})"


class AtZeroTime(TimeSampler):
    r"""A point mass ``weight`` at ``t = 0``, the rest uniform on ``[0, 1]``: the times of a
    one-step model (:func:`~sitransport.distill`).

    For pairs ``(x0, T(x0))`` of a map and the linear interpolant, ``x_t = x0`` at ``t = 0``
    and the minimiser of the loss there is :math:`v_0(x_0) = T(x_0) - x_0` exactly: one Euler
    step from ``t = 0`` is the map. Uniform times almost never visit ``t = 0``; the point mass
    trains that slice directly (the rectified-flow paper's distillation step, Liu et al.,
    arXiv:2209.03003), while the uniform rest keeps the velocity a flow at every time.

    Args:
        weight: the fraction of times at exactly ``0``, in ``[0, 1)``. Default ``0.5``.

    Raises:
        TypeError: ``weight`` is not a number.
        ValueError: ``weight`` outside ``[0, 1)`` (``1`` would leave the velocity untrained at
            every ``t > 0``, and the flow's ODE meaningless).

    Example:
        >>> import torch
        >>> from sitransport.losses import AtZeroTime
        >>> g = torch.Generator().manual_seed(0)
        >>> t = AtZeroTime(0.25).sample(4000, generator=g)
        >>> round(float((t == 0).float().mean()), 2), bool((t <= 1).all())
        (0.25, True)
    """

    def __init__(self, weight: float = 0.5) -> None:
        self.weight = check_fraction(weight, "time_sampler weight")

    def icdf(self, u: Tensor) -> Tensor:
        w = self.weight
        return ((u - w) / (1.0 - w)).clamp(min=0.0)

    def spec(self) -> dict[str, Any]:
        return {"name": "at_zero", "weight": self.weight}

    def __repr__(self) -> str:
        return f"AtZeroTime(weight={self.weight})"


_SAMPLERS: dict[str, Callable[..., TimeSampler]] = {
    "at_zero": AtZeroTime,
    "beta": BetaTime,
    "uniform": UniformTime,
}


def get_time_sampler(spec: str | dict[str, Any] | TimeSampler) -> TimeSampler:
    """Resolve ``"uniform"``, ``"beta"``, ``"at_zero"``, ``{"name": "beta", "a": 2, "b": 2}``
    or an instance.

    Args:
        spec: a sampler name, a dict with ``"name"`` and the sampler's settings, or a
            :class:`TimeSampler` (returned as is).

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a dict with keys the
            sampler does not take (named, with the valid keys).
        TypeError: anything else.

    Example:
        >>> get_time_sampler("uniform")
        UniformTime()
        >>> get_time_sampler({"name": "beta", "a": 2, "b": 2})
        BetaTime(a=2.0, b=2.0)
    """
    return resolve(spec, _SAMPLERS, "time_sampler", TimeSampler)
