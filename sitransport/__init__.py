"""sitransport: transport maps between any two densities with stochastic interpolants.

Learn a continuous-time flow from samples of ``rho0`` to samples of ``rho1`` with the
simulation-free quadratic loss of Albergo & Vanden-Eijnden (ICLR 2023, arXiv:2209.15571),
then push samples forward, pull them back, sample, and evaluate log-densities.

Example:
    >>> import sitransport as st
    >>> x1 = st.datasets.sample("moons", 2000, seed=0)
    >>> flow = st.fit("gaussian", x1, steps=200, progress=False)
    >>> flow.sample(3, seed=0).shape
    (3, 2)
"""

from __future__ import annotations

# _geomloss first: POT and the metrics import geomloss, which imports KeOps when the keops
# extra is installed, and KeOps prints a CPU-only notice on stdout; _geomloss imports it quietly
from sitransport import (  # noqa: I001
    _geomloss,  # noqa: F401
    anndata,
    callbacks,
    config,
    couplings,
    datasets,
    distributed,
    errors,
    images,
    interpolants,
    io,
    latent,
    losses,
    metrics,
    nn,
    ode,
    paths,
    protocols,
)
from sitransport.config import Checkpointing, LatentSpec, MLPSpec, UNetSpec
from sitransport.fitting import distill, fit, reflow
from sitransport.flow import TransportFlow
from sitransport.interpolants import Interpolant
from sitransport.io import load
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings
from sitransport.protocols import Flow
from sitransport.train import TrainSettings

__all__ = [
    "Checkpointing",
    "Flow",
    "Interpolant",
    "LatentSpec",
    "MLPSpec",
    "ODEOptions",
    "PathSettings",
    "TrainSettings",
    "TransportFlow",
    "UNetSpec",
    "anndata",
    "callbacks",
    "config",
    "couplings",
    "datasets",
    "distill",
    "distributed",
    "errors",
    "fit",
    "images",
    "interpolants",
    "io",
    "latent",
    "load",
    "losses",
    "metrics",
    "nn",
    "ode",
    "paths",
    "protocols",
    "reflow",
]

__version__ = "0.1.0.dev0"
