"""The network of a fit as a frozen spec: :class:`MLPSpec` (vectors), :class:`UNetSpec`
(images), their union ``NetworkSpec`` and :func:`network_from_spec`, which reads either back
from its ``spec()`` by its ``kind``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sitransport._spec import FieldsSpec
from sitransport._tree import plain
from sitransport._validation import check_choice, check_keys, check_positive_int

__all__ = ["MLP_KINDS", "MLPSpec", "UNetSpec", "network_from_spec"]

#: The network kinds of vectors that an :class:`MLPSpec` describes (its ``kind``); the one
#: list that ``fit(network=...)``, the builder (:mod:`sitransport.nn.builder`) and
#: :func:`network_from_spec` read.
MLP_KINDS: tuple[str, ...] = ("mlp", "potential")


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
        condition_fusion: how a conditional fit's condition enters the network: ``"film"``
            (each hidden layer scaled and shifted by functions of the condition's embedding)
            or ``"concat"`` (the embedding appended to the input); see
            :mod:`sitransport.nn.condition`. Unused without a condition. Default ``"film"``.

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
    condition_fusion: str = "film"

    def __post_init__(self) -> None:
        check_choice(self.kind, "MLP kind", MLP_KINDS)
        check_choice(self.condition_fusion, "condition_fusion", ("film", "concat"))
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
            ``channels``, ``image_size`` and ``condition`` the data set). Default ``"tiny"``.
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
        for key in ("channels", "image_size", "kind", "condition"):
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

        Raises:
            ValueError: another ``kind``, or other keys (named, with the valid ones).

        Example:
            >>> UNetSpec.from_spec({"kind": "unet", "preset": "tiny", "options": {}})
            UNetSpec(preset='tiny', options={})
        """
        fields = dict(spec)
        if fields.pop("kind", "unet") != "unet":
            raise ValueError(f"not a U-Net spec: {dict(spec)!r}")
        check_keys(cls, fields, "network 'unet'", header="kind")
        return cls(**fields)


#: What a fit's network is: an MLP on vectors or a U-Net on images.
NetworkSpec = MLPSpec | UNetSpec


def network_from_spec(spec: Mapping[str, Any]) -> NetworkSpec:
    """:class:`MLPSpec` or :class:`UNetSpec` from its ``spec()``, by its ``kind``.

    Args:
        spec: a network's ``spec()``: a dict whose ``kind`` is ``"mlp"``, ``"potential"`` or
            ``"unet"``, with that spec's fields.

    Raises:
        TypeError: ``spec`` is not a dict.
        ValueError: an unknown ``kind`` (the message lists the valid ones), or keys the spec
            of that kind does not have (named, with the valid ones).

    Example:
        >>> network_from_spec({"kind": "unet", "preset": "small", "options": {}})
        UNetSpec(preset='small', options={})
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"a network spec must be a dict, got {type(spec).__name__}")
    kind = check_choice(spec.get("kind"), "network kind", (*MLP_KINDS, UNetSpec.kind))
    return UNetSpec.from_spec(spec) if kind == UNetSpec.kind else MLPSpec.from_spec(spec)
