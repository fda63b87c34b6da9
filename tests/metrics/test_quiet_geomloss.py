"""geomloss is imported quietly: with the keops extra installed, KeOps's CPU-only notice
must not reach the user's stdout (the demo's output, doctests, scripts' reports)."""

from __future__ import annotations

import subprocess
import sys


def test_a_sinkhorn_divergence_prints_nothing_on_stdout():
    code = (
        "import numpy as np, sitransport as st\n"
        "x = np.array([[0.0, 0.0], [1.0, 0.0]])\n"
        "st.metrics.sinkhorn_divergence(x, x + 1.0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout == ""
