"""A short fit learns: it beats the best Gaussian (moment-matched) model of the target."""

from __future__ import annotations

import numpy as np
import pytest

import sitransport as st


@pytest.mark.parametrize(
    ("source", "target"), [("gaussian", "8gaussians"), ("moons", "8gaussians")]
)
def test_short_fit_beats_moment_matched_gaussian(source, target):
    x1 = st.datasets.sample(target, 5000, seed=0)
    held = st.datasets.sample(target, 2000, seed=1)
    rho0 = "gaussian" if source == "gaussian" else st.datasets.sample(source, 5000, seed=2)
    net = st.MLPSpec(width=64, depth=3)
    flow = st.fit(rho0, x1, steps=3000, network=net, batch_size=256, lr=5e-3, progress=False)
    if source == "gaussian":
        x0 = np.random.default_rng(3).standard_normal((1000, 2))
    else:
        x0 = st.datasets.sample(source, 1000, seed=3)
    model = st.metrics.sample_quality(flow.push_forward(x0), held)
    baseline_samples = np.random.default_rng(4).multivariate_normal(
        x1.mean(0), np.cov(x1.T), size=1000
    )
    baseline = st.metrics.sample_quality(baseline_samples, held)
    # excess over the sampling noise floor at least halved
    floor = model.noise_floor
    assert model.w2 - floor < 0.5 * (baseline.w2 - floor), (model, baseline)
    # and the held-out validation loss went down during training
    val = flow.history["val_loss"].values
    assert val[-1] < val[0]
