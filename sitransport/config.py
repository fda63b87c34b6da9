r"""The typed, serialisable record of how a flow was fitted: :class:`FitConfig`.

``flow.config`` is a frozen :class:`FitConfig` (``None`` for a flow built by hand). It is made
of the settings objects of the lower layers, :class:`~sitransport.train.TrainSettings`,
:class:`~sitransport.paths.PathSettings` and :class:`~sitransport.ode.ODEOptions`, and of
small frozen specs for what has no settings class of its own: the network
(:class:`MLPSpec`, :class:`UNetSpec`), the coupling (:class:`CouplingSpec`), checkpointing
(:class:`Checkpointing`) and latent coordinates (:class:`LatentSpec`). Every part turns into
plain data with ``spec()`` and back with ``from_spec()``; ``FitConfig.from_spec(c.spec()) ==
c`` exactly, and saved flows store ``config.spec()``. Files written before this record (whose
config is a flat dict of ``fit``'s arguments) are read with :meth:`FitConfig.from_legacy`.

Layers: this module imports only settings classes and registries from below (``train``,
``paths``, ``ode``, ``couplings``, ``interpolants``, ``losses``); ``flow`` and ``fitting``
import it.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sitransport._io import plain
from sitransport._spec import FieldsSpec
from sitransport._validation import (
    check_bool,
    check_choice,
    check_fraction,
    check_positive,
    check_positive_int,
    check_seed,
)
from sitransport.couplings import (
    Coupling,
    ExactOT,
    GlobalOT,
    Independent,
    Sinkhorn,
    get_coupling,
)
from sitransport.interpolants import get_interpolant
from sitransport.losses import get_time_sampler
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings
from sitransport.train import TrainSettings

__all__ = [
    "Checkpointing",
    "CouplingSpec",
    "FitConfig",
    "LatentSpec",
    "MLPSpec",
    "UNetSpec",
    "freeze_step",
    "network_from_spec",
]

#: The dtypes a fit trains in, by the name their spec uses.
_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
#: The built-in couplings by class name (legacy configs recorded their ``repr``).
_COUPLING_CLASSES: dict[str, type[Coupling]] = {
    cls.__name__: cls for cls in (ExactOT, GlobalOT, Independent, Sinkhorn)
}
#: The built-in time samplers by class name (legacy configs recorded their ``repr``).
_SAMPLER_NAMES = {"UniformTime": "uniform", "BetaTime": "beta"}


def freeze_step(freeze: Any, steps: int) -> int | None:
    """The last path step of a max–min fit frozen after a fraction ``freeze`` of ``steps``
    (``None``: ascend to the end, ``freeze == 1``).

    Args:
        freeze: the fraction of the run after which the path stops ascending, a number in
            ``[0, 1]``.
        steps: the number of training steps of the run.

    Raises:
        ValueError: ``freeze`` is not a number in ``[0, 1]``.

    Example:
        >>> freeze_step(0.5, 1000), freeze_step(1, 1000)
        (500, None)
    """
    if isinstance(freeze, bool) or not isinstance(freeze, (int, float)) or not 0 <= freeze <= 1:
        raise ValueError(f"path_freeze must be a number in [0, 1], got {freeze!r}")
    return None if freeze == 1 else int(freeze * steps)


# ------------------------------------------------------------------------------- network
@dataclass(frozen=True)
class MLPSpec(FieldsSpec):
    """The MLP velocity of a fit on vectors (:class:`~sitransport.nn.MLPVelocity`, or the
    gradient of an MLP potential, :class:`~sitransport.nn.PotentialVelocity`).

    Args:
        kind: ``"mlp"`` or ``"potential"``.
        width: hidden width (``None``: 128 for ``d <= 16``, 256 above).
        depth: hidden layers. Default ``4``.
        activation: activation name (see :class:`~sitransport.nn.MLPVelocity`). Default ``"silu"``.
        time_frequencies: sinusoidal time frequencies. Default ``8``.
        space_frequencies: octaves of positional features of ``x`` (0: none). Default ``0``.

    Example:
        >>> from sitransport import MLPSpec
        >>> spec = MLPSpec(width=64, depth=2)
        >>> spec.spec()["kind"], MLPSpec.from_spec(spec.spec()) == spec
        ('mlp', True)
    """

    kind: str = "mlp"
    width: int | None = None
    depth: int = 4
    activation: str = "silu"
    time_frequencies: int = 8
    space_frequencies: int = 0

    def __post_init__(self) -> None:
        check_choice(self.kind, "MLP kind", ("mlp", "potential"))
        if self.width is not None:
            check_positive_int(self.width, "width")
        check_positive_int(self.depth, "depth")
        if not isinstance(self.activation, str):
            raise TypeError(f"activation must be a name, got {self.activation!r}")
        check_positive_int(self.time_frequencies, "time_frequencies")
        check_positive_int(self.space_frequencies, "space_frequencies", minimum=0)


@dataclass(frozen=True)
class UNetSpec:
    """The U-Net velocity of a fit on images (:class:`~sitransport.nn.UNetVelocity`).

    Args:
        preset: a key of :data:`~sitransport.nn.UNET_PRESETS` whose arguments ``options``
            override, or ``None``: ``options`` are all of the U-Net's arguments (besides the
            ``channels`` and ``image_size`` the data set). Default ``"tiny"``.
        options: :class:`~sitransport.nn.UNetVelocity` arguments, as plain data. Default
            ``{}`` (the preset's).

    Example:
        >>> from sitransport import UNetSpec
        >>> spec = UNetSpec("tiny", {"dropout": 0.0})
        >>> spec.spec(), UNetSpec.from_spec(spec.spec()) == spec
        ({'kind': 'unet', 'preset': 'tiny', 'options': {'dropout': 0.0}}, True)
    """

    kind: ClassVar[str] = "unet"

    preset: str | None = "tiny"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preset is not None and not isinstance(self.preset, str):
            raise TypeError(f"U-Net preset must be a name or None, got {self.preset!r}")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"U-Net options must be a dict, got {type(self.options).__name__}")
        for key in ("channels", "image_size", "kind"):
            if key in self.options:
                raise ValueError(f"U-Net options[{key!r}] is set by the data, not the spec")
        object.__setattr__(self, "options", plain(dict(self.options)))  # tuples -> lists

    def spec(self) -> dict[str, Any]:
        """Plain data: ``{"kind": "unet", "preset": .., "options": {..}}``.

        Example:
            >>> UNetSpec("small", {"channel_mult": (1, 2)}).spec()["options"]  # lists, not tuples
            {'channel_mult': [1, 2]}
        """
        return {"kind": "unet", "preset": self.preset, "options": dict(self.options)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> UNetSpec:
        """The inverse of :meth:`spec`.

        Args:
            spec: a dict as :meth:`spec` returns it: ``kind`` (``"unet"``, optional), ``preset`` and
                ``options``.

        Example:
            >>> UNetSpec.from_spec({"kind": "unet", "preset": "tiny", "options": {}})
            UNetSpec(preset='tiny', options={})
        """
        fields = dict(spec)
        if fields.pop("kind", "unet") != "unet":
            raise ValueError(f"not a U-Net spec: {dict(spec)!r}")
        return cls(**fields)


#: What a fit's network is: an MLP on vectors or a U-Net on images.
NetworkSpec = MLPSpec | UNetSpec


def network_from_spec(spec: Mapping[str, Any]) -> NetworkSpec:
    """:class:`MLPSpec` or :class:`UNetSpec` from its ``spec()``, by its ``kind``.

    Args:
        spec: a network's ``spec()``: a dict whose ``kind`` is ``"mlp"``, ``"potential"`` or
            ``"unet"``, with that spec's fields.

    Raises:
        ValueError: an unknown ``kind`` (the message lists the valid ones).

    Example:
        >>> network_from_spec({"kind": "unet", "preset": "small", "options": {}})
        UNetSpec(preset='small', options={})
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"a network spec must be a dict, got {type(spec).__name__}")
    kind = check_choice(spec.get("kind"), "network kind", ("mlp", "potential", "unet"))
    return UNetSpec.from_spec(spec) if kind == "unet" else MLPSpec.from_spec(spec)


