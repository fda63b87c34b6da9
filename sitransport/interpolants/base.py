r"""The abstract interpolant and the helpers every path family shares.

:class:`Interpolant` defines a path :math:`x_t = \alpha x_0 + \beta x_1 [+ \gamma z]`, its
velocity target and its plain-data :meth:`~Interpolant.spec`; :class:`OnBase` is the
interpolant that takes :math:`\alpha, \beta` from a base path (stochastic, neural and
normalised paths build on it); the coefficient broadcasting, time conversion and autodiff
derivative are shared by the families.
"""

from __future__ import annotations

import abc
import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

# as_time, derivative and OnBase are shared with the families' modules, not public API
__all__ = ["Interpolant", "broadcast_coefficient"]


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


def as_time(t: Tensor | float, like: Tensor) -> Tensor:
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

    def __init__(self) -> None:  # no settings (nn.Module's takes **kwargs): spec keys are checked
        super().__init__()

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
        return derivative(self.alpha, t)

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
        return derivative(self.beta, t)

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
        return derivative(self.gamma, t)

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
        t = as_time(t, x0)
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
        t = as_time(t, x0)
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

    @classmethod
    def check_spec(cls, spec: dict[str, Any], shape: tuple[int, ...]) -> None:
        """Check a stored :meth:`spec` of this family against the flow's sample ``shape``
        before anything is built from it (a file is untrusted). The default checks nothing
        beyond what the constructor checks; families whose spec carries coefficients or
        weights override it.

        Args:
            spec: the stored spec, as :meth:`spec` writes it.
            shape: the sample shape of the flow the spec belongs to.

        Raises:
            ValueError: the spec does not describe a path of this family for ``shape``.

        Example:
            >>> from sitransport.interpolants import Trig
            >>> Trig.check_spec({"name": "trig"}, (2,)) is None
            True
        """

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


def derivative(f: Callable[[Tensor], Tensor], t: Tensor) -> Tensor:
    """Elementwise derivative of a scalar function applied elementwise to ``t``."""
    _load_forward_ad()
    return torch.func.jvp(f, (t,), (torch.ones_like(t),))[1]  # (f(t), df/dt)


@functools.cache
def _load_forward_ad() -> None:
    """Make torch's first dual tensor once, without its deprecation notices: it then loads
    its own forward-mode decompositions, which torch builds with its deprecated
    ``torch.jit.script`` (torch's use, not the caller's; nothing of ours is scripted)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning
        )
        one = torch.ones(1, dtype=torch.float64)
        torch.func.jvp(torch.sin, (one,), (one,))


class OnBase(Interpolant):
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
