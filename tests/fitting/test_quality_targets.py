"""Quality targets of benchmarks/bench_2d.py with the default fit settings (slow: minutes).

Run with ``python -m pytest -m slow``. Target: exact W2 (POT, 5,000 vs 5,000) of generated
vs held-out target samples within 1.2x the noise floor, both averaged over 10 evaluations.

Single W2 draws of multimodal targets are noisy: the counts per mode fluctuate by ~1/sqrt(n),
and moving that excess mass between modes dominates both W2 and the floor (checkerboard
per-evaluation ratios of one fixed flow range from 0.87 to 2.1). The ratio of the means is
therefore tested against the target up to two of its standard errors (delta method over the
paired evaluations), so a flow is failed only when the data show it misses the target.
"""

from __future__ import annotations

import numpy as np
import pytest

import sitransport as st
from sitransport.datasets import draw

pytestmark = pytest.mark.slow

TASKS = [
    ("gaussian", "checkerboard"),
    ("gaussian", "8gaussians"),
    ("gaussian", "2spirals"),
    ("gaussian", "moons"),
    ("moons", "8gaussians"),
]


def _ratio_and_se(w2s: np.ndarray, floors: np.ndarray) -> tuple[float, float]:
    """mean(w2s) / mean(floors) and its delta-method standard error over paired draws."""
    k = len(w2s)
    mw, mf = w2s.mean(), floors.mean()
    cov = np.cov(w2s, floors)  # (2, 2), ddof = 1
    rel_var = cov[0, 0] / mw**2 + cov[1, 1] / mf**2 - 2 * cov[0, 1] / (mw * mf)
    ratio = mw / mf
    return float(ratio), float(ratio * np.sqrt(max(rel_var, 0.0) / k))


def test_ratio_and_se_matches_a_direct_simulation():
    """The delta-method error agrees with the spread of simulated ratios of means."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 5, 2))
    w2s, floors = 0.24 + 0.04 * z[..., 0], 0.19 + 0.03 * (0.5 * z[..., 0] + z[..., 1])
    ratios = w2s.mean(1) / floors.mean(1)
    ses = [_ratio_and_se(w, f)[1] for w, f in zip(w2s[:400], floors[:400], strict=True)]
    assert abs(np.mean(ses) / ratios.std() - 1) < 0.2  # the estimate is biased low at k=5


@pytest.mark.parametrize(("source", "target"), TASKS)
def test_default_fit_reaches_noise_floor(source, target):
    n = 5000
    x1 = draw(target, 20_000, 0)
    rho0 = "gaussian" if source == "gaussian" else draw(source, 20_000, 1)
    flow = st.fit(rho0, x1, seed=0, progress=False)
    # single W2 draws of multimodal targets are noisy (mode counts fluctuate): average 10
    w2s, floors = [], []
    for r in range(10):
        generated = flow.push_forward(draw(source, n, 2000 + r))
        quality = st.metrics.sample_quality(generated, draw(target, 2 * n, 1000 + r))
        w2s.append(quality.w2)
        floors.append(quality.noise_floor)
    ratio, se = _ratio_and_se(np.array(w2s), np.array(floors))
    assert ratio - 2 * se <= 1.2, (ratio, se, w2s, floors)