# ------------------------------------------------------------------------------ coupling
@dataclass(frozen=True)
class CouplingSpec:
    """The coupling of a fit: the ``spec()`` of a built-in coupling, or ``"paired"`` (the
    pairs ``(x0, T(x0))`` of :func:`~sitransport.reflow`).

    A user's :class:`~sitransport.couplings.Coupling` that :func:`get_coupling` cannot rebuild
    as itself (a subclass, or one whose ``spec()`` names no built-in) is kept in ``custom``:
    it trains and :meth:`build` returns it, but :meth:`spec` refuses it, so a flow fitted
    with it cannot be saved (never rebuilt as a built-in on loading).

    Args:
        name: a built-in coupling's name (``"independent"``, ``"exact_ot"``, ``"global_ot"``,
            ``"sinkhorn"``), ``"paired"`` for reflow, or the class name of a ``custom`` coupling.
            Default ``"independent"``.
        options: the built-in coupling's settings besides its name, as plain data (e.g.
            ``{"reg": 0.05}`` for Sinkhorn). Default ``{}``: the coupling's own defaults.
        custom: a user's coupling object that no spec rebuilds (then ``name`` is its class name and
            ``options`` empty); ``None`` for a built-in. Default ``None``.

    Example:
        >>> from sitransport.couplings import ExactOT
        >>> from sitransport.config import CouplingSpec
        >>> spec = CouplingSpec.of(ExactOT(processes=0))
        >>> spec.spec()
        {'name': 'exact_ot', 'processes': 0, 'block': 256}
        >>> spec.build()
        ExactOT(processes=0, block=256)
    """

    #: The name of reflow's coupling (pairs from a map), which is no Coupling object.
    PAIRED: ClassVar[str] = "paired"

    name: str = "independent"
    options: dict[str, Any] = field(default_factory=dict)
    custom: Coupling | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.custom is not None:
            return
        if not isinstance(self.options, Mapping):
            raise TypeError(f"coupling options must be a dict, got {type(self.options).__name__}")
        object.__setattr__(self, "options", dict(self.options))
        if self.name != self.PAIRED:
            get_coupling(self.spec())  # a built-in: the name and options are checked

    @classmethod
    def of(cls, coupling: Coupling) -> CouplingSpec:
        """The spec of a coupling object (``custom`` if it cannot be rebuilt as itself).

        Args:
            coupling: a :class:`~sitransport.couplings.Coupling` instance, built-in or the user's.

        Example:
            >>> from sitransport.couplings import ExactOT, Sinkhorn
            >>> CouplingSpec.of(Sinkhorn(reg=0.1))
            CouplingSpec(name='sinkhorn', options={'reg': 0.1, 'replace': False})
            >>> class Mine(ExactOT): ...
            >>> CouplingSpec.of(Mine()).name  # a subclass: kept as the user's object
            'Mine'
        """
        try:
            spec = dict(coupling.spec())
            rebuilt = get_coupling(spec)
        except (NotImplementedError, TypeError, ValueError, KeyError):
            return cls(type(coupling).__qualname__, {}, custom=coupling)
        if type(rebuilt) is not type(coupling) or rebuilt.spec() != spec:
            return cls(type(coupling).__qualname__, {}, custom=coupling)
        name = spec.pop("name")
        return cls(name, spec)

    def spec(self) -> dict[str, Any]:
        """Plain data: ``{"name": .., **options}``, the coupling's own ``spec()``.

        Raises:
            TypeError: a user's coupling (``custom``), which a file cannot rebuild.

        Example:
            >>> CouplingSpec("exact_ot", {"processes": 0}).spec()
            {'name': 'exact_ot', 'processes': 0}
        """
        if self.custom is not None:
            raise TypeError(
                f"the coupling {self.name} is not a built-in sitransport coupling (its spec() "
                "does not rebuild it with get_coupling), so a saved flow could not record it "
                "and would load it as something else; fit with a built-in coupling "
                "(independent, exact_ot, global_ot, sinkhorn) to save the flow"
            )
        return {"name": self.name, **self.options}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | str) -> CouplingSpec:
        """The inverse of :meth:`spec`; a name alone is its default options.

        Args:
            spec: a dict as :meth:`spec` returns it (``{"name": ..., **options}``), or a coupling's
                name alone.

        Example:
            >>> CouplingSpec.from_spec("sinkhorn")
            CouplingSpec(name='sinkhorn', options={'reg': 0.05, 'replace': False})
        """
        if isinstance(spec, str):
            spec = {"name": spec}
        fields = dict(spec)
        name = fields.pop("name", None)
        if name != cls.PAIRED:
            return cls.of(get_coupling({"name": name, **fields}))  # defaults filled in
        return cls(name, fields)

    def build(self) -> Coupling:
        """The coupling object (a fresh built-in, or the user's own).

        Raises:
            ValueError: the spec is reflow's ``"paired"``, which is no coupling object.

        Example:
            >>> CouplingSpec("global_ot", {"n": 512}).build()
            GlobalOT(n=512, reuse=250, processes=1)
        """
        if self.custom is not None:
            return self.custom
        if self.name == self.PAIRED:
            raise ValueError("the 'paired' coupling of reflow pairs x0 with T(x0): no object")
        return get_coupling(self.spec())


