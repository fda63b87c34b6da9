r"""The fixed paths: ``linear``, ``trig`` and :class:`Custom` (user callables).

They carry no parameters; ``linear`` and ``trig`` are also the base paths that the learnable
and stochastic families perturb (``BASE_PATHS``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sitransport.interpolants.base import Interpolant, derivative

# BASE_PATHS is shared with the learnable and stochastic families, not public API
__all__ = ["Custom", "Linear", "Trig"]


class Linear(Interpolant):
    r"""Linear interpolant :math:`\alpha = 1 - t`, :math:`\beta = t` (constant velocity).

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> path = Linear()
        >>> x0, x1 = torch.zeros(1, 2), torch.tensor([[2.0, -2.0]])
        >>> path.interpolate(x0, x1, 0.5), path.velocity_target(x0, x1, 0.5)
        (tensor([[ 1., -1.]]), tensor([[ 2., -2.]]))
    """

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def beta(self, t: Tensor) -> Tensor:
        return t

    def dalpha(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -1.0)

    def dbeta(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def spec(self) -> dict[str, Any]:
        return {"name": "linear"}


class Trig(Interpolant):
    r"""Trigonometric interpolant :math:`\alpha = \cos(\pi t/2)`, :math:`\beta = \sin(\pi t/2)`.

    The paper's default: for independent Gaussian ``x0, x1`` it keeps the variance of ``x_t``
    constant (:math:`\alpha^2 + \beta^2 = 1`), and
    :math:`\beta\dot\alpha - \dot\beta\alpha = -\pi/2`.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Trig
        >>> path, t = Trig(), torch.linspace(0, 1, 5)
        >>> torch.allclose(path.alpha(t) ** 2 + path.beta(t) ** 2, torch.ones(5))
        True
        >>> wronskian = path.beta(t) * path.dalpha(t) - path.dbeta(t) * path.alpha(t)
        >>> [round(w, 4) for w in wronskian.tolist()]  # -pi / 2 at every time
        [-1.5708, -1.5708, -1.5708, -1.5708, -1.5708]
    """

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def beta(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def dalpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def dbeta(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def spec(self) -> dict[str, Any]:
        return {"name": "trig"}


class Custom(Interpolant):
    r"""Interpolant from user callables ``alpha(t)`` and ``beta(t)``.

    The callables take and return tensors elementwise, written in torch operations so that
    their derivatives come from forward-mode autodiff (or pass ``dalpha``/``dbeta``).
    Boundary values are checked on construction.

    Args:
        alpha: callable with ``alpha(0) = 1``, ``alpha(1) = 0``.
        beta: callable with ``beta(0) = 0``, ``beta(1) = 1``.
        dalpha: optional closed-form derivative of ``alpha``. Default ``None``.
        dbeta: optional closed-form derivative of ``beta``. Default ``None``.

    Raises:
        TypeError: an argument is not callable.
        ValueError: a boundary value is violated.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Custom
        >>> path = Custom(lambda t: (1 - t) ** 2, lambda t: 1 - (1 - t) ** 2)
        >>> float(path.dbeta(torch.tensor(0.0)))
        2.0
    """

    def __init__(
        self,
        alpha: Callable[[Tensor], Tensor],
        beta: Callable[[Tensor], Tensor],
        dalpha: Callable[[Tensor], Tensor] | None = None,
        dbeta: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        for name, f in (("alpha", alpha), ("beta", beta), ("dalpha", dalpha), ("dbeta", dbeta)):
            if f is not None and not callable(f):
                raise TypeError(f"{name} must be callable, got {type(f).__name__}")
        self._alpha, self._beta, self._dalpha, self._dbeta = alpha, beta, dalpha, dbeta
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
        for name, f, want in (("alpha", alpha, (1.0, 0.0)), ("beta", beta, (0.0, 1.0))):
            got = f(ends)
            if not isinstance(got, Tensor) or got.shape != ends.shape:
                raise TypeError(
                    f"{name} must map a tensor of times elementwise to a tensor of the same "
                    f"shape; for t of shape (2,) it returned {type(got).__name__}"
                    + (f" of shape {tuple(got.shape)}" if isinstance(got, Tensor) else "")
                )
            if not torch.allclose(got, torch.tensor(want, dtype=got.dtype), atol=1e-6):
                raise ValueError(
                    f"{name} must satisfy {name}(0) = {want[0]:g} and {name}(1) = {want[1]:g}, "
                    f"got {name}(0) = {float(got[0]):.6g}, {name}(1) = {float(got[1]):.6g}"
                )

    def alpha(self, t: Tensor) -> Tensor:
        return self._alpha(t)

    def beta(self, t: Tensor) -> Tensor:
        return self._beta(t)

    def dalpha(self, t: Tensor) -> Tensor:
        return self._dalpha(t) if self._dalpha is not None else derivative(self._alpha, t)

    def dbeta(self, t: Tensor) -> Tensor:
        return self._dbeta(t) if self._dbeta is not None else derivative(self._beta, t)


#: The base paths by name: what ``base="linear" | "trig"`` of the learnable and stochastic
#: families (and :func:`~sitransport.interpolants.get_interpolant`) builds.
BASE_PATHS: dict[str, Callable[..., Interpolant]] = {"linear": Linear, "trig": Trig}
