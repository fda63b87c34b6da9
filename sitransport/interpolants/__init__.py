r"""Spatially linear interpolants between two densities.

An interpolant connects a sample ``x0 ~ rho0`` to a sample ``x1 ~ rho1``:

.. math::

    x_t = \alpha(t)\, x_0 + \beta(t)\, x_1 \;[+\, \gamma(t)\, z], \qquad z \sim N(0, I),

with :math:`\alpha(0) = \beta(1) = 1`, :math:`\alpha(1) = \beta(0) = 0` and
:math:`\gamma(0) = \gamma(1) = 0`. The velocity target of the quadratic loss is the time
derivative :math:`\partial_t x_t = \dot\alpha x_0 + \dot\beta x_1 + \dot\gamma z`.

Families: ``linear`` (:math:`\alpha = 1 - t, \beta = t`), ``trig`` (the paper's default,
:math:`\alpha = \cos(\pi t / 2), \beta = \sin(\pi t / 2)`) and :class:`Custom` for user
callables. Interpolants are ``torch.nn.Module`` so that learnable families (Fourier paths)
carry parameters; the deterministic ones have none.

References:
    Albergo & Vanden-Eijnden, Building Normalizing Flows with Stochastic Interpolants,
    ICLR 2023, arXiv:2209.15571.
"""

from __future__ import annotations

from sitransport.interpolants.base import Interpolant, broadcast_coefficient
from sitransport.interpolants.fixed import Custom, Linear, Trig
from sitransport.interpolants.learnable import Fourier, NeuralPath
from sitransport.interpolants.normalized import Normalized
from sitransport.interpolants.registry import get_interpolant, interpolant_names, read_interpolant
from sitransport.interpolants.stochastic import Stochastic

__all__ = [
    "Custom",
    "Fourier",
    "Interpolant",
    "Linear",
    "NeuralPath",
    "Normalized",
    "Stochastic",
    "Trig",
    "broadcast_coefficient",
    "get_interpolant",
    "interpolant_names",
    "read_interpolant",
]