# ------------------------------------------------------------------- checkpoint, latent
@dataclass(frozen=True)
class Checkpointing(FieldsSpec):
    """Where and how often a fit checkpoints, and whether it resumes: ``fit``'s
    ``checkpoint=`` (a directory alone is ``Checkpointing(dir)``).

    Args:
        dir: the folder of ``checkpoint.pt`` (a str or path; kept as a str).
        every: steps between checkpoints. Default ``1000``.
        resume: continue from the checkpoint found in ``dir``, if there is one (it must
            belong to the same settings and data: see :func:`~sitransport.fit`). Default ``False``.

    Example:
        >>> from sitransport import Checkpointing
        >>> Checkpointing("runs/a", every=500).spec()
        {'dir': 'runs/a', 'every': 500, 'resume': False}
    """

    dir: str
    every: int = 1000
    resume: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.dir, os.PathLike):
            object.__setattr__(self, "dir", os.fspath(self.dir))
        if not isinstance(self.dir, str) or not self.dir:
            raise TypeError(f"checkpoint dir must be a non-empty str or path, got {self.dir!r}")
        check_positive_int(self.every, "checkpoint every")
        check_bool(self.resume, "resume")


@dataclass(frozen=True)
class LatentSpec(FieldsSpec):
    """A fit in principal coordinates (``fit(..., latent=..)``): ``components`` axes, or
    ``None`` for as many as keep ``variance`` of the variance (``latent="pca"``).

    Args:
        components: principal axes kept (default ``None``: chosen by ``variance``).
        variance: fraction of the variance, in ``(0, 1]``, that the axes kept must explain
            when ``components`` is ``None`` (default 0.999).

    Example:
        >>> from sitransport import LatentSpec
        >>> LatentSpec(None, 0.99).spec()
        {'components': None, 'variance': 0.99}
    """

    components: int | None = None
    variance: float = 0.999

    def __post_init__(self) -> None:
        if self.components is not None:
            check_positive_int(self.components, "latent components")
        check_positive(self.variance, "LatentSpec.variance")  # a finite number > 0
        if self.variance > 1:
            raise ValueError(f"LatentSpec.variance must be in (0, 1], got {self.variance!r}")


