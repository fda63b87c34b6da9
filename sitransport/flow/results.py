"""The records :class:`~sitransport.flow.TransportFlow` returns: transported samples, path
energies and log-density estimates, each with the solver's function evaluations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LogProbEstimate", "PathEnergy", "TransportResult"]


@dataclass(frozen=True)
class TransportResult:
    """Transported samples (caller's array type) and the ODE's function evaluations.

    Attributes:
        x: transported samples, shape ``(n, d)``, the caller's array type.
        nfe: velocity evaluations of the ODE per batch, averaged over batches.

    Example:
        >>> import numpy as np
        >>> from sitransport.flow import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> result = flow.transport(np.ones((3, 2)))
        >>> type(result.x).__name__, result.x.shape, result.nfe > 0
        ('ndarray', (3, 2), True)
    """

    x: Any
    nfe: float


@dataclass(frozen=True)
class PathEnergy:
    r"""What :meth:`TransportFlow.path_energy` returns: end points ``x`` (caller's array type),
    per-sample path energies :math:`\int_0^1 |v_t(X_t)|^2 dt` (caller's coordinates, shape
    ``(n,)``) and the ODE's function evaluations.

    Attributes:
        x: end points of the paths, shape ``(n, d)``, the caller's array type.
        energy: per-sample path energies :math:`\int_0^1 |v_t(X_t)|^2 dt` in the caller's
            coordinates, shape ``(n,)``, same type.
        nfe: velocity evaluations of the ODE per batch, averaged over batches.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from sitransport.flow import TransportFlow
        >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
        >>> result = flow.path_energy(np.zeros((3, 2)))  # constant speed sqrt(2)
        >>> result.x[0], result.energy, result.nfe > 0
        (array([1., 1.]), array([2., 2., 2.]), True)
    """

    x: Any
    energy: Any
    nfe: float


@dataclass(frozen=True)
class LogProbEstimate:
    """Log-density estimates (nats), their standard errors (zero for the exact divergence,
    from the across-probe spread for Hutchinson, see :func:`~sitransport.ode.probe_stderr`)
    and the NFE of the augmented ODE.

    Attributes:
        log_prob: log-densities in nats, shape ``(n,)``, the caller's array type.
        stderr: their standard errors, shape ``(n,)``, same type (zeros for the exact divergence).
        nfe: velocity evaluations of the augmented ODE per batch, averaged over batches.

    Example:
        >>> import numpy as np
        >>> from sitransport.flow import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> est = flow.log_prob_estimate(np.zeros((2, 2)), method="exact")
        >>> np.round(est.log_prob, 4), est.stderr  # exact divergence: zero standard error
        (array([-3.8379, -3.8379]), array([0., 0.]))
    """

    log_prob: Any
    stderr: Any
    nfe: float
