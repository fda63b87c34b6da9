"""The one registry of interpolants: names and spec dicts to objects
(:func:`get_interpolant`, :func:`interpolant_names`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sitransport._validation import resolve
from sitransport.interpolants.base import Interpolant
from sitransport.interpolants.fixed import Linear, Trig
from sitransport.interpolants.learnable import Fourier, NeuralPath
from sitransport.interpolants.stochastic import Stochastic

__all__ = ["get_interpolant", "interpolant_names"]


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
