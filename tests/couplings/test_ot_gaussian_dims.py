"""Exact minibatch-OT flows recover the closed-form Gaussian OT map in higher dimensions
(slow: a few minutes). L2-UVP = 100 E|T_hat - T*|^2 / tr(S1) (Korotin et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest

import sitransport as st
from sitransport.metrics import gaussian_ot_map, gaussian_w2

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("d", [4, 8, 16])
def test_exact_ot_flow_matches_gaussian_ot_map(d):
    rng = np.random.default_rng(d)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    S1 = (q * np.linspace(0.5, 2.0, d)) @ q.T
    m1 = rng.normal(size=d)
    x0 = rng.standard_normal((20_000, d))
    x1 = rng.multivariate_normal(m1, S1, size=20_000)
    flow = st.fit(x0, x1, interpolant="linear", coupling="exact_ot", steps=10_000, progress=False)
    A, b = gaussian_ot_map(np.zeros(d), np.eye(d), m1, S1)
    x = rng.standard_normal((4000, d))
    uvp = 100 * np.mean(np.sum((flow.push_forward(x) - (x @ A.T + b)) ** 2, 1)) / np.trace(S1)
    assert uvp < 5.0, uvp
    rep = st.metrics.transport_report(flow, x[:2000], x1[:2000])
    exact = gaussian_w2(np.zeros(d), np.eye(d), m1, S1) ** 2
    assert rep.kinetic_energy >= exact - 5 * rep.kinetic_energy_stderr
    assert rep.kinetic_energy <= 1.1 * exact
