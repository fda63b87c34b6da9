r"""
Repair a low-rank source: line to 8 Gaussians
=============================================

A deterministic flow is a diffeomorphism: it maps the support of ``rho0`` onto a set of
the same dimension. From a source on a line (rank 1) it can only draw curves, never the
2D clusters of the target. ``fit`` detects this from the effective ranks of the two
sample sets and warns. ``remedy="auto"`` switches to a stochastic interpolant
:math:`x_t = \alpha x_0 + \beta x_1 + \gamma(t) z` (here
:math:`\gamma = \sin^2(\pi t)`), whose intermediate densities have full support, trains
a denoiser alongside the velocity, and samples with the SDE, whose noise fills the
target.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import torch

import sitransport as st
from sitransport.plot import plot_samples

torch.set_num_threads(1)
SEED = 0

# %%
# The deterministic flow, and its warning
# ---------------------------------------
line = st.datasets.sample("line", 20_000, seed=SEED)
x1 = st.datasets.sample("8gaussians", 20_000, seed=SEED + 1)
# 1,500 steps: more do not help a deterministic flow here (after 10,000 steps its W2 is
# still many times the noise floor in ``benchmarks/bench_lowrank.py``).
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    deterministic = st.fit(
        line, x1, steps=1500, batch_size=256, seed=SEED, progress=False
    )
print(caught[0].message)

# %%
# The remedy
# ----------
# ``remedy="auto"`` picks the stochastic interpolant and makes the SDE the default
# sampler. It trains two networks (velocity and denoiser), here for 4,000 steps.
repaired = st.fit(
    line, x1, remedy="auto", steps=4000, batch_size=256, seed=SEED, progress=False
)
print(repaired.interpolant)

# %%
# Samples
# -------
# The SDE runs 200 Heun steps with the default noise level :math:`\epsilon_0 = 4`; the
# ODE of the same stochastic-interpolant flow is shown for comparison.
source = st.datasets.sample("line", 2000, seed=SEED + 2)
held_out = st.datasets.sample("8gaussians", 4000, seed=SEED + 3)
samples = {
    "deterministic flow (ODE)": deterministic.push_forward(source),
    "stochastic interpolant, ODE": repaired.sample(2000, seed=SEED + 4, method="ode"),
    "stochastic interpolant, SDE": repaired.sample(2000, seed=SEED + 4),
}
extent = (-4.0, 4.0, -4.0, 4.0)
fig, axes = plt.subplots(1, 4, figsize=(15, 4), layout="constrained")
plot_samples(axes[0], held_out, extent=extent, bins=80, title="target")
for ax, (name, y) in zip(axes[1:], samples.items(), strict=True):
    plot_samples(ax, y, extent=extent, bins=80, title=name)
plt.show()

# %%
# Numeric check
# -------------
# Exact :math:`W_2` (POT, 2,000 vs 2,000) against held-out target samples, over the
# noise floor.
ratios = {}
for name, y in samples.items():
    q = st.metrics.sample_quality(y, held_out)
    ratios[name] = q.ratio
    print(
        f"{name:>28}: W2 = {q.w2:.3f}, noise floor {q.noise_floor:.3f},",
        f"ratio {q.ratio:.2f}",
    )
assert ratios["stochastic interpolant, SDE"] < ratios["deterministic flow (ODE)"] / 3

# %%
# After 10,000 steps the benchmark (``benchmarks/bench_lowrank.py``, part a on the
# benchmarks page) brings the SDE close to the noise floor, with the standard error of
# its ratio over 3 training seeds x 5 draws, while the deterministic flow and the ODE of
# the stochastic flow stay many times above it: the noise has to be injected while
# sampling.
