"""Distances between probability measures: exact, entropic and closed-form 2-Wasserstein.

Every number the library reports about transport quality is checkable against one of these:

- :func:`w2` — the exact 2-Wasserstein distance between two empirical measures, solved as a
  linear program by POT's network simplex (``ot.emd2``). Exact, but ``O(n^2)`` memory and
  roughly ``O(n^3)`` time, so limited to ``max_samples`` points per side.
- :func:`sinkhorn_w2` — a debiased Sinkhorn (entropic) estimate of the same quantity from
  geomloss, for large samples; :func:`sinkhorn_divergence` is the debiased divergence
  ``S_eps`` itself (it tends to ``W2^2 / 2``), the training diagnostic.
- :func:`gaussian_w2` and :func:`gaussian_ot_map` — the Bures closed form between Gaussians
  and the corresponding linear optimal-transport map: test oracles.
- :func:`map_error` — L2-UVP and displacement cosine of a learned map against a known
  optimal-transport map (Korotin et al. 2021), e.g. that of
  :func:`~sitransport.datasets.known_ot_pair`.
- :func:`transport_report` and, per condition of a conditional flow, :func:`conditional_npe`
  — the flow's path energy against the exact ``W2^2`` of the samples (the NPE).
- :func:`noise_floor` — the ``W2`` between two independent finite samples of the *same* law,
  i.e. the value a perfect model reaches when its samples are compared with a finite target
  sample. A learned model's ``w2`` should be read relative to it.

All sample inputs are arrays of shape ``(n, d)`` (numpy, torch or xarray); computations are
done in float64 numpy and results are returned as Python floats.

References:
    Peyré & Cuturi, *Computational Optimal Transport* (2019), arXiv 1803.00567.
    Albergo & Vanden-Eijnden, *Building Normalizing Flows with Stochastic Interpolants*
    (ICLR 2023), arXiv 2209.15571.
"""

from __future__ import annotations

from sitransport.metrics.conditional import ConditionalNPE, conditional_npe
from sitransport.metrics.distances import (
    gaussian_ot_map,
    gaussian_w2,
    noise_floor,
    sinkhorn_divergence,
    sinkhorn_w2,
    w2,
)
from sitransport.metrics.quality import (
    MapError,
    SampleQuality,
    bits_per_dim,
    map_error,
    nll,
    sample_quality,
)
from sitransport.metrics.report import TransportReport, transport_report

__all__ = [
    "ConditionalNPE",
    "MapError",
    "SampleQuality",
    "TransportReport",
    "bits_per_dim",
    "conditional_npe",
    "gaussian_ot_map",
    "gaussian_w2",
    "map_error",
    "nll",
    "noise_floor",
    "sample_quality",
    "sinkhorn_divergence",
    "sinkhorn_w2",
    "transport_report",
    "w2",
]
