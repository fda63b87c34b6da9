"""transport_report on flows whose results overflow or are nan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.errors import NonFiniteOutputError
from sitransport.flow import Normalization, TransportFlow
from sitransport.interpolants import Fourier
from sitransport.nn import MLPVelocity

X0 = np.random.default_rng(0).standard_normal((40, 2))


def _net() -> MLPVelocity:
    torch.manual_seed(0)
    return MLPVelocity(2, width=8, depth=1).double()


def test_a_flow_whose_energy_overflows_is_refused():
    """A scale of 1e300 squared overflows: a raw OverflowError before."""
    norm = Normalization(torch.zeros(2, dtype=torch.float64), 1e300)
    flow = TransportFlow(_net(), "trig", base="gaussian", normalization=norm)
    with pytest.raises(NonFiniteOutputError, match="produced non-finite values"):
        st.metrics.transport_report(flow, X0, X0 + 1.0)


def test_a_nan_path_coefficient_is_refused_naming_transport_report():
    """A nan Fourier coefficient: torch's LinAlgError from the Jacobian's norm before."""
    path = Fourier("trig", K=2)
    with torch.no_grad():
        path.a[0] = float("nan")
    flow = TransportFlow(_net(), path, base="gaussian")
    with pytest.raises(NonFiniteOutputError, match=r"^transport_report produced non-finite"):
        st.metrics.transport_report(flow, X0, X0 + 1.0)
