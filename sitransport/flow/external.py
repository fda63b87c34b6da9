r"""A velocity field from elsewhere as a :class:`~sitransport.flow.TransportFlow`: the body of
:meth:`TransportFlow.from_velocity <sitransport.flow.TransportFlow.from_velocity>`.

A user's ``(x, t) -> v`` callable, or a model trained with another library, is wrapped in an
:class:`ExternalVelocity` that adapts its calling convention to the flow's ``v(z, t)``, so
sampling, transport, likelihoods with their standard errors and
:func:`~sitransport.metrics.transport_report` work on it. The conventions, named by
``convention=``:

- ``"plain"``: ``fn(x, t)``;
- ``"torchcfm_mlp"``: ``fn(torch.cat([x, t[:, None]], 1))``, torchcfm's ``MLP(dim,
  time_varying=True)`` (and the network inside torchcfm's torchdyn ``torch_wrapper``, which
  itself expects a scalar ``t``: pass the network, not the wrapper);
- ``"torchcfm_unet"``: ``fn(t, x)``, torchcfm's ``UNetModelWrapper`` and other torchdyn-style
  modules that accept one time per sample;
- ``"flow_matching"``: ``fn(x=x, t=t)``, Meta flow_matching's ``ModelWrapper`` (for
  ``**extras``, pass ``lambda x, t: model(x=x, t=t, **extras)`` as ``"plain"``).

In every convention ``t`` is a tensor of shape ``(n,)``, one time per sample, in the dtype and
on the device of ``x`` (the ODE solvers' scalar times are expanded): a closed-form field writes
``t[:, None]`` to broadcast over the dimensions. Time runs from the base at ``t = 0`` to the
target at ``t = 1``, as in torchcfm (``x0`` the source) and flow_matching (``t = 0`` noise).
A model trained the other way round (``t = 1`` noise) is ``lambda x, t: -model(x, 1 - t)``.
No peer library is imported here: the adapters only call the object they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from sitransport.ends.densities import as_density
from sitransport.interpolants import Interpolant
from sitransport.ode import ODEOptions

if TYPE_CHECKING:
    from sitransport.flow.transport import TransportFlow

__all__ = ["CONVENTIONS", "ExternalVelocity"]


def _plain(fn: Callable[..., Tensor], x: Tensor, t: Tensor) -> Tensor:
    return fn(x, t)


def _torchcfm_mlp(fn: Callable[..., Tensor], x: Tensor, t: Tensor) -> Tensor:
    return fn(torch.cat([x, t[:, None]], 1))


def _torchcfm_unet(fn: Callable[..., Tensor], x: Tensor, t: Tensor) -> Tensor:
    return fn(t, x)


def _flow_matching(fn: Callable[..., Tensor], x: Tensor, t: Tensor) -> Tensor:
    return fn(x=x, t=t)


#: The calling conventions of :meth:`TransportFlow.from_velocity`, by name. Each says how
#: the velocity ``v(x, t)`` (``t`` of shape ``(n,)``) is computed from the given ``fn``.
CONVENTIONS: dict[str, Callable[[Callable[..., Tensor], Tensor, Tensor], Tensor]] = {
    "flow_matching": _flow_matching,
    "plain": _plain,
    "torchcfm_mlp": _torchcfm_mlp,
    "torchcfm_unet": _torchcfm_unet,
}


class ExternalVelocity(nn.Module):
    """A velocity field given by the caller, called in its own convention as ``v(x, t)``.

    An ``nn.Module`` ``fn`` is registered as the submodule ``model``, so the flow finds its
    parameters (their dtype and device are those of the solves) and puts it in eval mode when
    it is used, as for any inference; a plain callable is kept as it is.

    Args:
        fn: the velocity field, an ``nn.Module`` or any callable.
        convention: a key of :data:`CONVENTIONS`. Default ``"plain"``: ``fn(x, t)``.

    Raises:
        TypeError: ``fn`` is not callable or ``convention`` not a string.
        ValueError: ``convention`` is not a key of :data:`CONVENTIONS` (the message lists them).

    Example:
        >>> import torch
        >>> v = ExternalVelocity(lambda x, t: x * t[:, None])
        >>> v(torch.ones(2, 3), torch.tensor(0.5)).tolist()
        [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
        >>> v.convention
        'plain'
    """

    def __init__(self, fn: Callable[..., Tensor], convention: str = "plain") -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(f"fn must be a callable velocity field, got {type(fn).__name__}")
        if not isinstance(convention, str):
            raise TypeError(f"convention must be a string, got {type(convention).__name__}")
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
        self.convention = convention
        self._call = CONVENTIONS[convention]
        if isinstance(fn, nn.Module):
            self.model: Callable[..., Tensor] = fn
        else:
            self._fn = fn

    @property
    def fn(self) -> Callable[..., Tensor]:
        """The caller's velocity field, as given."""
        return self.model if "model" in self._modules else self._fn

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        """``v(x, t)``: ``fn`` in its convention, with ``t`` expanded to one time per sample.

        Args:
            x: states, shape ``(n, ...)``.
            t: a scalar time or times of shape ``(n,)``.
            c: must be ``None`` (these flows are unconditional).

        Returns:
            Velocities of the shape of ``x``.

        Raises:
            ValueError: ``fn`` returned something else than a tensor of the shape of ``x``.
        """
        if c is not None:
            raise ValueError("a flow made by from_velocity is unconditional: got a condition")
        t = t.to(dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        v = self._call(self.fn, x, t)
        if not isinstance(v, Tensor) or v.shape != x.shape:
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(
                f"the velocity fn (convention {self.convention!r}) must return a tensor of the "
                f"shape of x, {tuple(x.shape)}; got {got}"
            )
        return v

    def extra_repr(self) -> str:
        return f"convention={self.convention!r}"


def _shape_of(dim: Any) -> tuple[int, ...] | None:
    """``dim`` as a per-sample shape: an integer ``d`` is ``(d,)``; a tuple (e.g. an image's
    ``(c, h, w)``) is kept."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, tuple) else (dim,)
    for k in dims:
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"dim must be an integer or a tuple of integers, got {dim!r}")
        if k < 1:
            raise ValueError(f"dim must be >= 1 (or a tuple of such), got {dim!r}")
    return dims


def from_velocity(
    cls: type[TransportFlow],
    fn: Callable[..., Tensor],
    base: Any,
    dim: Any,
    convention: str,
    interpolant: str | Interpolant,
    target: Any,
    ode: ODEOptions | None,
) -> TransportFlow:
    """The body of :meth:`TransportFlow.from_velocity`, documented there."""
    velocity = ExternalVelocity(fn, convention)
    shape = _shape_of(dim)
    if (base is None or isinstance(base, str)) and shape is None:
        raise ValueError(f"dim is required with base={base!r} (e.g. dim=2)")
    if base is not None and not isinstance(base, str):
        base = as_density(base, "base")
        if shape is None:
            shape = base.shape
        elif base.shape != shape:
            raise ValueError(f"dim={dim!r} does not match the base's sample shape {base.shape}")
    return cls(velocity, interpolant, base=base, target=target, shape=shape, ode=ode)
