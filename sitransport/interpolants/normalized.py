r"""Any path carried into normalised coordinates :math:`u = (x - m) / s`
(:class:`Normalized`): the same path as the caller's, written in the coordinates the network
trains in."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sitransport.interpolants.base import Interpolant, OnBase

__all__ = ["Normalized"]


class Normalized(OnBase):
    r"""A path in normalised coordinates :math:`u = (x - m) / s`: the *same* path in ``x``.

    If :math:`x_t = \alpha x_0 + \beta x_1 + \gamma z` in the caller's coordinates, then
    :math:`u_t = (x_t - m) / s` is

    .. math::

        u_t = \alpha u_0 + \beta u_1 + (\alpha + \beta - 1)\, m / s + (\gamma / s)\, z,

    with time derivative :math:`\dot\alpha u_0 + \dot\beta u_1 + (\dot\alpha +
    \dot\beta)\, m / s + (\dot\gamma / s)\, z`. Training a velocity on this path in
    ``u`` learns ``v_u = v_x / s``: the velocity, score and marginals of the path the caller
    named, whatever the normalisation (the extra term vanishes when
    :math:`\alpha + \beta = 1`, e.g. ``linear``). The wrapped path's parameters (learnable
    families) are this module's parameters.

    Args:
        path: the interpolant in the caller's coordinates.
        shift: ``m``, shape of one sample.
        scale: ``s > 0``, a scalar.

    Example:
        The midpoint of ``trig`` is :math:`(x_0 + x_1)/\sqrt 2` in ``x``; in ``u`` it is
        the image of that point, not :math:`(u_0 + u_1)/\sqrt 2`:

        >>> import torch
        >>> from sitransport.interpolants import Normalized, Trig
        >>> shift, scale = torch.tensor([3.0, 3.0]), 2.0
        >>> u_path = Normalized(Trig(), shift, scale)
        >>> x0, x1 = torch.tensor([[1.0, 1.0]]), torch.tensor([[5.0, 5.0]])
        >>> xt = Trig().interpolate(x0, x1, 0.5)
        >>> ut = u_path.interpolate((x0 - shift) / scale, (x1 - shift) / scale, 0.5)
        >>> torch.allclose(ut, (xt - shift) / scale)
        True
    """

    shift: Tensor  # buffer: the normalisation's shift m

    def __init__(self, path: Interpolant, shift: Tensor, scale: float) -> None:
        super().__init__()
        if not isinstance(path, Interpolant):
            raise TypeError(f"path must be an Interpolant, got {type(path).__name__}")
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise ValueError(f"scale must be finite and > 0, got {scale!r}")
        self.base = path  # its parameters (learnable paths) are this module's
        self.scale = float(scale)
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float64))
        self.stochastic = path.stochastic
        self.spatially_linear = path.spatially_linear

    def gamma(self, t: Tensor) -> Tensor:
        return self.base.gamma(t) / self.scale

    def dgamma(self, t: Tensor) -> Tensor:
        return self.base.dgamma(t) / self.scale

    def interpolate(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        # written through the caller's coordinates, so any path (also a spatially
        # nonlinear one) is carried over exactly
        xt = self.base.interpolate(self._decode(x0), self._decode(x1), t, z)
        return (xt - self.shift.to(xt)) / self.scale

    def velocity_target(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        return self.base.velocity_target(self._decode(x0), self._decode(x1), t, z) / self.scale

    def _decode(self, u: Tensor) -> Tensor:
        return u * self.scale + self.shift.to(u)

    def spec(self) -> dict[str, Any]:
        return self.base.spec()

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}"
