r"""The stochastic path: a base path plus a latent noise term :math:`\gamma(t) z` that
vanishes at both ends (:class:`Stochastic`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sitransport._validation import check_choice, check_positive
from sitransport.interpolants.base import OnBase
from sitransport.interpolants.fixed import BASE_PATHS

__all__ = ["Stochastic"]


class Stochastic(OnBase):
    r"""Stochastic interpolant :math:`x_t = \alpha x_0 + \beta x_1 + \gamma(t) z`.

    The base path's :math:`\alpha, \beta` plus a latent noise term that vanishes at both
    ends. Its marginals :math:`\rho_t` have full support for ``0 < t < 1`` even when
    ``rho0`` is low-dimensional (a line, a manifold), which a deterministic flow cannot
    spread (Albergo, Boffi & Vanden-Eijnden, arXiv:2303.08797).

    Families of :math:`\gamma`:

    - ``"sin2"`` (default): :math:`\gamma = a\sin^2(\pi t)`, smooth, bounded derivative;
    - ``"sqrt"``: :math:`\gamma = \sqrt{a\,t(1 - t)}`, whose derivative diverges at the
      ends (the flow-matching loss then has infinite variance near ``t = 0, 1``; the
      quadratic loss with antithetic noise does not).

    Args:
        base: ``"trig"`` or ``"linear"``.
        gamma: ``"sin2"`` or ``"sqrt"``.
        a: noise amplitude (> 0). Default ``1.0``.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Stochastic
        >>> path = Stochastic("linear", "sin2", a=0.5)
        >>> float(path.gamma(torch.tensor(0.5)))
        0.5
    """

    stochastic = True

    def __init__(self, base: str = "linear", gamma: str = "sin2", a: float = 1.0) -> None:
        super().__init__()
        self.base_name = check_choice(base, "base", ("linear", "trig"))
        self.base = BASE_PATHS[base]()
        self.gamma_name = check_choice(gamma, "gamma", ("sin2", "sqrt"))
        self.a = check_positive(a, "a")

    def gamma(self, t: Tensor) -> Tensor:
        if self.gamma_name == "sin2":
            return self.a * torch.sin(math.pi * t) ** 2
        return torch.sqrt(self.a * t * (1.0 - t)).clamp_min(0.0)

    def dgamma(self, t: Tensor) -> Tensor:
        if self.gamma_name == "sin2":
            return self.a * math.pi * torch.sin(2.0 * math.pi * t)
        g = torch.sqrt(self.a * t * (1.0 - t))
        return self.a * (1.0 - 2.0 * t) / (2.0 * g)

    def spec(self) -> dict[str, Any]:
        return {"name": "stochastic", "base": self.base_name, "gamma": self.gamma_name, "a": self.a}

    def extra_repr(self) -> str:
        return f"base={self.base_name!r}, gamma={self.gamma_name!r}, a={self.a}"
