r"""The learnable paths: :class:`Fourier` (sine series on the coefficients) and
:class:`NeuralPath` (a spatially nonlinear sine series, a network of the end points).

Their parameters are what the max–min path optimisation of :mod:`sitransport.paths` ascends.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from sitransport._io import state_mismatch, weights_problem
from sitransport._validation import check_choice, check_positive_int
from sitransport.interpolants.base import Interpolant, OnBase, as_time
from sitransport.interpolants.fixed import BASE_PATHS

__all__ = ["Fourier", "NeuralPath"]


class Fourier(Interpolant):
    r"""Learnable path: a base interpolant plus sine series with boundary values kept.

    .. math::

        \alpha(t) = \alpha_b(t) + \sum_{k=1}^K a_k \sin(k\pi t), \qquad
        \beta(t) = \beta_b(t) + \sum_{k=1}^K b_k \sin(k\pi t).

    Every :math:`\sin(k\pi t)` vanishes at ``t = 0`` and ``t = 1``, so the boundary values
    hold exactly for any coefficients. The coefficients are ``nn.Parameter`` (zeros at
    start: the base path), scalar or per dimension (shape ``(K, d)``), and the velocity
    target is differentiable in them: the object of max–min path optimisation
    (:mod:`sitransport.paths`).

    Args:
        base: ``"trig"`` or ``"linear"``, the path at zero coefficients.
        K: number of sine terms. Default ``4``.
        dim: ``None`` for scalar coefficients, or ``d`` for per-dimension coefficients.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Fourier
        >>> path = Fourier("linear", K=3)
        >>> ends = path.alpha(torch.tensor([0.0, 1.0])).detach()
        >>> float(ends[0]), float(ends[1])
        (1.0, 0.0)
    """

    k: Tensor  # buffer: the frequencies pi, 2 pi, ..., K pi

    def __init__(self, base: str = "trig", K: int = 4, dim: int | None = None) -> None:
        super().__init__()
        self.base_name = base
        self.base = BASE_PATHS[check_choice(base, "base", ("linear", "trig"))]()
        self.K = check_positive_int(K, "K")
        self.dim = None if dim is None else check_positive_int(dim, "dim")
        shape = (self.K,) if self.dim is None else (self.K, self.dim)
        self.a = nn.Parameter(torch.zeros(shape, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("k", torch.arange(1, self.K + 1, dtype=torch.float64) * math.pi)

    def _series(self, coef: Tensor, t: Tensor, derivative: bool) -> Tensor:
        kt = t[..., None] * self.k.to(t)  # t.shape + (K,)
        basis = self.k.to(t) * torch.cos(kt) if derivative else torch.sin(kt)
        return basis @ coef.to(t)  # t.shape, or t.shape + (d,) for per-dimension coefficients

    def alpha(self, t: Tensor) -> Tensor:
        return _expand_like(self.base.alpha(t), self._series(self.a, t, False))

    def beta(self, t: Tensor) -> Tensor:
        return _expand_like(self.base.beta(t), self._series(self.b, t, False))

    def dalpha(self, t: Tensor) -> Tensor:
        return _expand_like(self.base.dalpha(t), self._series(self.a, t, True))

    def dbeta(self, t: Tensor) -> Tensor:
        return _expand_like(self.base.dbeta(t), self._series(self.b, t, True))

    def spec(self) -> dict[str, Any]:
        return {
            "name": "fourier",
            "base": self.base_name,
            "K": self.K,
            "dim": self.dim,
            "a": self.a.detach().cpu().tolist(),
            "b": self.b.detach().cpu().tolist(),
        }

    @classmethod
    def from_spec(
        cls, base: str = "trig", K: int = 4, dim: int | None = None, a: Any = None, b: Any = None
    ) -> Fourier:
        r"""Build a path with given coefficients (the inverse of :meth:`spec`).

        Args:
            base: ``"trig"`` or ``"linear"``.
            K: number of sine terms. Default ``4``.
            dim: ``None`` for scalar coefficients, or ``d``.
            a: coefficients of :math:`\alpha`, shape ``(K,)`` or ``(K, d)``; zeros if ``None``.
            b: coefficients of :math:`\beta`, same shape; zeros if ``None``.

        Example:
            >>> import torch
            >>> path = Fourier.from_spec("linear", K=2, a=[0.1, 0.0])
            >>> round(float(path.alpha(torch.tensor(0.5)).detach()), 4)  # 0.5 + 0.1 sin(pi / 2)
            0.6
            >>> Fourier.from_spec(**{k: v for k, v in path.spec().items() if k != "name"}).K
            2
        """
        path = cls(base, K, dim)
        with torch.no_grad():
            if a is not None:
                path.a.copy_(torch.tensor(a, dtype=torch.float64))
            if b is not None:
                path.b.copy_(torch.tensor(b, dtype=torch.float64))
        return path

    @classmethod
    def check_spec(cls, spec: dict[str, Any], shape: tuple[int, ...]) -> None:
        """A stored spec's coefficients ``a`` and ``b`` have the shape its ``K`` and ``dim``
        claim: ``(K,)`` or ``(K, dim)``.

        Args:
            spec: the stored spec, as :meth:`spec` writes it.
            shape: the sample shape of the flow the spec belongs to.

        Raises:
            ValueError: coefficients of another shape, not finite, or larger than
                :data:`MAX_COEFFICIENT` (a path that far from its base is no trained path).

        Example:
            >>> Fourier.check_spec({"name": "fourier", "K": 2, "a": [0.0], "b": [0.0, 0.0]}, (2,))
            Traceback (most recent call last):
            ...
            ValueError: fourier coefficients a have shape (1,), K=2, dim=None
        """
        K, dim = spec.get("K"), spec.get("dim")
        for key in ("a", "b"):
            got = tuple(torch.as_tensor(spec.get(key), dtype=torch.float64).shape)
            if got != ((K,) if dim is None else (K, dim)):
                raise ValueError(f"fourier coefficients {key} have shape {got}, K={K}, dim={dim}")
            values = torch.as_tensor(spec.get(key), dtype=torch.float64)
            if not bool((values.abs() <= MAX_COEFFICIENT).all()):  # NaN fails too
                raise ValueError(
                    f"fourier coefficients {key} must be finite and at most {MAX_COEFFICIENT:g} "
                    f"in size, got {values.abs().max().item():g}"
                )

    def extra_repr(self) -> str:
        return f"base={self.base_name!r}, K={self.K}, dim={self.dim}"


#: The largest Fourier coefficient a stored path may have.
MAX_COEFFICIENT = 1e3


def _expand_like(base: Tensor, series: Tensor) -> Tensor:
    """Base coefficient (shape of t) plus a series of shape t.shape or t.shape + (d,)."""
    if series.ndim > base.ndim:
        base = base[..., None]
    return base + series


class NeuralPath(OnBase):
    r"""Learnable spatially *nonlinear* path: a base path plus a sine series whose
    coefficients are a network of the two end points.

    .. math::

        x_t = \alpha_b(t)\, x_0 + \beta_b(t)\, x_1
        + \sum_{k=1}^K \sin(k\pi t)\, h_k(x_0, x_1),

    with ``h`` an MLP from :math:`\mathbb{R}^{2d}` to :math:`\mathbb{R}^{K d}` whose last
    layer starts at zero (the base path). The boundary values hold for any ``h``; the
    velocity target is :math:`\dot\alpha_b x_0 + \dot\beta_b x_1 + \sum_k k\pi
    \cos(k\pi t) h_k`. With ``optimize_path=True`` the max–min of
    :mod:`sitransport.paths` ascends on ``h``: the paper's family
    :math:`I_t(x_0, x_1)` in which maximising over interpolants reaches the Benamou–Brenier
    optimum. Scores from the velocity (:meth:`TransportFlow.score`) assume a spatially
    linear path and refuse this one.

    Args:
        dim: ``d``, the dimension of the samples (vectors only).
        base: ``"linear"`` or ``"trig"``.
        K: number of sine terms. Default ``2``.
        width: hidden width of the two-layer MLP ``h``. Default ``64``.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import NeuralPath
        >>> path = NeuralPath(2, K=2, width=8)
        >>> x0, x1 = torch.zeros(3, 2), torch.ones(3, 2)
        >>> path.interpolate(x0, x1, 0.25)[0].detach()  # zero series at start: linear
        tensor([0.2500, 0.2500])
        >>> sum(p.numel() for p in path.parameters())  # 4 x 8 + 8, 8 x 8 + 8, 8 x 4 + 4
        148
    """

    spatially_linear = False

    k: Tensor  # buffer: the frequencies pi, 2 pi, ..., K pi

    def __init__(self, dim: int, base: str = "linear", K: int = 2, width: int = 64) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.base_name = check_choice(base, "base", ("linear", "trig"))
        self.base = BASE_PATHS[base]()
        self.K = check_positive_int(K, "K")
        self.width = check_positive_int(width, "width")
        first, hidden = nn.Linear(2 * self.dim, self.width), nn.Linear(self.width, self.width)
        last = nn.Linear(self.width, self.K * self.dim)  # created in order: same seeded init
        self.h = nn.Sequential(first, nn.SiLU(), hidden, nn.SiLU(), last).to(torch.float64)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.register_buffer("k", torch.arange(1, self.K + 1, dtype=torch.float64) * math.pi)

    def _series(self, x0: Tensor, x1: Tensor, t: Tensor, derivative: bool) -> Tensor:
        if x0.ndim != 2 or x0.shape[1] != self.dim:
            raise ValueError(f"NeuralPath(dim={self.dim}) takes (n, {self.dim}), got {x0.shape}")
        h = self.h(torch.cat([x0, x1], 1).to(torch.float64)).unflatten(1, (self.K, self.dim))
        kt = t.to(torch.float64)[..., None] * self.k  # t.shape + (K,)
        basis = self.k * torch.cos(kt) if derivative else torch.sin(kt)
        basis = basis.expand(x0.shape[0], self.K) if basis.ndim == 1 else basis
        return torch.einsum("nk,nkd->nd", basis, h).to(x0)

    def interpolate(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        t = as_time(t, x0)
        return super().interpolate(x0, x1, t, z) + self._series(x0, x1, t, False)

    def velocity_target(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        t = as_time(t, x0)
        return super().velocity_target(x0, x1, t, z) + self._series(x0, x1, t, True)

    def spec(self) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.h.state_dict().items()}
        return {
            "name": "neural",
            "dim": self.dim,
            "base": self.base_name,
            "K": self.K,
            "width": self.width,
            "state": state,
        }

    @classmethod
    def from_spec(
        cls,
        dim: int,
        base: str = "linear",
        K: int = 2,
        width: int = 64,
        state: dict[str, Tensor] | None = None,
    ) -> NeuralPath:
        """Build a path with given weights of ``h`` (the inverse of :meth:`spec`).

        Args:
            dim: ``d``, the dimension of the samples.
            base: ``"linear"`` or ``"trig"``, the path the learned term perturbs. Default
                ``"linear"``.
            K: number of sine terms. Default ``2``.
            width: hidden width of the two-layer MLP ``h``. Default ``64``.
            state: the ``state_dict`` of ``h`` (tensors or nested lists, as :meth:`spec` writes it);
                ``None``: freshly initialised weights. Default ``None``.

        Example:
            >>> path = NeuralPath(2, K=1, width=4)
            >>> spec = {k: v for k, v in path.spec().items() if k != "name"}
            >>> again = NeuralPath.from_spec(**spec)
            >>> again.K, again.width
            (1, 4)
        """
        path = cls(dim, base, K, width)
        if state is not None:
            path.h.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        return path

    @classmethod
    def check_spec(cls, spec: dict[str, Any], shape: tuple[int, ...]) -> None:
        """A stored spec's weights match the sizes it claims and its ``dim`` is the flow's,
        checked on the ``meta`` device (no memory is allocated for a crafted width).

        Args:
            spec: the stored spec, as :meth:`spec` writes it.
            shape: the sample shape of the flow the spec belongs to.

        Raises:
            ValueError: weights of other names or shapes, or another dimension.

        Example:
            >>> spec = NeuralPath(2, K=1, width=4).spec()
            >>> NeuralPath.check_spec(spec, (2,)) is None
            True
        """
        kwargs = {k: v for k, v in spec.items() if k not in ("name", "state")}
        with torch.device("meta"):
            meta = cls(**kwargs)
        state = spec.get("state") or {}
        problem = state_mismatch(state, meta.h)
        if problem is None:
            problem = weights_problem(state)
        if problem is not None or (meta.dim,) != shape:
            raise ValueError(f"the neural path's weights do not match (dim {meta.dim}): {problem}")

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base_name!r}, K={self.K}, width={self.width}"
