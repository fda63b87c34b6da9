"""The SDE of a stochastic interpolant from a low-rank source: how much variance it restores.

In a direction where ``rho0`` has no spread, ``x_t = beta x1 + gamma z`` there, the exact
velocity ``(beta beta' s1 + gamma gamma') x / C_t`` (``C_t = beta^2 s1 + gamma^2``) is singular
at ``t = 0``; the SDE with ``eps = eps0 gamma^2`` restores the variance as
``Var X_1 = s1 (1 - exp(-2 eps0 I))``, ``I = int_0^1 gamma^2 / C_t dt`` (TransportFlow.sample).
Checked with the exact fields of a Gaussian problem, through ``flow.sample``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from torch import nn

from sitransport.flow import TransportFlow
from sitransport.interpolants import Stochastic

S0, S1 = torch.tensor([0.5, 0.0], dtype=torch.float64), 1.5  # rho0 = N(0, .5) x delta_0


class ExactFields(nn.Module):
    """Exact velocity and noise denoiser E[z | x_t] of N(0, diag(S0)) -> N(0, S1 I)."""

    def __init__(self, path: Stochastic) -> None:
        super().__init__()
        self.path = path
        self.denoiser = lambda x, t: self._fields(x, t)[1]

    def _fields(self, x, t):
        p = self.path
        a, b, g = p.alpha(t), p.beta(t), p.gamma(t)
        c = (a * a * S0 + b * b * S1 + g * g).clamp_min(1e-300)
        v = (a * p.dalpha(t) * S0 + b * p.dbeta(t) * S1 + g * p.dgamma(t)) / c * x
        return v, g / c * x

    def forward(self, x, t):
        return self._fields(x, t)[0]


@pytest.mark.parametrize("eps", [None, 1.0])
def test_sde_restores_variance_of_a_missing_direction_as_documented(eps):
    path = Stochastic("linear", "sin2", 1.0)
    x0 = np.random.default_rng(0).standard_normal((50_000, 2)) * np.sqrt(S0.numpy())
    flow = TransportFlow(ExactFields(path), path, base=x0)
    n = 20_000
    y = flow.sample(n, method="sde", eps=eps, seed=1)

    def gamma2_over_c(t):
        tt = torch.tensor(t, dtype=torch.float64)
        g2 = float(path.gamma(tt)) ** 2
        return g2 / (float(path.beta(tt)) ** 2 * S1 + g2) if t > 0 else 0.0

    integral = quad(gamma2_over_c, 0.0, 1.0)[0]
    eps0 = 4.0 if eps is None else eps
    expected = S1 * (1 - math.exp(-2 * eps0 * integral))
    tol = 5 * S1 * math.sqrt(2 / n) + 0.01 * S1  # sampling error of a variance + Heun steps
    assert abs(y[:, 1].var() - expected) < tol, (y[:, 1].var(), expected)
    assert abs(y[:, 0].var() - S1) < tol  # the full-rank direction is right at any eps
    if eps is None:
        assert y[:, 1].var() > 0.97 * S1  # the default restores the missing variance