# ---------------------------------------------------------------------------- FitConfig
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
    return next(name for name, d in _DTYPES.items() if d == dtype)


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
    "dtype": (_dtype_name, lambda name: _DTYPES[check_choice(name, "dtype", _DTYPES)]),
    "latent": (_optional(LatentSpec.spec), _optional(LatentSpec.from_spec)),
}

#: The field of :class:`FitConfig` each structured part must be an instance of.
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
        training: the optimisation settings. Default ``TrainSettings()``.
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

    Example:
        >>> from sitransport.train import TrainSettings
        >>> from sitransport.config import FitConfig
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

    def __post_init__(self) -> None:
        for name, kind in _TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise TypeError(f"FitConfig.{name} has the wrong type: {type(value).__name__}")
        self._check_optional_parts()
        object.__setattr__(self, "interpolant", _record(self.interpolant))
        object.__setattr__(self, "time_sampler", _record(self.time_sampler))
        get_time_sampler(self.time_sampler)  # a built-in sampler's spec
        if self.dtype not in _DTYPES.values():
            raise ValueError(f"FitConfig.dtype must be float32 or float64, got {self.dtype}")
        self._check_scalars()

    def _check_optional_parts(self) -> None:
        for name, kind in (
            ("path", PathSettings),
            ("checkpoint", Checkpointing),
            ("latent", LatentSpec),
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
        if not cls.is_spec(spec) or spec.get("version") != cls.VERSION:
            raise ValueError(
                f"not a FitConfig spec of version {cls.VERSION}: format "
                f"{spec.get('format') if isinstance(spec, Mapping) else None!r}, "
                f"version {spec.get('version') if isinstance(spec, Mapping) else None!r}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        given = set(spec) - {"format", "version"}
        if given != names:
            raise ValueError(
                f"FitConfig spec fields differ: unknown {sorted(given - names)}, "
                f"missing {sorted(names - given)}"
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
        return _Legacy(dict(config), shape).convert()


# ------------------------------------------------------------------ legacy conversion
def _parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]] | None:
    """``("Name", args, kwargs)`` of a ``repr`` like ``Name(1, a='x')`` with literal
    arguments (parsed, never evaluated); ``None`` if it is not one."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if not (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))):
            return None
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None
    return name, args, kwargs


class _Legacy:
    """The conversion of one legacy config dict (see :meth:`FitConfig.from_legacy`)."""

    def __init__(self, old: dict[str, Any], shape: tuple[int, ...] | None) -> None:
        self.old, self.shape = old, shape

    def get(self, key: str, default: Any = None) -> Any:
        value = self.old.get(key, default)
        return default if value is None and default is not None else value

    def fail(self, key: str) -> ValueError:
        return ValueError(f"legacy config: cannot convert {key}={self.old.get(key)!r}")

    def convert(self) -> FitConfig:
        training = TrainSettings(
            **{f.name: self.old[f.name] for f in dataclasses.fields(TrainSettings)
               if f.name in self.old}
        )  # fmt: skip
        latent = self.get("latent")
        return FitConfig(
            training=training,
            network=self.network(),
            coupling=self.coupling(),
            interpolant=self.interpolant(),
            time_sampler=self.time_sampler(),
            path=self.path(training.steps),
            ode=self.ode(),
            checkpoint=self.checkpoint(training.checkpoint_every),
            seed=self.get("seed", 0),
            device=self.device(),
            dtype=self.dtype(),
            validation=self.get("validation", 0.1),
            normalize=self.get("normalize", True),
            remedy=self.get("remedy"),
            num_workers=self.get("num_workers", 0),
            latent=None if latent is None else self.latent(latent),
            rank0=self.get("rank0"),
            rank1=self.get("rank1"),
            sample_method=self.get("sample_method", "ode"),
            reflow_generation=self.get("reflow_generation", 0),
            reflow_pairs=self.get("reflow_pairs"),
        )

    def network(self) -> NetworkSpec:
        network = self.get("network", "auto")
        images = self.shape is not None and len(self.shape) == 3
        if isinstance(network, dict) or network not in ("auto", "mlp", "potential") or images:
            if isinstance(network, dict):
                options = {k: v for k, v in network.items() if k not in ("preset", "kind")}
                return UNetSpec(network.get("preset"), options)
            preset = network if network not in ("auto", "unet") else None
            if preset is None and self.shape is not None:
                preset = "tiny" if max(self.shape[1:]) <= 16 else "small"
            return UNetSpec(preset, {})
        width = self.get("width")
        if width is None and self.shape is not None:
            width = 128 if self.shape[0] <= 16 else 256
        return MLPSpec(
            kind="potential" if network == "potential" else "mlp",
            width=width,
            depth=self.get("depth", 4),
            activation=self.get("activation", "silu"),
            time_frequencies=self.get("time_frequencies", 8),
            space_frequencies=self.get("space_frequencies", 0),
        )

    def coupling(self) -> CouplingSpec:
        value = self.get("coupling", "independent")
        if isinstance(value, (dict, str)) and (not isinstance(value, str) or "(" not in value):
            return CouplingSpec.from_spec(value)
        call = _parse_call(value) if isinstance(value, str) else None
        if call is None or call[0] not in _COUPLING_CLASSES or call[1]:
            raise self.fail("coupling")
        return CouplingSpec.of(_COUPLING_CLASSES[call[0]](**call[2]))

    def interpolant(self) -> dict[str, Any] | None:
        value = self.get("interpolant", "trig")
        if isinstance(value, str) and "(" in value:
            call = _parse_call(value)
            if call is None or call[1]:
                return None  # a user interpolant: the flow holds it
            value = {"name": call[0].lower(), **call[2]}
        try:
            return get_interpolant(value).spec()
        except (TypeError, ValueError, KeyError):
            return None

    def time_sampler(self) -> dict[str, Any]:
        value = self.get("time_sampler", "uniform")
        if isinstance(value, str) and "(" in value:
            call = _parse_call(value)
            if call is None or call[0] not in _SAMPLER_NAMES or call[1]:
                raise self.fail("time_sampler")
            value = {"name": _SAMPLER_NAMES[call[0]], **call[2]}
        return get_time_sampler(value).spec()

    def path(self, steps: int) -> PathSettings | None:
        if not self.get("optimize_path", False):
            return None
        return PathSettings(
            lr=self.get("path_lr", 5e-3),
            every=self.get("path_every", 1),
            start=self.get("path_start", 1000),
            mode=self.get("path_mode", "alternating"),
            stop=freeze_step(self.get("path_freeze", 0.5), steps),
        )

    def ode(self) -> ODEOptions:
        value = self.get("ode")
        if value is None:
            return ODEOptions()
        call = _parse_call(value) if isinstance(value, str) else None
        if call is None or call[0] != "ODEOptions" or call[1]:
            raise self.fail("ode")
        return ODEOptions(**call[2])

    def checkpoint(self, every: int) -> Checkpointing | None:
        value = self.get("checkpoint_dir")
        if value is None:
            return None
        if isinstance(value, str) and value.endswith(")"):
            call = _parse_call(value)  # PosixPath('runs/a')
            if call is None or len(call[1]) != 1 or not isinstance(call[1][0], str):
                raise self.fail("checkpoint_dir")
            value = call[1][0]
        return Checkpointing(value, every, bool(self.get("resume", False)))

    def device(self) -> str:
        value = self.get("device", "cpu")
        if isinstance(value, str) and value.startswith("device("):
            call = _parse_call(value)  # device(type='cuda', index=0)
            if call is None:
                raise self.fail("device")
            value = str(torch.device(*call[1], **call[2]))
        return str(value)

    def dtype(self) -> torch.dtype:
        value = str(self.get("dtype", "torch.float32"))
        name = value.removeprefix("torch.")
        if name not in _DTYPES:
            raise self.fail("dtype")
        return _DTYPES[name]

    def latent(self, value: Any) -> LatentSpec:
        components = None if value == "pca" else value
        return LatentSpec(components, self.get("latent_variance", 0.999))
