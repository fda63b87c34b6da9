"""Velocity networks: an MLP with a time embedding for vectors, the gradient of an MLP
potential (a curl-free field), a U-Net for images."""

from __future__ import annotations

from typing import Any

from torch import nn

from sitransport.nn.mlp import MLPVelocity, SpaceEmbedding, TimeEmbedding, VelocityDenoiser
from sitransport.nn.potential import PotentialVelocity
from sitransport.nn.unet import UNET_PRESETS, UNetVelocity, unet_config

__all__ = [
    "MLPVelocity",
    "PotentialVelocity",
    "SpaceEmbedding",
    "TimeEmbedding",
    "UNET_PRESETS",
    "UNetVelocity",
    "VelocityDenoiser",
    "build_network",
    "unet_config",
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
        ValueError: unknown ``kind`` (the message lists the valid ones).

    Example:
        >>> net = MLPVelocity(2, width=32, depth=2)
        >>> copy = build_network(net.config)  # same architecture, fresh weights
        >>> type(copy).__name__, copy.config == net.config
        ('MLPVelocity', True)
        >>> copy.load_state_dict(net.state_dict())
        <All keys matched successfully>
    """
    from sitransport._validation import check_choice

    kwargs = dict(config)
    kind = check_choice(kwargs.pop("kind", None), "network kind", _NETWORKS)
    return _NETWORKS[kind](**kwargs)
