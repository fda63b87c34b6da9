r"""Spatially linear interpolants between two densities.

An interpolant connects a sample ``x0 ~ rho0`` to a sample ``x1 ~ rho1``:

.. math::

    x_t = \alpha(t)\, x_0 + \beta(t)\, x_1 \;[+\, \gamma(t)\, z], \qquad z \sim N(0, I),

with :math:`\alpha(0) = \beta(1) = 1`, :math:`\alpha(1) = \beta(0) = 0` and
:math:`\gamma(0) = \gamma(1) = 0`. The velocity target of the quadratic loss is the time
derivative :math:`\partial_t x_t = \dot\alpha x_0 + \dot\beta x_1 + \dot\gamma z`.

Families: ``linear`` (:math:`\alpha = 1 - t, \beta = t`), ``trig`` (the paper's default,
:math:`\alpha = \cos(\pi t / 2), \beta = \sin(\pi t / 2)`) and :class:`Custom` for user
callables. Interpolants are ``torch.nn.Module`` so that learnable families (Fourier paths)
carry parameters; the deterministic ones have none.

References:
    Albergo & Vanden-Eijnden, Building Normalizing Flows with Stochastic Interpolants,
    ICLR 2023, arXiv:2209.15571.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sitransport._validation import check_choice, resolve

__all__ = [
    "Custom",
    "Fourier",
    "Interpolant",
    "Linear",
    "NeuralPath",
    "Normalized",
    "Stochastic",
    "Trig",
    "broadcast_coefficient",
    "get_interpolant",
    "interpolant_names",
]


def broadcast_coefficient(c: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """Make a path coefficient (``alpha(t)``, ``beta(t)``, ...) broadcast against samples
    ``x`` of shape ``(n, ...)``.

    Args:
        c: one value per time (the shape of ``t``: ``()`` or ``(n,)``) or one value per time
            and coordinate (shape ``t.shape + x.shape[1:]``, per-dimension paths).
        t: the times ``c`` was evaluated at, shape ``()`` or ``(n,)``.
        x: the samples, shape ``(n, ...)``.

    Returns:
        ``c`` reshaped to ``(n, 1, ..., 1)`` when it holds one value per sample, else ``c``.

    Example:
        >>> t, x = torch.rand(5), torch.zeros(5, 3, 8, 8)
        >>> tuple(broadcast_coefficient(torch.cos(t), t, x).shape)
        (5, 1, 1, 1)
    """
    if c.ndim == t.ndim and t.ndim == 1:
        return c.reshape(c.shape[0], *([1] * (x.ndim - 1)))
    return c


def _combine(a: Tensor, b: Tensor, t: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
    """``a x0 + b x1`` with coefficients ``a, b`` evaluated at ``t``."""
    return broadcast_coefficient(a, t, x0) * x0 + broadcast_coefficient(b, t, x1) * x1


def _as_time(t: Tensor | float, like: Tensor) -> Tensor:
    if isinstance(t, Tensor):
        return t.to(dtype=like.dtype, device=like.device)
    return torch.tensor(float(t), dtype=like.dtype, device=like.device)


class Interpolant(nn.Module, abc.ABC):
    r"""Abstract spatially linear interpolant :math:`x_t = \alpha x_0 + \beta x_1 + \gamma z`.

    Subclasses implement :meth:`alpha` and :meth:`beta` (tensors of times in, same shape
    out; both abstract: a class without them cannot be instantiated) and, when known in
    closed form, :meth:`dalpha` and :meth:`dbeta`; otherwise the derivatives come from
    forward-mode autodiff. Stochastic subclasses override :meth:`gamma` and :meth:`dgamma`.
    A ``torch.nn.Module`` (so learnable paths carry parameters) and an :class:`abc.ABC`:
    ``nn.Module``'s metaclass is ``type``, so the two combine.

    Times ``t`` are a scalar or a tensor of shape ``(n,)``; samples have shape ``(n, ...)``.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Trig
        >>> path = Trig()
        >>> x0, x1 = torch.zeros(4, 2), torch.ones(4, 2)
        >>> path.interpolate(x0, x1, torch.full((4,), 1 / 3)).shape
        torch.Size([4, 2])
        >>> path.interpolate(x0, x1, 1 / 3)[0]  # sin(pi / 6) = 0.5
        tensor([0.5000, 0.5000])
    """

    #: Whether the interpolant carries a ``gamma(t) z`` term.
    stochastic: bool = False
    #: Whether :math:`x_t` is :math:`\alpha x_0 + \beta x_1 [+ \gamma z]` (scores from the
    #: velocity of a Gaussian base need it); ``False`` for :class:`NeuralPath`.
    spatially_linear: bool = True

    @abc.abstractmethod
    def alpha(self, t: Tensor) -> Tensor:
        """Coefficient of ``x0``, elementwise in ``t`` (1 at ``t = 0``, 0 at ``t = 1``).

        Args:
            t: times, a tensor of any shape (a scalar or ``(n,)``), values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> Linear().alpha(torch.tensor([0.0, 0.25, 1.0]))
            tensor([1.0000, 0.7500, 0.0000])
        """
        raise NotImplementedError

    @abc.abstractmethod
    def beta(self, t: Tensor) -> Tensor:
        """Coefficient of ``x1``, elementwise in ``t`` (0 at ``t = 0``, 1 at ``t = 1``).

        Args:
            t: times, a tensor of any shape (a scalar or ``(n,)``), values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Trig
            >>> Trig().beta(torch.tensor([0.0, 1 / 3, 1.0]))
            tensor([0.0000, 0.5000, 1.0000])
        """
        raise NotImplementedError

    def gamma(self, t: Tensor) -> Tensor:
        """Noise scale; zero for deterministic interpolants.

        Args:
            t: times, a tensor of any shape (a scalar or ``(n,)``), values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear, Stochastic
            >>> Linear().gamma(torch.tensor([0.5]))
            tensor([0.])
            >>> Stochastic("linear", "sin2", a=0.5).gamma(torch.tensor([0.0, 0.5]))
            tensor([0.0000, 0.5000])
        """
        return torch.zeros_like(t)

    def dalpha(self, t: Tensor) -> Tensor:
        """Time derivative of :meth:`alpha` (forward-mode autodiff unless overridden).

        Args:
            t: times, a tensor of any shape (a scalar or ``(n,)``), values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Custom
            >>> path = Custom(lambda t: 1 - t**2, lambda t: t**2)  # derivative by autodiff
            >>> path.dalpha(torch.tensor([0.25, 0.5]))
            tensor([-0.5000, -1.0000])
        """
        return _derivative(self.alpha, t)

    def dbeta(self, t: Tensor) -> Tensor:
        """Time derivative of :meth:`beta` (forward-mode autodiff unless overridden).

        Args:
            t: times, a tensor of any shape (a scalar or ``(n,)``), values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Trig
            >>> round(float(Trig().dbeta(torch.tensor(0.0))), 4)  # pi / 2
            1.5708
        """
        return _derivative(self.beta, t)

    def dgamma(self, t: Tensor) -> Tensor:
        """Time derivative of :meth:`gamma`.

        Args:
            t: times, a tensor of any shape (a scalar or ``(n,)``), values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Stochastic
            >>> path = Stochastic("linear", "sin2", a=1.0)  # gamma = sin^2(pi t)
            >>> round(float(path.dgamma(torch.tensor(0.25))), 4)  # pi sin(pi / 2)
            3.1416
        """
        if not self.stochastic:
            return torch.zeros_like(t)
        return _derivative(self.gamma, t)

    def interpolate(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        r"""Return :math:`x_t = \alpha(t) x_0 + \beta(t) x_1 [+ \gamma(t) z]`.

        Args:
            x0: samples of ``rho0``, shape ``(n, ...)``.
            x1: samples of ``rho1``, same shape.
            t: times, scalar or shape ``(n,)``.
            z: standard normal noise of the same shape; required iff :attr:`stochastic`.
                Default ``None``.

        Returns:
            Tensor of the shape of ``x0``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> x0, x1 = torch.zeros(3, 2), torch.tensor([[4.0, 8.0]] * 3)
            >>> Linear().interpolate(x0, x1, torch.tensor([0.0, 0.25, 1.0]))
            tensor([[0., 0.],
                    [1., 2.],
                    [4., 8.]])
        """
        t = _as_time(t, x0)
        xt = _combine(self.alpha(t), self.beta(t), t, x0, x1)
        return xt + self._noise_term(self.gamma, t, z, x0)

    def velocity_target(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        r"""Return :math:`\partial_t x_t = \dot\alpha x_0 + \dot\beta x_1 [+ \dot\gamma z]`.

        Same arguments as :meth:`interpolate`; the target of the quadratic loss.

        Args:
            x0: samples of ``rho0``, shape ``(n, ...)``.
            x1: samples of ``rho1``, same shape.
            t: times, scalar or shape ``(n,)``.
            z: standard normal noise of the same shape; required iff :attr:`stochastic`. Default
                ``None``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> x0, x1 = torch.zeros(2, 2), torch.tensor([[1.0, 3.0], [2.0, 2.0]])
            >>> Linear().velocity_target(x0, x1, torch.tensor([0.1, 0.9]))  # x1 - x0
            tensor([[1., 3.],
                    [2., 2.]])
        """
        t = _as_time(t, x0)
        dxt = _combine(self.dalpha(t), self.dbeta(t), t, x0, x1)
        return dxt + self._noise_term(self.dgamma, t, z, x0)

    def _noise_term(
        self, coef: Callable[[Tensor], Tensor], t: Tensor, z: Tensor | None, x0: Tensor
    ) -> Tensor | float:
        if not self.stochastic:
            if z is not None:
                raise ValueError(f"z must be None for the deterministic interpolant {self!r}")
            return 0.0
        if z is None:
            raise ValueError(f"z (standard normal noise) is required by {self!r}")
        return broadcast_coefficient(coef(t), t, z) * z

    def spec(self) -> dict[str, Any]:
        """A plain-data description from which :func:`get_interpolant` rebuilds this object.

        Example:
            >>> from sitransport.interpolants import Stochastic, Trig, get_interpolant
            >>> Trig().spec()
            {'name': 'trig'}
            >>> spec = Stochastic("trig", "sqrt", a=0.5).spec()
            >>> spec
            {'name': 'stochastic', 'base': 'trig', 'gamma': 'sqrt', 'a': 0.5}
            >>> get_interpolant(spec).spec() == spec
            True
        """
        raise TypeError(
            f"{type(self).__name__} cannot be described as plain data (user callables are "
            "code); rebuild it yourself and pass it to sitransport.load(..., interpolant=...)"
        )

    def extra_repr(self) -> str:
        """The settings shown in the module's ``repr`` (a ``torch.nn.Module`` hook).

        Example:
            >>> from sitransport.interpolants import Fourier, Linear
            >>> Linear().extra_repr()
            ''
            >>> Fourier("linear", K=2).extra_repr()
            "base='linear', K=2, dim=None"
        """
        return ""


def _derivative(f: Callable[[Tensor], Tensor], t: Tensor) -> Tensor:
    """Elementwise derivative of a scalar function applied elementwise to ``t``."""
    return torch.func.jvp(f, (t,), (torch.ones_like(t),))[1]  # (f(t), df/dt)


class Linear(Interpolant):
    r"""Linear interpolant :math:`\alpha = 1 - t`, :math:`\beta = t` (constant velocity).

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> path = Linear()
        >>> x0, x1 = torch.zeros(1, 2), torch.tensor([[2.0, -2.0]])
        >>> path.interpolate(x0, x1, 0.5), path.velocity_target(x0, x1, 0.5)
        (tensor([[ 1., -1.]]), tensor([[ 2., -2.]]))
    """

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def beta(self, t: Tensor) -> Tensor:
        return t

    def dalpha(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -1.0)

    def dbeta(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def spec(self) -> dict[str, Any]:
        return {"name": "linear"}


class Trig(Interpolant):
    r"""Trigonometric interpolant :math:`\alpha = \cos(\pi t/2)`, :math:`\beta = \sin(\pi t/2)`.

    The paper's default: for independent Gaussian ``x0, x1`` it keeps the variance of ``x_t``
    constant (:math:`\alpha^2 + \beta^2 = 1`), and
    :math:`\beta\dot\alpha - \dot\beta\alpha = -\pi/2`.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Trig
        >>> path, t = Trig(), torch.linspace(0, 1, 5)
        >>> torch.allclose(path.alpha(t) ** 2 + path.beta(t) ** 2, torch.ones(5))
        True
        >>> wronskian = path.beta(t) * path.dalpha(t) - path.dbeta(t) * path.alpha(t)
        >>> [round(w, 4) for w in wronskian.tolist()]  # -pi / 2 at every time
        [-1.5708, -1.5708, -1.5708, -1.5708, -1.5708]
    """

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def beta(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def dalpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def dbeta(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def spec(self) -> dict[str, Any]:
        return {"name": "trig"}


class Custom(Interpolant):
    r"""Interpolant from user callables ``alpha(t)`` and ``beta(t)``.

    The callables take and return tensors elementwise, written in torch operations so that
    their derivatives come from forward-mode autodiff (or pass ``dalpha``/``dbeta``).
    Boundary values are checked on construction.

    Args:
        alpha: callable with ``alpha(0) = 1``, ``alpha(1) = 0``.
        beta: callable with ``beta(0) = 0``, ``beta(1) = 1``.
        dalpha: optional closed-form derivative of ``alpha``. Default ``None``.
        dbeta: optional closed-form derivative of ``beta``. Default ``None``.

    Raises:
        TypeError: an argument is not callable.
        ValueError: a boundary value is violated.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Custom
        >>> path = Custom(lambda t: (1 - t) ** 2, lambda t: 1 - (1 - t) ** 2)
        >>> float(path.dbeta(torch.tensor(0.0)))
        2.0
    """

    def __init__(
        self,
        alpha: Callable[[Tensor], Tensor],
        beta: Callable[[Tensor], Tensor],
        dalpha: Callable[[Tensor], Tensor] | None = None,
        dbeta: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        for name, f in (("alpha", alpha), ("beta", beta), ("dalpha", dalpha), ("dbeta", dbeta)):
            if f is not None and not callable(f):
                raise TypeError(f"{name} must be callable, got {type(f).__name__}")
        self._alpha, self._beta, self._dalpha, self._dbeta = alpha, beta, dalpha, dbeta
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
        for name, f, want in (("alpha", alpha, (1.0, 0.0)), ("beta", beta, (0.0, 1.0))):
            got = f(ends)
            if not isinstance(got, Tensor) or got.shape != ends.shape:
                raise TypeError(
                    f"{name} must map a tensor of times elementwise to a tensor of the same "
                    f"shape; for t of shape (2,) it returned {type(got).__name__}"
                    + (f" of shape {tuple(got.shape)}" if isinstance(got, Tensor) else "")
                )
            if not torch.allclose(got, torch.tensor(want, dtype=got.dtype), atol=1e-6):
                raise ValueError(
                    f"{name} must satisfy {name}(0) = {want[0]:g} and {name}(1) = {want[1]:g}, "
                    f"got {name}(0) = {float(got[0]):.6g}, {name}(1) = {float(got[1]):.6g}"
                )

    def alpha(self, t: Tensor) -> Tensor:
        return self._alpha(t)

    def beta(self, t: Tensor) -> Tensor:
        return self._beta(t)

    def dalpha(self, t: Tensor) -> Tensor:
        return self._dalpha(t) if self._dalpha is not None else _derivative(self._alpha, t)

    def dbeta(self, t: Tensor) -> Tensor:
        return self._dbeta(t) if self._dbeta is not None else _derivative(self._beta, t)


class _OnBase(Interpolant):
    r"""An interpolant whose :math:`\alpha, \beta` and their derivatives are those of its
    ``base`` interpolant (set by the subclass)."""

    base: Interpolant

    def alpha(self, t: Tensor) -> Tensor:
        return self.base.alpha(t)

    def beta(self, t: Tensor) -> Tensor:
        return self.base.beta(t)

    def dalpha(self, t: Tensor) -> Tensor:
        return self.base.dalpha(t)

    def dbeta(self, t: Tensor) -> Tensor:
        return self.base.dbeta(t)


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
        from sitransport._validation import check_positive_int

        self.base_name = base
        self.base = _REGISTRY[check_choice(base, "base", ("linear", "trig"))]()
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

    def extra_repr(self) -> str:
        return f"base={self.base_name!r}, K={self.K}, dim={self.dim}"


def _expand_like(base: Tensor, series: Tensor) -> Tensor:
    """Base coefficient (shape of t) plus a series of shape t.shape or t.shape + (d,)."""
    if series.ndim > base.ndim:
        base = base[..., None]
    return base + series


class Stochastic(_OnBase):
    r"""Stochastic interpolant :math:`x_t = \alpha x_0 + \beta x_1 + \gamma(t) z`.

    The base path's :math:`\alpha, \beta` plus a latent noise term that vanishes at both
    ends. Its marginals :math:`\rho_t` have full support for ``0 < t < 1`` even when
    ``rho0`` is low-dimensional (a line, a manifold), which a deterministic flow cannot
    spread (Albergo, Boffi & Vanden-Eijnden, arXiv:2303.08797).

    Families of :math:`\gamma`:

    - ``"sin2"`` (default): :math:`\gamma = a\sin^2(\pi t)`, smooth, bounded derivative;
    - ``"sqrt"``: :math:`\gamma = \sqrt{a\,t(1 - t)}`, whose derivative diverges at the
      ends (the flow-matching loss then has infinite variance near ``t = 0, 1``; the
      quadratic loss with antithetic noise does not).

    Args:
        base: ``"trig"`` or ``"linear"``.
        gamma: ``"sin2"`` or ``"sqrt"``.
        a: noise amplitude (> 0). Default ``1.0``.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Stochastic
        >>> path = Stochastic("linear", "sin2", a=0.5)
        >>> float(path.gamma(torch.tensor(0.5)))
        0.5
    """

    stochastic = True

    def __init__(self, base: str = "linear", gamma: str = "sin2", a: float = 1.0) -> None:
        super().__init__()
        from sitransport._validation import check_positive

        self.base_name = check_choice(base, "base", ("linear", "trig"))
        self.base = _REGISTRY[base]()
        self.gamma_name = check_choice(gamma, "gamma", ("sin2", "sqrt"))
        self.a = check_positive(a, "a")

    def gamma(self, t: Tensor) -> Tensor:
        if self.gamma_name == "sin2":
            return self.a * torch.sin(math.pi * t) ** 2
        return torch.sqrt(self.a * t * (1.0 - t)).clamp_min(0.0)

    def dgamma(self, t: Tensor) -> Tensor:
        if self.gamma_name == "sin2":
            return self.a * math.pi * torch.sin(2.0 * math.pi * t)
        g = torch.sqrt(self.a * t * (1.0 - t))
        return self.a * (1.0 - 2.0 * t) / (2.0 * g)

    def spec(self) -> dict[str, Any]:
        return {"name": "stochastic", "base": self.base_name, "gamma": self.gamma_name, "a": self.a}

    def extra_repr(self) -> str:
        return f"base={self.base_name!r}, gamma={self.gamma_name!r}, a={self.a}"


class NeuralPath(_OnBase):
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
        from sitransport._validation import check_positive_int

        self.dim = check_positive_int(dim, "dim")
        self.base_name = check_choice(base, "base", ("linear", "trig"))
        self.base = _REGISTRY[base]()
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
        t = _as_time(t, x0)
        return super().interpolate(x0, x1, t, z) + self._series(x0, x1, t, False)

    def velocity_target(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        t = _as_time(t, x0)
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

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base_name!r}, K={self.K}, width={self.width}"


class Normalized(_OnBase):
    r"""A path in normalised coordinates :math:`u = (x - m) / s`: the *same* path in ``x``.

    If :math:`x_t = \alpha x_0 + \beta x_1 + \gamma z` in the caller's coordinates, then
    :math:`u_t = (x_t - m) / s` is

    .. math::

        u_t = \alpha u_0 + \beta u_1 + (\alpha + \beta - 1)\, m / s + (\gamma / s)\, z,

    with time derivative :math:`\dot\alpha u_0 + \dot\beta u_1 + (\dot\alpha +
    \dot\beta)\, m / s + (\dot\gamma / s)\, z`. Training a velocity on this path in
    ``u`` learns ``v_u = v_x / s``: the velocity, score and marginals of the path the caller
    named, whatever the normalisation (the extra term vanishes when
    :math:`\alpha + \beta = 1`, e.g. ``linear``). The wrapped path's parameters (learnable
    families) are this module's parameters.

    Args:
        path: the interpolant in the caller's coordinates.
        shift: ``m``, shape of one sample.
        scale: ``s > 0``, a scalar.

    Example:
        The midpoint of ``trig`` is :math:`(x_0 + x_1)/\sqrt 2` in ``x``; in ``u`` it is
        the image of that point, not :math:`(u_0 + u_1)/\sqrt 2`:

        >>> import torch
        >>> from sitransport.interpolants import Normalized, Trig
        >>> shift, scale = torch.tensor([3.0, 3.0]), 2.0
        >>> u_path = Normalized(Trig(), shift, scale)
        >>> x0, x1 = torch.tensor([[1.0, 1.0]]), torch.tensor([[5.0, 5.0]])
        >>> xt = Trig().interpolate(x0, x1, 0.5)
        >>> ut = u_path.interpolate((x0 - shift) / scale, (x1 - shift) / scale, 0.5)
        >>> torch.allclose(ut, (xt - shift) / scale)
        True
    """

    shift: Tensor  # buffer: the normalisation's shift m

    def __init__(self, path: Interpolant, shift: Tensor, scale: float) -> None:
        super().__init__()
        if not isinstance(path, Interpolant):
            raise TypeError(f"path must be an Interpolant, got {type(path).__name__}")
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise ValueError(f"scale must be finite and > 0, got {scale!r}")
        self.base = path  # its parameters (learnable paths) are this module's
        self.scale = float(scale)
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float64))
        self.stochastic = path.stochastic
        self.spatially_linear = path.spatially_linear

    def gamma(self, t: Tensor) -> Tensor:
        return self.base.gamma(t) / self.scale

    def dgamma(self, t: Tensor) -> Tensor:
        return self.base.dgamma(t) / self.scale

    def interpolate(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        # written through the caller's coordinates, so any path (also a spatially
        # nonlinear one) is carried over exactly
        xt = self.base.interpolate(self._decode(x0), self._decode(x1), t, z)
        return (xt - self.shift.to(xt)) / self.scale

    def velocity_target(
        self, x0: Tensor, x1: Tensor, t: Tensor | float, z: Tensor | None = None
    ) -> Tensor:
        return self.base.velocity_target(self._decode(x0), self._decode(x1), t, z) / self.scale

    def _decode(self, u: Tensor) -> Tensor:
        return u * self.scale + self.shift.to(u)

    def spec(self) -> dict[str, Any]:
        return self.base.spec()

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}"


_REGISTRY: dict[str, Callable[..., Interpolant]] = {
    "fourier": Fourier.from_spec,
    "linear": Linear,
    "neural": NeuralPath.from_spec,
    "stochastic": Stochastic,
    "trig": Trig,
}


def interpolant_names() -> list[str]:
    """Names accepted by :func:`get_interpolant`, sorted.

    Example:
        >>> interpolant_names()
        ['fourier', 'linear', 'neural', 'stochastic', 'trig']
    """
    return sorted(_REGISTRY)


def get_interpolant(spec: str | dict[str, Any] | Interpolant) -> Interpolant:
    """Resolve an interpolant from a name, a :meth:`Interpolant.spec` dict or an instance.

    Args:
        spec: ``"linear"``, ``"trig"``, a dict ``{"name": ..., **kwargs}`` or an
            :class:`Interpolant` (returned as is).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: anything else.

    Example:
        >>> get_interpolant("trig")
        Trig()
    """
    return resolve(spec, _REGISTRY, "interpolant", Interpolant)
