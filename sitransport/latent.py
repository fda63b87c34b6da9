r"""Latent flows: transport in the principal coordinates of low-rank data.

When data fill only a ``k``-dimensional affine subspace of :math:`\mathbb{R}^d` (MNIST's
covariance has rank 228 of 784), a flow from a full-rank ``d``-dimensional Gaussian must
squeeze it flat, and a flow from the data back to the Gaussian cannot fill it. A latent flow
learns the transport in ``k`` PCA coordinates :math:`y = W^\top (x - \mu)` (orthonormal
``W`` of shape ``(d, k)``) instead, and maps results back with :math:`x = \mu + W y`.

Coordinates: samples of an empirical ``rho0`` are given in the ambient space (``(n, d)``)
and encoded inside; a ``"gaussian"`` (or Distribution) ``rho0`` lives in the latent space,
so ``push_forward`` takes and ``pull_back`` returns ``(n, k)`` latent base coordinates.
Targets are always ambient.

Densities: the encoder is an isometry onto its image. For ``k = d`` it is invertible with
unit Jacobian, and :meth:`LatentFlow.log_prob` is the latent log-density. For ``k < d`` the
learned law lives on a ``k``-dimensional subspace and has no density on
:math:`\mathbb{R}^d`: ``log_prob`` raises, and :meth:`LatentFlow.latent_log_prob` gives the
density of the projected data :math:`W^\top (x - \mu)`.
"""

from __future__ import annotations

from sitransport.flow.latent import LatentFlow, PCAEncoder

__all__ = ["LatentFlow", "PCAEncoder"]
