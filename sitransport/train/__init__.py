r"""Simulation-free training: minimise the quadratic loss over the velocity network.

:func:`train` runs a :class:`Trainer`: AdamW with warm-up and cosine decay, optional EMA of
the weights, gradient clipping, a divergence guard, gradient accumulation and data-parallel
ranks, validation losses, a tqdm progress bar, resumable checkpoints and a training record as
an ``xarray.Dataset``, with the optional ascent on a learnable interpolant (max–min). Its
settings are a :class:`TrainSettings`. :func:`sitransport.fit` is the entry point that builds
the network and the data and calls :func:`train`. The loss needs no ODE solve; the
Sinkhorn diagnostic (:mod:`sitransport.train.diagnostics`) solves one, with a few fixed
steps on held-out sources, every ``sinkhorn_every`` steps, to log how far the flow's samples
are from held-out targets (``history["sinkhorn"]``) at a few percent of the training time.
"""

from __future__ import annotations

from sitransport.config.training import TrainSettings
from sitransport.couplings import DrawPairs as DrawPairs
from sitransport.train.entry import train
from sitransport.train.guard import DivergenceGuard
from sitransport.train.resume import RESUMABLE as RESUMABLE  # of the former module
from sitransport.train.schedule import LRSchedule, ema_decay
from sitransport.train.schedule import run_generator as run_generator
from sitransport.train.trainer import Trainer, TrainResult

__all__ = [
    "DivergenceGuard",
    "LRSchedule",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "ema_decay",
    "train",
]
