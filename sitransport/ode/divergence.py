"""The divergence of a velocity at a point, exact (the trace of the Jacobian by autograd)
or estimated with Hutchinson's trick from Rademacher probes, and the standard error of the
per-row mean of probe estimates."""

from __future__ import annotations

import torch
from torch import Tensor

from sitransport.ode.options import Velocity

__all__ = ["divergence_exact", "divergence_hutchinson", "probe_stderr"]

#: Weight, in degrees of freedom, of the variance pooled over rows in :func:`probe_stderr`.
_PRIOR_DOF = 8.0


def divergence_exact(velocity: Velocity, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(v, div v)`` at ``(x, t)``; the trace of the Jacobian by ``d`` backward passes.

    Args:
        velocity: ``v(x, t)``.
        x: points, shape ``(n, ...)``.
        t: a scalar tensor.

    Returns:
        ``v`` of the shape of ``x`` (detached) and ``div v`` of shape ``(n,)``.

    Example:
        >>> import torch
        >>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> v, div = divergence_exact(lambda x, t: x @ A.T, torch.randn(3, 2), torch.tensor(0.0))
        >>> v.shape, div  # trace(A) = 5 everywhere
        (torch.Size([3, 2]), tensor([5., 5., 5.]))
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        v_flat = v.flatten(1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if not v.requires_grad:  # v does not depend on x
            return v.detach(), div
        for i in range(v_flat.shape[1]):
            (g,) = torch.autograd.grad(v_flat[:, i].sum(), x, retain_graph=True, allow_unused=True)
            if g is not None:
                div = div + g.flatten(1)[:, i]
    return v.detach(), div


def divergence_hutchinson(
    velocity: Velocity, x: Tensor, t: Tensor, probes: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Return ``(v, e^T (dv/dx) e)`` for each probe ``e``: shape ``(n, k)`` for ``k`` probes.

    Args:
        velocity: ``v(x, t)``.
        x: points, shape ``(n, ...)``.
        t: a scalar tensor.
        probes: tensor of shape ``(k, n, ...)`` of Rademacher (or Gaussian) probes.

    Returns:
        ``v`` of the shape of ``x`` (detached) and the estimates, shape ``(n, k)``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> probes = torch.randint(0, 2, (4, 3, 2), generator=g).double() * 2 - 1  # k=4, n=3
        >>> x = torch.zeros(3, 2, dtype=torch.float64)
        >>> v, est = divergence_hutchinson(lambda x, t: 2 * x, x, torch.tensor(0.0), probes)
        >>> est  # e^T (2 I) e = 2 d for Rademacher e: exact for a multiple of the identity
        tensor([[4., 4., 4., 4.],
                [4., 4., 4., 4.],
                [4., 4., 4., 4.]], dtype=torch.float64)
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        if not v.requires_grad:  # v does not depend on x
            return v.detach(), torch.zeros(x.shape[0], len(probes), dtype=x.dtype, device=x.device)
        ests = []
        for e in probes:
            (g,) = torch.autograd.grad((v * e).sum(), x, retain_graph=True, allow_unused=True)
            ests.append((g * e).flatten(1).sum(1) if g is not None else torch.zeros_like(x[:, 0]))
    return v.detach(), torch.stack(ests, dim=1)


def probe_stderr(estimates: Tensor, prior_dof: float = _PRIOR_DOF) -> Tensor:
    r"""Standard errors of the per-row means of ``k`` probe estimates, shape ``(n, k)``.

    Each row's sample variance :math:`s_i^2` (``k - 1`` degrees of freedom) is shrunk toward
    the variance pooled over the rows, :math:`\bar s^2`, as if from ``prior_dof`` more:

    .. math::

        \hat\sigma_i^2 = \frac{(k - 1)\, s_i^2 + \nu_0\, \bar s^2}{k - 1 + \nu_0},
        \qquad \mathrm{se}_i = \hat\sigma_i / \sqrt{k}.

    With few probes a row's own spread is unreliable (with two Rademacher probes in
    ``d = 2`` it is zero for about half the rows, whatever their error); pooling keeps the
    error bar of every row honest, and many probes make it the row's own. It is zero only
    when every probe of every row agrees (e.g. a divergence exact for every probe). One
    probe has no spread to measure: ``nan``.

    Args:
        estimates: ``k`` probe estimates per row, shape ``(n, k)``.
        prior_dof: :math:`\nu_0`, the weight of the pooled variance in degrees of freedom.
            Default ``8.0``.

    Returns:
        The standard errors, shape ``(n,)``.

    Example:
        >>> import torch
        >>> est = torch.tensor([[1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
        >>> probe_stderr(est)  # the first row's probes agree by chance: not a zero error bar
        tensor([0.6667, 0.7454], dtype=torch.float64)
    """
    n, k = estimates.shape
    if k == 1:
        return torch.full((n,), float("nan"), dtype=estimates.dtype, device=estimates.device)
    row = estimates.var(1)
    var = ((k - 1) * row + prior_dof * row.mean()) / (k - 1 + prior_dof)
    return (var / k).sqrt()
