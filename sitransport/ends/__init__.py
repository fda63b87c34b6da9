"""What a density is: the ends of a transport and the coordinates they are normalised in.

A :class:`~sitransport.ends.densities.Density` is an end that can be drawn from: a standard
normal, a torch distribution or a set of samples (``as_density`` turns what ``fit`` is given
into one); ``log_prob`` exists only where a density is known. :class:`Normalization` is the
change of coordinates ``z = (x - m) / s`` that :func:`sitransport.fit` builds before
training. :class:`ConditionEncoder` reads the conditions of a conditional fit (labels or
features) into the codes its network takes. Sets of pixel images are an end through
``dequantized.py``
(:class:`~sitransport.images.DequantizedImages`, documented with the image loaders in
:mod:`sitransport.images`).
"""

from __future__ import annotations

from sitransport.ends.conditions import ConditionEncoder
from sitransport.ends.densities import (
    Density,
    DistributionDensity,
    EmpiricalDensity,
    StandardNormal,
    as_density,
)
from sitransport.ends.normalization import Normalization

__all__ = [
    "ConditionEncoder",
    "Density",
    "DistributionDensity",
    "EmpiricalDensity",
    "Normalization",
    "StandardNormal",
    "as_density",
]
