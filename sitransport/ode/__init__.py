r"""ODE integration on torchdiffeq and divergence estimators for the change of variables.

Transport solves :math:`\dot X_t = v_t(X_t)` forward (``0 -> 1``) or backward (``1 -> 0``).
Log-densities integrate the divergence along the way,

.. math::

    \log\rho_1(x) = \log\rho_0(X_{1\to0}(x)) - \int_0^1 \nabla\cdot v_t(X_{1\to t}(x))\, dt,

with the divergence exact (autograd trace, ``d`` backward passes) or estimated with
Hutchinson's trick :math:`\nabla\cdot v = \mathbb{E}[\epsilon^\top \partial_x v\, \epsilon]`
with Rademacher probes held fixed along each trajectory (an unbiased estimate of the integral).

References:
    Chen et al., Neural ODEs, arXiv:1806.07366; Grathwohl et al., FFJORD, arXiv:1810.01367.
"""

from __future__ import annotations

from sitransport.ode.divergence import divergence_exact, divergence_hutchinson, probe_stderr
from sitransport.ode.logdet import integrate_energy, integrate_logdet
from sitransport.ode.options import ORDERS as ORDERS  # of the former module
from sitransport.ode.options import SOLVERS as SOLVERS
from sitransport.ode.options import STAGES as STAGES
from sitransport.ode.options import EnergyResult, LogDetResult, ODEOptions, ODEResult
from sitransport.ode.options import Velocity as Velocity
from sitransport.ode.solve import integrate

__all__ = [
    "EnergyResult",
    "LogDetResult",
    "ODEOptions",
    "ODEResult",
    "divergence_exact",
    "divergence_hutchinson",
    "integrate",
    "integrate_energy",
    "integrate_logdet",
    "probe_stderr",
]
