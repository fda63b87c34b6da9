"""Maximum-likelihood continuous normalizing flow (FFJORD-style): the baseline the paper replaces.

The *same* velocity network as ``sitransport.fit`` (:class:`~sitransport.nn.MLPVelocity`, in
the same normalised coordinates, base N(0, I) at t = 0, data at t = 1) is trained by
maximising the likelihood of the data through the instantaneous change of variables,

    log rho1(y) = log rho0(X_{1->0}(y)) - int_0^1 div v_t(X_{1->t}(y)) dt,

with the divergence replaced by Hutchinson's estimator (one Rademacher probe per sample, held
fixed along the path) and gradients by the adjoint method: ``torchdiffeq.odeint_adjoint``
with dopri5 (Grathwohl et al., FFJORD, arXiv 1810.01367). Every training step solves two
ODEs (forward and adjoint); that simulation is what the stochastic-interpolant loss removes.

This is benchmark code, not part of the library. ``train_mle`` stops at a wall-time budget
(training time only: held-out evaluations are excluded) and returns the trained flow, its
held-out NLL curve against training time, time per iteration and NFE per iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torchdiffeq import odeint_adjoint

from sitransport.flow import Normalization, TransportFlow
from sitransport.nn import MLPVelocity


class CNFDynamics(nn.Module):
    """Augmented dynamics ``(z, l)' = (v(z, t), e^T dv/dz e)`` with a fixed probe ``e``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.probe: Tensor | None = None
        self.nfe = 0

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        self.nfe += 1
        z = state[0]
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.requires_grad_(True)
            v = self.net(z, t.expand(z.shape[0]))
            (g,) = torch.autograd.grad(v, z, self.probe, create_graph=True)
            div = (g * self.probe).sum(1)
        return v, div


@dataclass
class MLEResult:
    """A trained MLE CNF: the flow, its held-out NLL curve and its cost per iteration."""

    flow: TransportFlow
    curve: list[tuple[float, int, float]] = field(default_factory=list)  # (train_s, iter, nll)
    iterations: int = 0
    train_s: float = 0.0
    nfe_forward: list[int] = field(default_factory=list)
    nfe_backward: list[int] = field(default_factory=list)

    @property
    def time_per_iter(self) -> float:
        return self.train_s / max(self.iterations, 1)

    @property
    def nfe_per_iter(self) -> float:
        """Forward plus adjoint function evaluations per training iteration (mean)."""
        f, b = np.mean(self.nfe_forward or [0]), np.mean(self.nfe_backward or [0])
        return float(f + b)

    def time_to_reach(self, level: float) -> float:
        """Training seconds until the held-out NLL first reached ``level`` (inf if never)."""
        for train_s, _, nll in self.curve:
            if nll <= level:
                return train_s
        return math.inf

    def time_before_reaching(self, level: float) -> float:
        """Training seconds of the last evaluation before ``level`` was reached (0 if the
        first one reached it): the true time to reach it lies above this."""
        before = 0.0
        for train_s, _, nll in self.curve:
            if nll <= level:
                return before
            before = train_s
        return math.inf

    @property
    def best_nll(self) -> float:
        return min((c[2] for c in self.curve), default=math.inf)


def train_mle(
    x_train: np.ndarray,
    evaluate: Callable[[TransportFlow], float],
    *,
    width: int,
    depth: int = 4,
    batch_size: int = 512,
    lr: float = 1e-3,
    tol: float = 1e-5,
    budget_s: float = 120.0,
    eval_every_s: float = 15.0,
    target: float = -math.inf,
    seed: int = 0,
) -> MLEResult:
    """Train the MLP by maximum likelihood until ``budget_s`` seconds of training or until
    the held-out NLL (``evaluate(flow)``, evaluated every ``eval_every_s`` training seconds)
    reaches ``target``.

    Args:
        x_train: training data ``(n, d)`` in the caller's coordinates.
        evaluate: held-out NLL of a flow (nats, caller's coordinates); its time is excluded.
        width, depth: the MLP, as in ``sitransport.fit``.
        tol: atol = rtol of dopri5 for the forward and the adjoint solve.
    """
    x = torch.from_numpy(np.asarray(x_train, dtype=np.float64))
    n, d = x.shape
    norm = Normalization.from_samples(x)  # data mean and scalar scale, as sitransport.fit
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MLPVelocity(d, width, depth)
    g = torch.Generator().manual_seed(seed)
    dyn = CNFDynamics(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    times = torch.tensor([1.0, 0.0])
    flow = TransportFlow(net, "linear", base="gaussian", shape=(d,), normalization=norm)
    res = MLEResult(flow)
    log_norm = 0.5 * d * math.log(2 * math.pi)
    train_s, next_eval = 0.0, 0.0
    while True:
        if train_s >= next_eval:
            net.eval()
            nll = float(evaluate(flow))
            res.curve.append((train_s, res.iterations, nll))
            next_eval = train_s + eval_every_s
            if nll <= target or train_s >= budget_s:
                break
        net.train()
        t0 = time.perf_counter()
        idx = torch.randint(0, n, (batch_size,), generator=g)
        z1 = norm.encode(x[idx]).float()
        dyn.probe = torch.randint(0, 2, z1.shape, generator=g).float() * 2 - 1
        dyn.nfe = 0
        zero = torch.zeros(batch_size)
        z0, delta = odeint_adjoint(
            dyn, (z1, zero), times, method="dopri5", atol=tol, rtol=tol,
            adjoint_params=tuple(net.parameters()),
        )  # fmt: skip
        nfe_f = dyn.nfe
        # log rho1(y) = log rho0(x0) + int_1^0 div dt (normalised coordinates)
        logp = -0.5 * z0[-1].pow(2).sum(1) - log_norm + delta[-1]
        loss = -logp.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"MLE CNF loss is {float(loss)} at iteration {res.iterations}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        res.nfe_forward.append(nfe_f)
        res.nfe_backward.append(dyn.nfe - nfe_f)
        res.iterations += 1
        train_s += time.perf_counter() - t0
    res.train_s = train_s
    net.eval()
    return res
