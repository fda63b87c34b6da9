"""Reference densities: 2D toy data sets and Gaussian (mixture) distributions.

Two families live here:

* **2D toy data sets** (the FFJORD / torchcfm benchmarks) drawn with :func:`sample` through one
  registry (:func:`names` lists it). Two of them have an exact density, :func:`log_prob`:
  ``checkerboard`` (uniform on eight 2 x 2 squares) and ``8gaussians`` (a mixture of eight
  isotropic Gaussians); it is written from the same definition the sampler uses.
  :class:`ToyDistribution` is any of them as a torch distribution: fresh draws for every
  batch of a fit. :func:`draw` also accepts ``"gaussian"`` (the standard normal, any
  dimension), the ends the command line and the benchmarks name.
* **Gaussians in any dimension**: the function :func:`gaussian` and the classes
  :class:`Gaussian` and :class:`GaussianMixture`, with exact ``log_prob``, ``score``
  (:math:`\\nabla_x \\log \\rho(x)`, in closed form), exact first two moments and a
  :mod:`torch.distributions` twin. They are the closed-form references the known-answer
  tests of the rest of the library are checked against.
* **Pairs with a known optimal-transport map** (:func:`known_ot_pair`,
  :class:`KnownOTPair`): a Gaussian (mixture) source and its push-forward by the gradient of
  a convex potential, the exact Brenier map, in any dimension; the reference of
  ``benchmarks/bench_ot_map.py``.
* **Tabular density-estimation sets** (POWER, GAS, HEPMASS, MINIBOONE, BSDS300) read from the
  preprocessed MAF files in a user-given folder by :func:`load_tabular`, with the standard
  splits and normalisation (nothing is downloaded).

Samples are numpy ``float64`` arrays of shape ``(n, d)``. Randomness comes only from the
``seed`` argument (an ``int``, a :class:`numpy.random.Generator` or ``None``); the global
random state is never touched.

References:
    Grathwohl et al., *FFJORD: Free-form Continuous Dynamics for Scalable Reversible
    Generative Models*, arXiv:1810.01367 (the toy data sets).
"""

from __future__ import annotations

# ArrayLike and TABULAR_FILES: public names of the former module, outside __all__
from sitransport.datasets.gaussians import ArrayLike as ArrayLike
from sitransport.datasets.gaussians import Gaussian, GaussianMixture, gaussian
from sitransport.datasets.known_ot import KnownOTPair, known_ot_pair
from sitransport.datasets.tabular import TABULAR_FILES as TABULAR_FILES
from sitransport.datasets.tabular import TabularSplits, load_tabular
from sitransport.datasets.toys import ToyDistribution, draw, log_prob, names, sample

__all__ = [
    "Gaussian",
    "GaussianMixture",
    "KnownOTPair",
    "TabularSplits",
    "ToyDistribution",
    "draw",
    "gaussian",
    "known_ot_pair",
    "load_tabular",
    "log_prob",
    "names",
    "sample",
]
