r"""The entry point: learn a transport flow between two densities.

:func:`fit` resolves both ends (samples, images, ``"gaussian"``, a torch Distribution or a
torch ``Dataset``), holds out a validation fraction, normalises, builds the network and hands
the run to :func:`~sitransport.train.train`; :func:`reflow` retrains a fitted flow on the
coupling of its own map, :func:`distill` into a one-step model of it. ``latent=`` fits in
principal coordinates. :func:`choose_ot` is the rule of ``coupling="ot"``. No ODE is solved
during training (the loss needs none; the optional Sinkhorn diagnostic solves one).
"""

from __future__ import annotations

from sitransport.fitting.api import fit
from sitransport.fitting.distill import distill
from sitransport.fitting.ends import MAX_HELD_OUT as MAX_HELD_OUT  # of the former module
from sitransport.fitting.ends import effective_rank
from sitransport.fitting.ot_choice import choose_ot
from sitransport.fitting.pairs import DatasetDraw
from sitransport.fitting.reflow import reflow

__all__ = [
    "DatasetDraw",
    "choose_ot",
    "distill",
    "effective_rank",
    "fit",
    "reflow",
]
