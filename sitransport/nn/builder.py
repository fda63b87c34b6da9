"""The one builder of velocity networks: ``fit``'s ``network=`` resolved to a spec
(:class:`~sitransport.config.MLPSpec`, :class:`~sitransport.config.UNetSpec`), a spec to the
network's ``config`` and a freshly initialised module (:func:`build_network`, which rebuilds
any of ours from its ``config``, as saved flows store it), and a module back to its spec."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import torch
from torch import nn

from sitransport._io import check_sizes, state_mismatch, weights_problem
from sitransport._validation import check_choice, check_keys
from sitransport.config import MLP_KINDS, MLPSpec, NetworkSpec, UNetSpec
from sitransport.ends.conditions import ConditionEncoder
from sitransport.nn.mlp import MLPVelocity, VelocityDenoiser
from sitransport.nn.potential import PotentialVelocity
from sitransport.nn.unet import UNET_PRESETS, UNetVelocity, unet_config

__all__ = [
    "build_from_spec",
    "build_network",
    "fresh_network",
    "network_config",
    "network_spec",
    "network_spec_of",
    "read_network",
    "seeded_network",
]


def _velocity_denoiser(velocity: dict[str, Any], denoiser: dict[str, Any]) -> nn.Module:
    return VelocityDenoiser(build_network(velocity), build_network(denoiser))


_NETWORKS: dict[str, Any] = {
    "mlp": MLPVelocity,
    "potential": PotentialVelocity,
    "unet": UNetVelocity,
    "velocity_denoiser": _velocity_denoiser,
}


def build_network(config: dict[str, Any]) -> nn.Module:
    """Rebuild a velocity network from its ``config`` dict (as stored in saved flows).

    Args:
        config: a network's ``config`` dict: ``kind`` (``"mlp"``, ``"potential"``, ``"unet"``, ...)
            and that class's constructor arguments.

    Raises:
        ValueError: unknown ``kind`` (the message lists the valid ones), or keys its class
            does not take or missing ones it needs (named, with the valid keys).

    Example:
        >>> net = MLPVelocity(2, width=32, depth=2)
        >>> copy = build_network(net.config)  # same architecture, fresh weights
        >>> type(copy).__name__, copy.config == net.config
        ('MLPVelocity', True)
        >>> copy.load_state_dict(net.state_dict())
        <All keys matched successfully>
    """
    kwargs = dict(config)
    kind = check_choice(kwargs.pop("kind", None), "network kind", _NETWORKS)
    check_keys(_NETWORKS[kind], kwargs, f"network {kind!r}", header="kind")
    return _NETWORKS[kind](**kwargs)


#: Keys of network descriptions that count layers.
LAYER_COUNTS = ("depth", "num_res_blocks")


def read_network(config: Any, state: Any, shape: tuple[int, ...]) -> nn.Module:
    """The network of a file, built only once its description is known to match the stored
    weights (so a crafted width cannot make it allocate more than the file holds).

    Args:
        config: the stored description (as :func:`build_network` takes it).
        state: the stored ``state_dict``.
        shape: the flow's sample shape, which the network must take.

    Raises:
        TypeError: the records are not dicts.
        ValueError: a size above the file limit, more layers than tensors stored, weights
            that do not match the description (or are not real floating point, mix dtypes,
            or hold NaN or infinity), or another sample shape.

    Example:
        >>> from sitransport.nn import MLPVelocity
        >>> net = MLPVelocity(2, width=8, depth=1)
        >>> read_network(net.config, net.state_dict(), (2,)).config == net.config
        True
    """
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise TypeError("the network record must be a description dict and a state dict")
    layers = check_sizes(config, "network description", LAYER_COUNTS)
    if layers > 4 * len(state) + 16:
        raise ValueError(
            f"the network description asks for ~{layers} layers but the file stores "
            f"{len(state)} tensors"
        )
    with torch.device("meta"):
        meta = build_network(config)
    problem = state_mismatch(state, meta)
    if problem is not None:
        raise ValueError(f"the network's weights do not match its description: {problem}")
    problem = weights_problem(state)
    if problem is not None:
        raise ValueError(f"the network's weights are unusable: {problem}")
    net_shape = _sample_shape(meta, config)
    if net_shape is not None and tuple(net_shape) != shape:
        raise ValueError(f"the network takes samples of shape {tuple(net_shape)}, not {shape}")
    net = build_network(config)
    first = next(iter(state.values()), None)
    if first is not None:
        net = net.to(dtype=first.dtype)
    net.load_state_dict(state)
    return net


def _sample_shape(module: nn.Module, config: dict[str, Any]) -> tuple[int, ...] | None:
    """The sample shape a network takes, from its ``shape`` or its description's ``dim``;
    a velocity-denoiser pair's is its velocity's."""
    if isinstance(module, VelocityDenoiser):
        return _sample_shape(module.velocity, config.get("velocity", {}))
    shape = getattr(module, "shape", None)
    if shape is not None:
        return tuple(shape)
    return (config["dim"],) if "dim" in config else None


def network_config(
    spec: NetworkSpec, shape: tuple[int, ...], condition: ConditionEncoder | None = None
) -> dict[str, Any]:
    """The ``config`` of the network of ``spec`` for samples of ``shape``: what
    :func:`build_network` builds it from (an MLP width of ``None`` is the default width).

    Args:
        spec: the network's spec.
        shape: the sample shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.
        condition: the conditions of a conditional network (their codes' kind and size;
            an MLP's fusion is ``spec.condition_fusion``). Default ``None``.

    Example:
        >>> config = network_config(MLPSpec(width=32, depth=2), (2,))
        >>> config["kind"], config["width"], build_network(config).config == config
        ('mlp', 32, True)
    """
    if isinstance(spec, UNetSpec):
        config = {"kind": spec.kind, **_unet_arguments(spec, shape)}
        if condition is not None:
            config["condition"] = {"kind": condition.kind, "size": condition.size}
        return config
    d = shape[0]
    inputs = (
        {}
        if condition is None
        else {
            "condition": {
                "kind": condition.kind,
                "size": condition.size,
                "fusion": spec.condition_fusion,
            }
        }
    )
    return {
        "kind": spec.kind,
        "dim": d,
        "width": spec.width if spec.width is not None else _default_width(d),
        "depth": spec.depth,
        "activation": spec.activation,
        "time_frequencies": spec.time_frequencies,
        "space_frequencies": spec.space_frequencies,
        **inputs,
    }


def build_from_spec(
    spec: NetworkSpec, shape: tuple[int, ...], condition: ConditionEncoder | None = None
) -> nn.Module:
    """A freshly initialised network of ``spec`` for samples of ``shape``.

    Args:
        spec: the network's spec.
        shape: the sample shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.
        condition: the conditions of a conditional network. Default ``None``.

    Example:
        >>> type(build_from_spec(MLPSpec("potential", width=16), (3,))).__name__
        'PotentialVelocity'
    """
    return build_network(network_config(spec, shape, condition))


def seeded_network(
    spec: NetworkSpec,
    shape: tuple[int, ...],
    stochastic: bool,
    seed: int,
    condition: ConditionEncoder | None = None,
) -> nn.Module:
    """The velocity network of ``fit``, initialised from ``seed`` (the global RNG is left as
    it was), with a second one for the denoiser of a stochastic interpolant.

    Args:
        spec: the network's spec.
        shape: the sample shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.
        stochastic: also build a denoiser (a :class:`VelocityDenoiser` pair).
        seed: the seed of the initial weights.
        condition: the conditions of a conditional network. Default ``None``.
    """
    with torch.random.fork_rng(devices=[]):  # seeded weight init, global RNG untouched
        torch.manual_seed(seed)
        net = build_from_spec(spec, shape, condition)
        if stochastic:  # a second network for the denoiser eta_z (score = -eta_z / gamma)
            net = VelocityDenoiser(net, build_from_spec(spec, shape, condition))
    return net


def fresh_network(
    network: Any,
    shape: tuple[int, ...],
    spec: NetworkSpec,
    condition: ConditionEncoder | None = None,
) -> nn.Module:
    """A newly initialised velocity network of the same architecture as ``network`` (the
    velocity part of a velocity-denoiser pair); one of ``spec`` when ``network`` is not one
    of ours.

    Args:
        network: the network of a flow (a velocity-denoiser pair gives its velocity).
        shape: the sample shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.
        spec: the spec built from when ``network`` is not one of ours.
        condition: the conditions of a conditional flow, for a network built from ``spec``
            (ours keep their condition input in their description). Default ``None``.
    """
    network = getattr(network, "velocity", network)
    config_of: dict[str, Any] = getattr(network, "config", {})  # ours all have one
    if isinstance(network, _classes(*MLP_KINDS, UNetSpec.kind)):
        kind = type(network)  # a user's subclass stays itself
        return kind(**{k: v for k, v in config_of.items() if k != "kind"})
    return build_from_spec(spec, shape, condition)


def network_spec(network: Any, shape: tuple[int, ...]) -> NetworkSpec:
    """The network of ``fit`` from its ``network`` argument, checked against the data: an
    :class:`MLPSpec` of resolved width for vectors, a :class:`UNetSpec` for images.

    Args:
        network: ``fit``'s ``network=`` argument: ``"auto"``, a network name, a U-Net preset
            name or a spec.
        shape: the sample shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.

    Raises:
        TypeError: ``network`` is neither a name nor a spec.
        ValueError: an unknown name, a network that does not apply to the data (an MLP for
            images, a U-Net for vectors) or U-Net options the preset refuses.

    Example:
        >>> network_spec("auto", (2,)).width, network_spec("auto", (1, 8, 8))
        (128, UNetSpec(preset='tiny', options={}))
    """
    images = len(shape) == 3
    spec: NetworkSpec
    if isinstance(network, str):
        check_choice(network, "network", ("auto", *MLP_KINDS, UNetSpec.kind, *UNET_PRESETS))
        name = (UNetSpec.kind if images else "mlp") if network == "auto" else network
        auto_preset = "tiny" if images and max(shape[1:]) <= 16 else "small"
        spec = (
            MLPSpec(name)
            if name in MLP_KINDS
            else UNetSpec(name if name in UNET_PRESETS else auto_preset, {})
        )
    elif isinstance(network, (MLPSpec, UNetSpec)):
        spec = network
    else:
        raise TypeError(
            "network must be 'auto', a network name, an MLPSpec or a UNetSpec, got "
            f"{type(network).__name__} {network!r:.60}"
        )
    if isinstance(spec, UNetSpec) != images:
        what, needs = (
            ("a U-Net", "images (n, c, h, w)") if images is False else ("an MLP", "vectors (n, d)")
        )
        raise ValueError(
            f"network={network!r} is {what}, which needs {needs}, got sample shape {shape}; "
            "network='auto' picks an MLP for vectors and a U-Net for images"
        )
    if isinstance(spec, UNetSpec):
        _unet_arguments(spec, shape)  # checks the preset and its arguments
        return spec
    return (
        spec
        if spec.width is not None
        else dataclasses.replace(spec, width=_default_width(shape[0]))
    )


def network_spec_of(network: Any, shape: tuple[int, ...]) -> NetworkSpec:
    """The spec of a built-in velocity network (its velocity part), from its description;
    the default MLP for any other.

    Args:
        network: a velocity network (a velocity-denoiser pair gives its velocity).
        shape: the sample shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.

    Example:
        >>> network_spec_of(MLPVelocity(2, width=32, depth=2), (2,)) == MLPSpec(width=32, depth=2)
        True
    """
    network = getattr(network, "velocity", network)
    description = cast("dict[str, Any]", getattr(network, "config", {}))
    if isinstance(network, UNetVelocity):
        skip = ("kind", "channels", "image_size", "condition")  # the data's, not the spec's
        return UNetSpec(None, {k: v for k, v in description.items() if k not in skip})
    if isinstance(network, _classes(*MLP_KINDS)):
        fields = [f.name for f in dataclasses.fields(MLPSpec) if f.name != "condition_fusion"]
        fusion = description.get("condition", {}).get("fusion", MLPSpec.condition_fusion)
        return MLPSpec(**{k: description[k] for k in fields}, condition_fusion=fusion)
    return MLPSpec(width=_default_width(math.prod(shape)))


def _classes(*kinds: str) -> tuple[type[nn.Module], ...]:
    """The network classes of ``kinds`` in the builder's table."""
    return tuple(_NETWORKS[kind] for kind in kinds)


def _unet_arguments(spec: UNetSpec, shape: tuple[int, ...]) -> dict[str, Any]:
    """The :class:`UNetVelocity` arguments of ``spec`` for images of ``shape``."""
    c, h, w = shape
    if spec.preset is None:
        return {"channels": c, "image_size": [h, w], **spec.options}
    return unet_config(spec.preset, c, (h, w), **spec.options)


def _default_width(d: int) -> int:
    """MLP width when none is given: 128 up to 16 dimensions, 256 above."""
    return 128 if d <= 16 else 256
