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
is in general above :math:`W_2^2`; the diagnostics of :func:`sitransport.metrics.transport_report`
say how far.

References:
    Albergo & Vanden-Eijnden, arXiv:2209.15571, Sec. 2.3 (optimising the interpolant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sitransport._spec import FieldsSpec
from sitransport._validation import check_choice, check_positive, check_positive_int
from sitransport.interpolants import Interpolant
from sitransport.losses import quadratic_loss

__all__ = ["PathOptimizer", "PathSettings"]


@dataclass(frozen=True)
class PathSettings(FieldsSpec):
    """Settings of the ascent on the interpolant.

    Args:
        lr: Adam learning rate of the path coefficients. Default ``0.005``.
        every: velocity steps per path step (the step ratio of the alternation). Default ``1``.
        start: velocity steps before the first path step, so ``v`` first approximates its
            minimiser (the ascent direction is only meaningful near it). Default ``1000``.
        mode: ``"alternating"`` (ascent on a fresh batch after the velocity step) or
            ``"simultaneous"`` (descent and ascent from the same evaluation of G).
        stop: the last velocity step with a path step (``None``: ascend to the end). After
            it the path is frozen and the velocity finishes on that fixed path: while the
            path moves, the velocity only chases it, and a flow returned mid-chase samples
            worse than one trained on a fixed path.

    Example:
        >>> from sitransport.interpolants import Fourier
        >>> from sitransport import PathSettings
        >>> from sitransport.paths import PathOptimizer
        >>> opt = PathOptimizer(Fourier(), PathSettings(lr=1e-2, every=2, start=100, stop=104))
        >>> [step for step in range(95, 110) if opt.due(step)]
        [100, 102, 104]
    """

    lr: float = 5e-3
    every: int = 1
    start: int = 1000
    mode: str = "alternating"
    stop: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.mode, "path mode", ("alternating", "simultaneous"))
        check_positive(self.lr, "path lr")
        check_positive_int(self.every, "path every")
        check_positive_int(self.start, "path start", minimum=0)
        if self.stop is not None:
            check_positive_int(self.stop, "path stop", minimum=0)


class PathOptimizer:
    """Gradient ascent of the quadratic loss G on an interpolant's parameters.

    Args:
        interpolant: an interpolant with parameters (e.g. ``Fourier``).
        settings: :class:`PathSettings`; ``None``: ``PathSettings()``. Default ``None``.

    Raises:
        ValueError: the interpolant has no parameters to optimise.

    Example:
        >>> from sitransport.interpolants import Fourier
        >>> import torch
        >>> from sitransport.paths import PathOptimizer
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
        """Whether a path step follows velocity step ``step`` (1-based).

        Args:
            step: the velocity step just taken, 1-based.

        Example:
            >>> from sitransport.interpolants import Fourier
            >>> opt = PathOptimizer(Fourier("trig", K=2), PathSettings(start=10, every=5))
            >>> opt.due(9), opt.due(10), opt.due(12), opt.due(15)
            (False, True, False, True)
        """
        s = self.settings
        if s.stop is not None and step > s.stop:
            return False
        return step >= s.start and (step - s.start) % s.every == 0

    def lr_factor(self, step: int, velocity_factor: float) -> float:
        """Multiplier of the path's learning rate at velocity step ``step``: the velocity's
        own schedule factor, or, with a ``stop``, a cosine from 1 at ``start`` to 0 at
        ``stop``, so the path comes to rest before it is frozen (frozen mid-stride at a high
        learning rate, it stops wherever its last steps threw it).

        Args:
            step: the velocity step, 1-based.
            velocity_factor: the velocity's learning-rate schedule factor at that step.

        Example:
            >>> from sitransport.interpolants import Fourier
            >>> opt = PathOptimizer(Fourier(), PathSettings(start=100, stop=300))
            >>> [round(opt.lr_factor(s, 0.9), 3) for s in (100, 200, 300)]
            [1.0, 0.5, 0.0]
            >>> PathOptimizer(Fourier(), PathSettings(start=100)).lr_factor(200, 0.9)
            0.9
        """
        s = self.settings
        if s.stop is None:
            return velocity_factor
        progress = min(max((step - s.start) / max(s.stop - s.start, 1), 0.0), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def step(self, velocity, x0: Tensor, x1: Tensor, t: Tensor) -> float:
        """One ascent step on G with the velocity held fixed; returns G before the step.

        Args:
            velocity: ``v(x, t)``, held fixed.
            x0: batch of rho0, shape ``(n, ...)``.
            x1: batch of rho1 paired with ``x0``.
            t: times, shape ``(n,)``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Fourier
            >>> path = Fourier("linear", K=2)
            >>> opt = PathOptimizer(path, PathSettings(lr=0.1))
            >>> x0, x1, t = torch.zeros(8, 2), torch.ones(8, 2), torch.linspace(0.05, 0.95, 8)
            >>> v = lambda x, s: torch.ones_like(x)  # the linear path's exact velocity
            >>> opt.step(v, x0, x1, t)  # G = |v|^2 - 2 (x1 - x0) . v = 2 - 4
            -2.0
            >>> bool(path.b.detach().abs().sum() > 0)  # the coefficients moved
            True
        """
        g = quadratic_loss(velocity, self.interpolant, x0, x1, t).quadratic
        self.ascend(torch.autograd.grad(g, self.params))
        return float(g.detach())

    def ascend(self, grads: tuple[Tensor, ...]) -> None:
        """One ascent step along given gradients of G in the path's parameters.

        Used by the simultaneous mode, where the gradients come from the same evaluation of
        G as the velocity's.

        Args:
            grads: gradients of G, one per tensor of :attr:`params`, in that order.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Fourier
            >>> path = Fourier("trig", K=2)
            >>> opt = PathOptimizer(path, PathSettings(lr=0.1))
            >>> grad_a = torch.ones(2, dtype=torch.float64)
            >>> opt.ascend((grad_a, torch.zeros_like(grad_a)))  # dG/da, dG/db
            >>> path.a.detach().round(decimals=6).tolist()  # Adam's first step: lr along the sign
            [0.1, 0.1]
        """
        for p, grad in zip(self.params, grads, strict=True):
            p.grad = grad
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        """The interpolant's parameters and the optimiser's state (for checkpoints).

        Example:
            >>> from sitransport.interpolants import Fourier
            >>> sorted(PathOptimizer(Fourier()).state_dict())
            ['interpolant', 'optimizer']
        """
        return {
            "interpolant": self.interpolant.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned.

        Args:
            state: ``{"interpolant": ..., "optimizer": ...}`` as :meth:`state_dict` returns it.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Fourier
            >>> trained = PathOptimizer(Fourier("trig", K=2))
            >>> trained.ascend((torch.ones(2, dtype=torch.float64),) * 2)
            >>> fresh = PathOptimizer(Fourier("trig", K=2))
            >>> fresh.load_state_dict(trained.state_dict())
            >>> torch.equal(fresh.interpolant.a, trained.interpolant.a)
            True
        """
        self.interpolant.load_state_dict(state["interpolant"])
        self.optimizer.load_state_dict(state["optimizer"])
