r"""Max–min optimisation of the interpolant path toward optimal transport.

For a fixed interpolant, :math:`\min_v G(v) = -\int_0^1 \mathbb{E}_{\rho_t}|v_t|^2 dt`,
minus the kinetic energy of the path it induces. Maximising over a learnable interpolant
(e.g. :class:`~sitransport.interpolants.Fourier`) therefore lowers the kinetic energy, which
is bounded below by :math:`W_2^2(\rho_0, \rho_1)` (Benamou–Brenier):

.. math::

    \max_{\alpha, \beta}\; \min_v\; G(v; \alpha, \beta).

:class:`PathOptimizer` takes gradient-ascent steps on the interpolant's parameters.
:func:`sitransport.fit` (``optimize_path=True``) combines them with the descent steps on the
velocity in one of two modes:

- ``"alternating"``: after a velocity step, an ascent step on a fresh batch with the
  (updated) velocity held fixed;
- ``"simultaneous"``: gradient descent–ascent, both updates from the same batch and the same
  evaluation of G (the path's gradient taken before the velocity moves).

It can also drive a custom loop.

What it can and cannot reach: with the independent coupling a spatially linear path's
marginals are fixed mixtures of scaled ``rho0`` and ``rho1``, so the optimum over such paths
is in general above :math:`W_2^2`; the certificates of :func:`sitransport.metrics.transport_report`
say how far.

References:
    Albergo & Vanden-Eijnden, arXiv:2209.15571, Sec. 2.3 (optimising the interpolant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sitransport._validation import check_choice, check_positive, check_positive_int
from sitransport.interpolants import Interpolant
from sitransport.losses import quadratic_loss

__all__ = ["PathOptimizer", "PathSettings"]


@dataclass(frozen=True)
class PathSettings:
    """Settings of the ascent on the interpolant.

    Args:
        lr: Adam learning rate of the path coefficients.
        every: velocity steps per path step (the step ratio of the alternation).
        start: velocity steps before the first path step, so ``v`` first approximates its
            minimiser (the ascent direction is only meaningful near it).
        mode: ``"alternating"`` (ascent on a fresh batch after the velocity step) or
            ``"simultaneous"`` (descent and ascent from the same evaluation of G).
    """

    lr: float = 5e-3
    every: int = 1
    start: int = 1000
    mode: str = "alternating"

    def __post_init__(self) -> None:
        check_choice(self.mode, "path mode", ("alternating", "simultaneous"))
        check_positive(self.lr, "path lr")
        check_positive_int(self.every, "path every")
        check_positive_int(self.start, "path start", minimum=0)


class PathOptimizer:
    """Gradient ascent of the quadratic loss G on an interpolant's parameters.

    Args:
        interpolant: an interpolant with parameters (e.g. ``Fourier``).
        settings: :class:`PathSettings`.

    Raises:
        ValueError: the interpolant has no parameters to optimise.

    Example:
        >>> from sitransport.interpolants import Fourier
        >>> path = Fourier("trig", K=2)
        >>> opt = PathOptimizer(path)
        >>> x0, x1, t = torch.randn(64, 2), torch.randn(64, 2) + 3, torch.rand(64)
        >>> g = opt.step(lambda x, s: torch.zeros_like(x), x0, x1, t)
        >>> isinstance(g, float)
        True
    """

    def __init__(self, interpolant: Interpolant, settings: PathSettings | None = None) -> None:
        self.interpolant = interpolant
        self.settings = settings or PathSettings()
        self.params = [p for p in interpolant.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(
                f"optimize_path needs a learnable interpolant (e.g. 'fourier'); "
                f"{interpolant!r} has no parameters"
            )
        self.optimizer = torch.optim.Adam(self.params, lr=self.settings.lr, maximize=True)

    def due(self, step: int) -> bool:
        """Whether a path step follows velocity step ``step`` (1-based)."""
        s = self.settings
        return step >= s.start and (step - s.start) % s.every == 0

    def step(self, velocity, x0: Tensor, x1: Tensor, t: Tensor) -> float:
        """One ascent step on G with the velocity held fixed; returns G before the step."""
        g = quadratic_loss(velocity, self.interpolant, x0, x1, t).quadratic
        self.ascend(torch.autograd.grad(g, self.params))
        return float(g.detach())

    def ascend(self, grads: tuple[Tensor, ...]) -> None:
        """One ascent step along given gradients of G in the path's parameters."""
        for p, grad in zip(self.params, grads, strict=True):
            p.grad = grad
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {
            "interpolant": self.interpolant.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.interpolant.load_state_dict(state["interpolant"])
        self.optimizer.load_state_dict(state["optimizer"])
