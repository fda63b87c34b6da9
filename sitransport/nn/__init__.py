"""Velocity networks: an MLP with a time embedding (and, later, a U-Net for images)."""

from __future__ import annotations

from typing import Any

from torch import nn

from sitransport.nn.mlp import MLPVelocity, TimeEmbedding

__all__ = ["MLPVelocity", "TimeEmbedding", "build_network"]

_NETWORKS: dict[str, type[nn.Module]] = {"mlp": MLPVelocity}


def build_network(config: dict[str, Any]) -> nn.Module:
    """Rebuild a velocity network from its ``config`` dict (as stored in saved flows)."""
    from sitransport._validation import check_choice

    kwargs = dict(config)
    kind = check_choice(kwargs.pop("kind", None), "network kind", _NETWORKS)
    return _NETWORKS[kind](**kwargs)
