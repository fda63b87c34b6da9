r"""``TransportFlow``: a learned velocity field and everything one does with it.

A flow holds a velocity network :math:`v_t` in *normalised coordinates*
:math:`z = (x - m) / s` (one shift ``m`` and one scalar scale ``s`` shared by both ends, so
squared-Euclidean optimal transport and path energies map exactly: distances scale by ``s``).
The ODE :math:`\dot z = v_t(z)` transports ``rho0`` at ``t = 0`` to ``rho1`` at ``t = 1``.
Public methods take and return samples in the caller's coordinates and array type
(numpy -> numpy, torch -> torch on the same device and dtype, xarray -> xarray).
"""

from __future__ import annotations

from sitransport.ends.normalization import Normalization
from sitransport.flow.results import LogProbEstimate, PathEnergy, TransportResult
from sitransport.flow.transport import TransportFlow

__all__ = ["LogProbEstimate", "Normalization", "PathEnergy", "TransportFlow", "TransportResult"]
