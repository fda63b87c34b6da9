"""Plain-data round trips of flat settings dataclasses: one ``spec()`` / ``from_spec()``.

:class:`FieldsSpec` serves every settings object whose fields are plain data already
(:class:`~sitransport.train.TrainSettings`, :class:`~sitransport.paths.PathSettings`,
:class:`~sitransport.ode.ODEOptions`, and the specs of :mod:`sitransport.config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

_S = TypeVar("_S", bound="FieldsSpec")


class FieldsSpec:
    """Mixin of a dataclass whose fields are plain data: :meth:`spec` is its fields as a
    dict, :meth:`from_spec` the inverse (unknown fields are refused, by name)."""

    def spec(self) -> dict[str, Any]:
        """Plain data: the fields by name (:meth:`from_spec` rebuilds an equal object).

        Example:
            >>> from sitransport.paths import PathSettings
            >>> PathSettings(lr=0.01, stop=500).spec()
            {'lr': 0.01, 'every': 1, 'start': 1000, 'mode': 'alternating', 'stop': 500}
        """
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_spec(cls: type[_S], spec: Mapping[str, Any]) -> _S:
        """The inverse of :meth:`spec`; missing fields take their defaults.

        Args:
            spec: a dict of field names to values, as :meth:`spec` returns it (a subset of the
                fields).

        Raises:
            TypeError: ``spec`` is not a dict.
            ValueError: a field the class does not have (named, with the valid ones).

        Example:
            >>> from sitransport.ode import ODEOptions
            >>> options = ODEOptions.from_spec({"method": "rk4", "steps": 20})
            >>> options.method, options.steps, options.atol
            ('rk4', 20, 1e-05)
        """
        if not isinstance(spec, Mapping):
            raise TypeError(f"a {cls.__name__} spec must be a dict, got {type(spec).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(spec) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__} has no field(s) {unknown}; its fields are {sorted(names)}"
            )
        return cls(**spec)
