"""Velocity networks: an MLP with a time embedding for vectors, the gradient of an MLP
potential (a curl-free field), a U-Net for images; :mod:`~sitransport.nn.builder` turns a
network's spec into a module and a module back into its spec."""

from __future__ import annotations

from sitransport.nn.builder import build_network, read_network
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
    "read_network",
    "unet_config",
]
