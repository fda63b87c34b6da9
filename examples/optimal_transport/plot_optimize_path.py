r"""
Optimise the path: max–min Fourier interpolant vs the trig path
===============================================================

For a fixed interpolant the minimum of the quadratic loss is minus the kinetic energy of
the path it induces,

.. math::

    \min_v G(v) = -\int_0^1 \mathbb{E}_{\rho_t}|v_t|^2\,dt ,

and by Benamou–Brenier that energy is at least :math:`W_2^2(\rho_0, \rho_1)`, with
equality only on the optimal-transport path. Maximising :math:`\min_v G` over a
learnable interpolant (a Fourier series around the trig path,
``interpolant="fourier", optimize_path=True``) therefore shortens the path.
``st.metrics.transport_report(flow)`` measures the kinetic energy along the flow's own
trajectories and sets it next to the exact :math:`W_2^2` of POT on the same samples.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import sitransport as st
from sitransport.plot import plot_trajectories

torch.set_num_threads(1)
SEED = 0

# %%
# Two flows from N(0, I) to 8 Gaussians
# -------------------------------------
# The same network and 2,500 steps; the Fourier path starts as the trig path and its
# coefficients ascend from step 500 to step 1,250 (half of the steps, as with
# ``optimize_path=True``); the velocity then finishes on the frozen path.
x1 = st.datasets.sample("8gaussians", 20_000, seed=SEED)
common = dict(steps=2500, batch_size=256, seed=SEED, progress=False)
trig = st.fit("gaussian", x1, interpolant="trig", **common)
ascent = st.PathSettings(start=500, stop=1250)
maxmin = st.fit("gaussian", x1, interpolant="fourier", optimize_path=ascent, **common)

# %%
# Diagnostics
# -----------
# Kinetic energy :math:`KE` (ODE integral along the paths of 2,000 base samples), exact
# :math:`W_2^2` (POT) between those base samples and 2,000 target samples, and the
# normalised path energy :math:`NPE = |KE - W_2^2| / W_2^2`.
reports = {
    "trig": st.metrics.transport_report(trig, n=2000),
    "max-min Fourier": st.metrics.transport_report(maxmin, n=2000),
}
for name, report in reports.items():
    print(f"--- {name}\n{report}\n")

# %%
# The learned path and the trajectories
# -------------------------------------
# Left: :math:`\alpha(t), \beta(t)` of the trig path and of the optimised one. Right:
# trajectories of both flows from the same base points (the optimised ones are
# straighter).
t = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
with torch.no_grad():
    for flow, style, label in ((trig, "--", "trig"), (maxmin, "-", "max-min")):
        axes[0].plot(
            t,
            flow.interpolant.alpha(t),
            style,
            color="tab:blue",
            label=f"alpha, {label}",
        )
        axes[0].plot(
            t,
            flow.interpolant.beta(t),
            style,
            color="tab:orange",
            label=f"beta, {label}",
        )
axes[0].set_xlabel("t")
axes[0].legend(fontsize="small")
x0 = np.random.default_rng(SEED).standard_normal((80, 2))
times = np.linspace(0.0, 1.0, 41)
plot_trajectories(axes[1], trig.trajectory(x0, times), max_paths=80, title="trig path")
plot_trajectories(
    axes[2], maxmin.trajectory(x0, times), max_paths=80, title="max-min path"
)
plt.show()

# %%
# Numeric check
# -------------
# Both energies lie above the exact :math:`W_2^2` up to its finite-sample bias, and the
# optimised path is the shorter one.
for name, r in reports.items():
    print(
        f"{name:>16}: KE = {r.kinetic_energy:.3f} +- {r.kinetic_energy_stderr:.3f}, "
        f"exact W2^2 = {r.w2_squared:.3f}, NPE = {r.npe:.3f}"
    )
assert reports["max-min Fourier"].kinetic_energy < reports["trig"].kinetic_energy

# %%
# With 20,000 steps the benchmarks page reports the same ordering on this pair
# (NPE 0.38 for trig, 0.11 for max–min) and on N -> moons.
