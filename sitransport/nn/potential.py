r"""Gradient velocity fields: :math:`v(x, t) = \nabla_x \varphi_\theta(x, t)`.

The Benamou–Brenier optimum is such a field (the velocity of the optimal-transport
displacement interpolation is the gradient of a solution of the Hamilton–Jacobi equation),
and rectified flow restricted to gradient fields converges to the optimal-transport map
(Liu 2022). Restricting the network to gradients removes the rotational part a plain MLP can
fit from crossing pairs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sitransport.nn.mlp import build_trunk, run_trunk

__all__ = ["PotentialVelocity"]

# smooth activations only: the velocity is the gradient of the network, so the activation's
# derivative is what the velocity is made of (ReLU would make it piecewise constant)
_SMOOTH: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
}


class PotentialVelocity(nn.Module):
    r"""Velocity field that is the gradient of a scalar MLP potential.

    .. math::

        v(x, t) = \nabla_x \varphi_\theta(x, t), \qquad
        \varphi_\theta = \text{MLP}([x, \text{emb}(t)]) \in \mathbb R.

    Its spatial Jacobian is the Hessian of :math:`\varphi_\theta`: symmetric, so the field is
    curl-free. The gradient comes from :func:`torch.func.grad`, so it is computed under
    ``torch.no_grad`` too (sampling), and training differentiates through it (a double
    backward pass: a training step costs about 2-2.5 times that of an
    :class:`MLPVelocity` of the same size on CPU). Use it through ``fit(..., network="potential")``.

    Args:
        dim: data dimension ``d``.
        width: hidden width. Default ``256``.
        depth: number of hidden layers. Default ``4``.
        activation: a smooth one of ``elu, gelu, silu, softplus, tanh``. Default ``"silu"``.
        time_frequencies: number of sinusoidal time frequencies. Default ``8``.
        space_frequencies: octaves of positional features of ``x`` (:class:`SpaceEmbedding`).
            Default ``0``.
        condition: the condition input of a conditional network (see
            :mod:`sitransport.nn.condition`); ``None`` (default): none.

    References:
        Benamou & Brenier (2000), *A computational fluid mechanics solution to the
        Monge-Kantorovich mass transfer problem*. Liu, *Rectified Flow: A Marginal Preserving
        Approach to Optimal Transport*, arXiv:2209.14577.

    Example:
        >>> import torch
        >>> from sitransport.nn import PotentialVelocity
        >>> net = PotentialVelocity(3, width=16, depth=2)
        >>> x, t = torch.randn(5, 3), torch.full((5,), 0.5)
        >>> net(x, t).shape, net.potential(x, t).shape
        (torch.Size([5, 3]), torch.Size([5]))
        >>> with torch.no_grad():  # the gradient is taken all the same
        ...     torch.allclose(net(x, t), torch.func.grad(lambda z: net.potential(z, t).sum())(x))
        True
    """

    def __init__(
        self,
        dim: int,
        width: int = 256,
        depth: int = 4,
        activation: str = "silu",
        time_frequencies: int = 8,
        space_frequencies: int = 0,
        condition: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        settings = (dim, width, depth, activation, time_frequencies, space_frequencies)
        # one output, no bias: a constant has no gradient
        build_trunk(self, "potential", _SMOOTH, settings, out=1, bias=False, condition=condition)

    def potential(self, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        r"""The potential :math:`\varphi_\theta(x, t)`, shape ``(n,)``; ``t`` scalar or ``(n,)``.

        Args:
            x: points, shape ``(n, d)``.
            t: times, a scalar (shared by all samples) or a tensor of shape ``(n,)``, in ``[0, 1]``.
            c: condition codes of a conditional network; ``None`` (default) for an
                unconditional one.

        Example:
            >>> import torch
            >>> net = PotentialVelocity(2, width=8, depth=1)
            >>> net.potential(torch.zeros(4, 2), torch.tensor(0.0)).shape
            torch.Size([4])
        """
        return run_trunk(self, x, t, c).squeeze(1)

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        r"""The velocity :math:`\nabla_x\varphi_\theta(x, t)`, shape ``(n, d)``.

        Samples do not interact, so the gradient of the summed potential is each sample's
        own gradient.

        Args:
            x: points, shape ``(n, d)``.
            t: times, a scalar (shared by all samples) or a tensor of shape ``(n,)``, in ``[0, 1]``.
            c: condition codes of a conditional network; ``None`` (default) for an
                unconditional one.

        Example:
            >>> import torch
            >>> net = PotentialVelocity(2, width=8, depth=1)
            >>> net(torch.zeros(4, 2), torch.tensor(0.3)).shape
            torch.Size([4, 2])
        """
        return torch.func.grad(lambda z: self.potential(z, t, c).sum())(x)
