"""The one registry of interpolants: names and spec dicts to objects
(:func:`get_interpolant`, :func:`interpolant_names`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sitransport._io import check_sizes
from sitransport._validation import check_keys, resolve
from sitransport.interpolants.base import Interpolant
from sitransport.interpolants.fixed import Linear, Trig
from sitransport.interpolants.learnable import Fourier, NeuralPath
from sitransport.interpolants.stochastic import Stochastic

__all__ = ["get_interpolant", "interpolant_names", "read_interpolant"]


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
        ValueError: unknown name (the message lists the valid ones), or a dict with keys the
            interpolant does not take or without one it needs (named, with the valid keys).
        TypeError: anything else.

    Example:
        >>> get_interpolant("trig")
        Trig()
    """
    return resolve(spec, _REGISTRY, "interpolant", Interpolant)


def read_interpolant(spec: Any, shape: tuple[int, ...]) -> Interpolant:
    """The interpolant of a stored spec (a file's, untrusted): every size within the file
    limit, then checked by its own family (:meth:`Interpolant.check_spec`: learnable paths
    compare the coefficients or weights with the sizes they claim) before it is built.

    Args:
        spec: a stored spec dict, as :meth:`Interpolant.spec` writes it.
        shape: the sample shape of the flow the spec belongs to.

    Raises:
        TypeError: ``spec`` is not a dict.
        ValueError: a size above the file limit, keys its family does not take (named, with
            the valid ones), or a spec its family refuses.

    Example:
        >>> path = read_interpolant({"name": "fourier", "K": 1, "a": [0.1], "b": [0.0]}, (2,))
        >>> path.spec()["a"], path.spec()["b"]
        ([0.1], [0.0])
    """
    if not isinstance(spec, dict):
        raise TypeError(f"interpolant record must be a dict, got {type(spec).__name__}")
    check_sizes({k: v for k, v in spec.items() if k != "state"}, "interpolant")
    build = _REGISTRY.get(spec.get("name"))  # type: ignore[arg-type]
    if build is not None:  # the keys before the family reads them
        check_keys(build, spec, f"interpolant {spec['name']!r}")
    family = getattr(build, "__self__", build)  # a family's from_spec is bound to its class
    if isinstance(family, type) and issubclass(family, Interpolant):
        family.check_spec(spec, shape)
    return get_interpolant(spec)
