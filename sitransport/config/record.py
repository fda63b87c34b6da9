"""The fit record :class:`FitConfig`: the frozen, serialisable settings of one fit (training,
network, coupling, interpolant, time sampler, path, ODE, checkpointing, latent coordinates and
the run's scalars), with ``spec()`` / ``from_spec()`` and the conversion of legacy flat dicts
(:meth:`FitConfig.from_legacy`, done in :mod:`sitransport.config.legacy`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sitransport._tree import plain
from sitransport._validation import (
    check_bool,
    check_choice,
    check_fraction,
    check_positive,
    check_positive_int,
    check_seed,
)
from sitransport.config.coupling import CouplingSpec, OTChoice
from sitransport.config.legacy import Legacy
from sitransport.config.network import MLPSpec, NetworkSpec, UNetSpec, network_from_spec
from sitransport.config.training import DTYPES, Checkpointing, LatentSpec, TrainSettings
from sitransport.losses import get_time_sampler
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings

__all__ = ["FitConfig"]


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _record(spec: Any) -> dict[str, Any] | None:
    """A spec dict without tensors (a neural path's weights), copied; ``None`` stays."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise TypeError(f"a spec must be a dict with a 'name', got {spec!r:.80}")
    return {str(k): v for k, v in _plain_items(spec)}


def _plain_items(spec: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The items of a spec as plain data, tensors left out."""
    return [(k, plain(v)) for k, v in spec.items() if not isinstance(v, torch.Tensor)]


def _dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, d in DTYPES.items() if d == dtype)


#: How each structured field of :class:`FitConfig` becomes plain data and back; the other
#: fields are plain already.
_PARTS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "training": (TrainSettings.spec, TrainSettings.from_spec),
    "network": (lambda n: n.spec(), network_from_spec),
    "coupling": (lambda c: c.spec(), CouplingSpec.from_spec),
    "interpolant": (_record, _record),
    "time_sampler": (_record, _record),
    "path": (_optional(PathSettings.spec), _optional(PathSettings.from_spec)),
    "ode": (ODEOptions.spec, ODEOptions.from_spec),
    "checkpoint": (_optional(Checkpointing.spec), _optional(Checkpointing.from_spec)),
    "dtype": (_dtype_name, lambda name: DTYPES[check_choice(name, "dtype", DTYPES)]),
    "latent": (_optional(LatentSpec.spec), _optional(LatentSpec.from_spec)),
    "ot_choice": (_optional(OTChoice.spec), _optional(OTChoice.from_spec)),
}

#: The field of :class:`FitConfig` each structured part must be an instance of.
#: The kinds of conditional fit (``FitConfig.condition``).
CONDITION_KINDS = ("labels", "features", "paired labels", "paired features")

_TYPES: dict[str, type | tuple[type, ...]] = {
    "training": TrainSettings,
    "network": (MLPSpec, UNetSpec),
    "coupling": CouplingSpec,
    "ode": ODEOptions,
    "dtype": torch.dtype,
}


@dataclass(frozen=True)
class FitConfig:
    """How a flow was fitted: what :func:`~sitransport.fit` and :func:`~sitransport.reflow`
    record in ``flow.config`` (read-only; change a copy with :func:`dataclasses.replace`).

    Args:
        training: the optimisation settings, kept without their ``callbacks``. Default
            ``TrainSettings()``.
        network: the velocity network (:class:`MLPSpec` or :class:`UNetSpec`). Default
            ``MLPSpec()``.
        coupling: how batches were paired. Default ``CouplingSpec()`` (independent pairs).
        interpolant: ``spec()`` of the interpolant the fit started from (tensors left out;
            ``None``: a user interpolant, which the flow itself holds). Default
            ``{"name": "trig"}``.
        time_sampler: ``spec()`` of the distribution of training times. Default
            ``{"name": "uniform"}``.
        path: settings of the ascent on a learnable path (``None``: a fixed path).
        ode: the ODE settings the flow's methods use unless given others. Default
            ``ODEOptions()`` (``dopri5``).
        checkpoint: checkpointing (``None``: none).
        seed: the seed of the run. Default ``0``.
        device: where it trained (``"cpu"``, ``"cuda:0"``, ...).
        dtype: the network's dtype. Default ``torch.float32``.
        validation: fraction of each sample set held out. Default ``0.1``.
        normalize: trained in normalised coordinates. Default ``True``.
        remedy: ``fit``'s ``remedy`` (``None`` or ``"auto"``).
        num_workers: ``DataLoader`` workers of a dataset end. Default ``0``.
        latent: principal coordinates (``None``: the data's own).
        rank0: effective rank of ``rho0``'s samples, the number of covariance eigenvalues
            above ``1e-6`` times the largest (``None``: not computed, e.g. images).
        rank1: effective rank of ``rho1``'s samples, as ``rank0``. Default ``None``.
        sample_method: the default of :meth:`~sitransport.TransportFlow.sample`
            (``"ode"`` or ``"sde"``).
        reflow_generation: 0 for a fit, ``k`` after ``k`` reflows. Default ``0``.
        reflow_pairs: pairs generated by the last reflow (``None`` for a fit).
        condition: the conditions of a conditional fit: ``"labels"`` or ``"features"``
            (``condition=c``), ``"paired labels"`` or ``"paired features"``
            (``condition=(c0, c1)``); ``None`` (default): unconditional.
        condition_weight: the weight ``lambda`` of the condition in the pairing cost of
            continuous features (``None``: the default, or not applicable).
        ot_choice: what ``coupling="ot"`` picked and why (:class:`OTChoice`; ``coupling``
            is then the concrete coupling); ``None`` (default): the coupling was named.

    Example:
        >>> from sitransport.config import FitConfig, TrainSettings
        >>> config = FitConfig(training=TrainSettings(steps=100), seed=3)
        >>> plain = config.spec()
        >>> plain["training"]["steps"], plain["dtype"], FitConfig.from_spec(plain) == config
        (100, 'float32', True)
    """

    #: ``format`` and ``version`` heading :meth:`spec` (legacy configs have neither).
    FORMAT: ClassVar[str] = "sitransport.FitConfig"
    VERSION: ClassVar[int] = 1

    training: TrainSettings = field(default_factory=TrainSettings)
    network: NetworkSpec = field(default_factory=MLPSpec)
    coupling: CouplingSpec = field(default_factory=CouplingSpec)
    interpolant: dict[str, Any] | None = field(default_factory=lambda: {"name": "trig"})
    time_sampler: dict[str, Any] = field(default_factory=lambda: {"name": "uniform"})
    path: PathSettings | None = None
    ode: ODEOptions = field(default_factory=ODEOptions)
    checkpoint: Checkpointing | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    validation: float = 0.1
    normalize: bool = True
    remedy: str | None = None
    num_workers: int = 0
    latent: LatentSpec | None = None
    rank0: int | None = None
    rank1: int | None = None
    sample_method: str = "ode"
    reflow_generation: int = 0
    reflow_pairs: int | None = None
    condition: str | None = None
    condition_weight: float | None = None
    ot_choice: OTChoice | None = None

    #: The defaults of the fields added after version 1 was first written, taken by a spec
    #: without them.
    ADDED: ClassVar[dict[str, Any]] = {
        "condition": None,
        "condition_weight": None,
        "ot_choice": None,
    }

    def __post_init__(self) -> None:
        for name, kind in _TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise TypeError(f"FitConfig.{name} has the wrong type: {type(value).__name__}")
        self._check_optional_parts()
        # callbacks are objects of the running process, not a record of the fit
        object.__setattr__(self, "training", self.training.without_callbacks())
        object.__setattr__(self, "interpolant", _record(self.interpolant))
        object.__setattr__(self, "time_sampler", _record(self.time_sampler))
        get_time_sampler(self.time_sampler)  # a built-in sampler's spec
        if self.dtype not in DTYPES.values():
            raise ValueError(f"FitConfig.dtype must be float32 or float64, got {self.dtype}")
        self._check_scalars()

    def _check_optional_parts(self) -> None:
        for name, kind in (
            ("path", PathSettings),
            ("checkpoint", Checkpointing),
            ("latent", LatentSpec),
            ("ot_choice", OTChoice),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"FitConfig.{name} must be a {kind.__name__} or None")
        if self.checkpoint is not None and self.checkpoint.every != self.training.checkpoint_every:
            raise ValueError(
                f"checkpoint.every={self.checkpoint.every} differs from "
                f"training.checkpoint_every={self.training.checkpoint_every}"
            )

    def _check_scalars(self) -> None:
        check_seed(self.seed)
        if not isinstance(self.device, str):
            raise TypeError(f"FitConfig.device must be a str, got {self.device!r}")
        check_fraction(self.validation, "validation", high=0.9 + 1e-12)
        check_bool(self.normalize, "normalize")
        if self.remedy is not None:
            check_choice(self.remedy, "remedy", ("auto",))
        check_positive_int(self.num_workers, "num_workers", minimum=0)
        for name in ("rank0", "rank1", "reflow_pairs"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name, minimum=0)
        check_choice(self.sample_method, "sample_method", ("ode", "sde"))
        check_positive_int(self.reflow_generation, "reflow_generation", minimum=0)
        if self.condition is not None:
            check_choice(self.condition, "condition", CONDITION_KINDS)
        if self.condition_weight is not None:
            check_positive(self.condition_weight, "condition_weight")

    def spec(self) -> dict[str, Any]:
        """Plain data (numbers, strings, ``None``, lists and dicts of them), headed by
        ``"format"`` and ``"version"``; :meth:`from_spec` rebuilds an equal config.

        Raises:
            TypeError: a part a file cannot describe (a user's coupling: see
                :class:`CouplingSpec`); the message names it.

        Example:
            >>> spec = FitConfig(seed=1).spec()
            >>> spec["format"], spec["version"], spec["seed"], spec["network"]["kind"]
            ('sitransport.FitConfig', 1, 1, 'mlp')
        """
        out: dict[str, Any] = {"format": self.FORMAT, "version": self.VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _PARTS[f.name][0](value) if f.name in _PARTS else value
        return out

    @classmethod
    def is_spec(cls, data: Any) -> bool:
        """Whether ``data`` is headed as a :meth:`spec` (and not a legacy flat dict).

        Args:
            data: any object, typically the ``config`` entry of a saved flow's payload.

        Example:
            >>> FitConfig.is_spec(FitConfig().spec()), FitConfig.is_spec({"steps": 10})
            (True, False)
        """
        return isinstance(data, Mapping) and data.get("format") == cls.FORMAT

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FitConfig:
        """The inverse of :meth:`spec`.

        Args:
            spec: a dict as :meth:`spec` returns it: ``format`` and ``version`` headers and every
                field, its parts as plain data.

        Raises:
            ValueError: not a spec of this version, or unknown or missing fields (named).

        Example:
            >>> config = FitConfig(dtype=torch.float64, sample_method="sde")
            >>> again = FitConfig.from_spec(config.spec())
            >>> again == config, again.dtype
            (True, torch.float64)
        """
        version = spec.get("version") if isinstance(spec, Mapping) else None
        typed = type(version) is int  # a bool is no version, though True == 1
        if not cls.is_spec(spec) or not typed or version != cls.VERSION:
            kind = "" if typed else f" (a {type(version).__name__}, expected an integer)"
            raise ValueError(
                f"not a FitConfig spec of version {cls.VERSION}: format "
                f"{spec.get('format') if isinstance(spec, Mapping) else None!r}, "
                f"version {version!r}{kind}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        given = set(spec) - {"format", "version"}
        spec = {**cls.ADDED, **spec}  # files written before those fields
        if given | set(cls.ADDED) != names:
            raise ValueError(
                f"FitConfig spec fields differ: unknown {sorted(given - names)}, "
                f"missing {sorted(names - given - set(cls.ADDED))}"
            )
        kwargs = {k: _PARTS[k][1](spec[k]) if k in _PARTS else spec[k] for k in names}
        return cls(**kwargs)

    @classmethod
    def from_legacy(
        cls, config: Mapping[str, Any], *, shape: tuple[int, ...] | None = None
    ) -> FitConfig:
        """Convert the flat dict that ``flow.config`` was before this class (a file saved by
        sitransport up to 0.1.0.dev with ``fit``'s arguments as plain data, objects as their
        ``repr``) into a :class:`FitConfig`.

        Keys that a fit did not record take ``fit``'s defaults. ``repr`` strings of
        built-in objects (``"ExactOT(processes=0, block=256)"``, ``"ODEOptions(...)"``,
        ``"device(type='cuda', index=0)"``, ``"PosixPath('runs')"``) are parsed as literals,
        never evaluated.

        Args:
            config: the legacy dict.
            shape: the flow's per-sample shape; resolves ``network="auto"`` and
                ``width=None`` as the fit did. Default ``None``.

        Raises:
            ValueError, TypeError: a value that names no built-in object (the message names
                the key), e.g. the ``repr`` of a user's coupling.

        Example:
            >>> old = {"steps": 50, "coupling": "ExactOT(processes=0, block=256)",
            ...        "dtype": "torch.float64", "width": None, "network": "auto"}
            >>> config = FitConfig.from_legacy(old, shape=(2,))
            >>> config.training.steps, config.coupling.name, config.dtype, config.network.width
            (50, 'exact_ot', torch.float64, 128)
        """
        return cls(**Legacy(dict(config), shape).convert())
