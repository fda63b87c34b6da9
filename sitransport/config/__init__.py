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

Layers: this package imports only settings classes and registries from below (``paths``,
``ode``, ``couplings``, ``interpolants``, ``losses``; :class:`TrainSettings` is its own, in
``config.training``, so it never imports ``train``); ``flow``, ``fitting`` and ``train``
import it.
"""

from __future__ import annotations

from sitransport.config.coupling import CouplingSpec, OTChoice
from sitransport.config.network import MLP_KINDS, MLPSpec, UNetSpec, network_from_spec
from sitransport.config.network import NetworkSpec as NetworkSpec
from sitransport.config.record import FitConfig
from sitransport.config.training import (
    Checkpointing,
    LatentSpec,
    TrainSettings,
    freeze_step,
)

__all__ = [
    "Checkpointing",
    "CouplingSpec",
    "FitConfig",
    "LatentSpec",
    "MLPSpec",
    "MLP_KINDS",
    "OTChoice",
    "TrainSettings",
    "UNetSpec",
    "freeze_step",
    "network_from_spec",
]
