r"""
Draw trajectories: the flow's paths as xarray
=============================================

``flow.trajectory(x, times)`` returns the states of the flow at the requested times as
an ``xarray.DataArray`` with dimensions ``("time", "sample", "dim")``, so selecting,
averaging and plotting use labels rather than axis numbers.

To check the paths against a closed form, the flow here is built from the *exact*
velocity field of the trig interpolant from :math:`N(0, I)` to a mixture of eight
Gaussians (:class:`sitransport.exact.GaussianMixtureInterpolation`): any velocity
callable ``v(x, t)`` can be wrapped in a :class:`sitransport.TransportFlow`. The mean
and covariance of :math:`\rho_t` are then known at every time, and so is the density at
:math:`t = 1`.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import sitransport as st
from sitransport.exact import GaussianMixtureInterpolation
from sitransport.plot import plot_trajectories

torch.set_num_threads(1)
SEED = 0

# %%
# The exact flow
# --------------
# The target is the ``8gaussians`` data set: centres
# :math:`(4/1.414)(\cos, \sin)(j\pi/4)`, standard deviation :math:`0.5/1.414`.
angles = np.arange(8) * np.pi / 4
means = 4 / 1.414 * np.stack([np.cos(angles), np.sin(angles)], 1)
covs = np.stack([(0.5 / 1.414) ** 2 * np.eye(2)] * 8)
exact = GaussianMixtureInterpolation(
    [1.0], [[0.0, 0.0]], [np.eye(2)], np.full(8, 1 / 8), means, covs, "trig"
)
flow = st.TransportFlow(exact, "trig", base="gaussian", shape=(2,))

# %%
# The trajectory as labelled data
# -------------------------------
x0 = np.random.default_rng(SEED).standard_normal((2000, 2))
traj = flow.trajectory(x0, times=np.linspace(0.0, 1.0, 21))
print(traj.dims, traj.sizes, traj.attrs)
middle = traj.sel(time=0.5)  # the states at t = 0.5, dims ("sample", "dim")
spread = traj.std("sample")  # per time and coordinate

fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
plot_trajectories(axes[0], traj, max_paths=100, title="100 paths, t: 0 -> 1")
axes[1].scatter(middle.sel(dim=0), middle.sel(dim=1), s=2)
axes[1].set_aspect("equal")
axes[1].set_title("traj.sel(time=0.5)")
spread.plot.line(x="time", hue="dim", ax=axes[2])
axes[2].set_title('traj.std("sample")')
plt.show()

# %%
# Numeric check
# -------------
# At every stored time the sample mean and covariance of the 2,000 states match the
# closed form of :math:`\rho_t` to within sampling error (the standard error of a mean
# is :math:`\sigma/\sqrt{n}`); at :math:`t = 1` the flow's ``log_prob`` (exact
# divergence) matches the mixture's density.
n = traj.sizes["sample"]
worst_mean, worst_cov = 0.0, 0.0
for t in traj.time.values:
    states = traj.sel(time=t).values
    mean_t, cov_t = exact.mean(float(t)).numpy(), exact.cov(float(t)).numpy()
    sd = np.sqrt(np.diag(cov_t))
    worst_mean = max(
        worst_mean, np.max(np.abs(states.mean(0) - mean_t) / (sd / np.sqrt(n)))
    )
    rel_cov = np.abs(np.cov(states.T) - cov_t) / np.outer(sd, sd)
    worst_cov = max(worst_cov, rel_cov.max() * np.sqrt(n))
print(f"largest |mean error| over 21 times: {worst_mean:.2f} standard errors")
print(
    f"largest |covariance error| / (sd_i sd_j): {worst_cov / np.sqrt(n):.3f} "
    f"(= {worst_cov:.2f} / sqrt(n))"
)
y = traj.sel(time=1.0).values[:300]
lp_flow = flow.log_prob(y)
lp_true = st.datasets.log_prob("8gaussians", y)
lp_error = np.max(np.abs(lp_flow - lp_true))
print(f"max |flow.log_prob - exact log-density| at t = 1: {lp_error:.1e}")
assert worst_mean < 4.5 and worst_cov < 6.0
assert lp_error < 1e-2
