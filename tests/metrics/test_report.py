"""transport_report on flows whose results overflow or are nan, and on samples whose exact
W2 is zero (the NPE is then undefined)."""

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


@pytest.mark.parametrize(
    "x1",
    [lambda x0: x0.copy(), lambda x0: x0[::-1].copy()],
    ids=["same", "permuted"],
)
def test_samples_at_zero_w2_are_refused_naming_x0_and_x1(x1):
    flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
    with pytest.raises(ValueError, match=r"x0 and x1 .*W2\^2 = 0.*NPE"):
        st.metrics.transport_report(flow, X0, x1(X0))


def test_constant_samples_at_the_same_point_are_refused():
    flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
    with pytest.raises(ValueError, match="x0 and x1"):
        st.metrics.transport_report(flow, np.ones((5, 2)), np.ones((5, 2)))


def test_a_constant_target_has_a_finite_npe():
    flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
    report = st.metrics.transport_report(flow, X0, np.ones((40, 2)))
    assert np.isfinite(report.npe) and report.w2_squared > 0
