"""Hypothesis strategies that build a problem together with its exact answer and tolerance."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from sitransport.interpolants import Custom, Fourier, Interpolant, Linear, Trig


def _custom_quadratic() -> Interpolant:
    return Custom(lambda t: (1 - t) ** 2, lambda t: 1 - (1 - t) ** 2)


def _fourier() -> Interpolant:
    return Fourier.from_spec("trig", K=3, a=[0.3, -0.2, 0.1], b=[-0.25, 0.1, 0.05])


#: every deterministic interpolant family, with one user-callable example
INTERPOLANTS = {
    "linear": Linear,
    "trig": Trig,
    "custom": _custom_quadratic,
    "fourier": _fourier,
}

interpolant_names = st.sampled_from(sorted(INTERPOLANTS))
times = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def spd_matrices(draw, d: int, cond: float = 20.0) -> np.ndarray:
    """A symmetric positive definite matrix with condition number at most ``cond``."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.exp(rng.uniform(0.0, np.log(cond), d)) / np.sqrt(cond)
    return (q * eig) @ q.T


@st.composite
def batches(draw, n: int = 16, max_d: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, x1, t) float64 tensors with t uniform on [0, 1]."""
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**32 - 1))
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = 3 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1
    t = torch.rand(n, generator=g, dtype=torch.float64)
    return x0, x1, t
