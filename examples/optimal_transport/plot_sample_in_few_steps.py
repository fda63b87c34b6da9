r"""
Sample in few steps: straight flows need few velocity evaluations
=================================================================

An ODE solver's error comes from the curvature of the trajectories: along a
straight path travelled at constant speed, one Euler step
:math:`x_1 = x_0 + v_0(x_0)` is exact. The independent coupling of the
interpolant gives curved paths (trajectories of nearby points bend to avoid
crossing); an exact minibatch optimal-transport coupling
(``coupling="exact_ot"``) and reflow (retraining on the flow's own pairs
:math:`(x_0, T(x_0))`) straighten them.

``nfe=k`` on :meth:`~sitransport.TransportFlow.push_forward`, ``pull_back``,
``transport``, ``trajectory`` and ``sample`` solves with a fixed budget of ``k``
velocity evaluations,
:meth:`ODEOptions.budget(k) <sitransport.ode.ODEOptions.budget>`: one step of
Euler, midpoint or Heun's third-order scheme for ``k`` = 1, 2, 3, and
``k // 4`` steps of RK4 above. Here three small flows from :math:`N(0, I)` to
eight Gaussians are sampled with 1 to 16 evaluations and compared, by the exact
:math:`W_2` of POT over its noise floor, with the adaptive dopri5 solve of the
same flow.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import sitransport as st

torch.set_num_threads(1)
SEED = 0

# %%
# Three flows
# -----------
# The same small network and 1,500 steps; reflow retrains the independent flow on
# 5,000 of its own pairs for another 1,500 steps. Such short runs leave the flows
# coarse (the clusters still joined in a ring); what follows compares each flow with
# itself.
x1 = st.datasets.sample("8gaussians", 10_000, seed=SEED)
common = dict(
    steps=1500, batch_size=256, seed=SEED, progress=False, network=st.MLPSpec(width=64)
)
independent = st.fit("gaussian", x1, interpolant="linear", **common)
exact_ot = st.fit("gaussian", x1, interpolant="linear", coupling="exact_ot", **common)
reflow = st.reflow(independent, 5000, steps=1500, seed=SEED, progress=False)
flows = {"independent": independent, "exact_ot": exact_ot, "reflow": reflow}

# %%
# W2 against the budget
# ---------------------
# The same 1,500 base draws for every solver; exact :math:`W_2` against 1,500
# held-out target samples, divided by the noise floor (:math:`W_2` between two
# held-out sets of that size), so 1 is as good as a finite sample can show.
n = 1500
x0 = np.random.default_rng(SEED + 1).standard_normal((n, 2))
held = st.datasets.sample("8gaussians", 2 * n, seed=SEED + 2)
floor = st.metrics.w2(held[:n], held[n:])
budgets = [1, 2, 4, 8, 16]
ratios, dopri5, samples = {}, {}, {}
for name, flow in flows.items():
    few = [flow.push_forward(x0, nfe=k) for k in budgets]  # k velocity evaluations
    ratios[name] = [st.metrics.w2(y, held[:n]) / floor for y in few]
    res = flow.transport(x0)  # adaptive dopri5, atol = rtol = 1e-5
    dopri5[name] = (st.metrics.w2(res.x, held[:n]) / floor, res.nfe)
    samples[name] = few[0]

# %%
# Left: the W2 ratio of each flow against its budget (dashed: its own dopri5
# solve). The independent flow needs 8 evaluations to reach its dopri5 accuracy; the
# straight flows are within a few percent of theirs from two. Right: one Euler step
# of each flow (coloured) over held-out target samples (grey). For the independent
# coupling :math:`v_0(x_0) = \mathbb{E}[x_1] - x_0`, so its single Euler step sends
# every point to the target mean.
colors = {"independent": "tab:blue", "exact_ot": "tab:orange", "reflow": "tab:green"}
fig, axes = plt.subplots(1, 4, figsize=(15, 3.9), layout="constrained")
for name, r in ratios.items():
    axes[0].plot(budgets, r, "o-", color=colors[name], label=name)
    axes[0].axhline(dopri5[name][0], ls="--", lw=1, color=colors[name])
axes[0].set_xscale("log", base=2)
axes[0].set_yscale("log")
axes[0].set_xticks(budgets, [str(k) for k in budgets])
axes[0].set_yticks([1, 1.5, 2, 4, 8], ["1", "1.5", "2", "4", "8"])
axes[0].minorticks_off()
axes[0].set_xlabel("velocity evaluations (NFE)")
axes[0].set_ylabel("W2 / noise floor")
axes[0].set_title("W2 ratio vs budget (dashed: dopri5)")
axes[0].legend()
for ax, (name, y) in zip(axes[1:], samples.items(), strict=True):
    ax.scatter(*held[:n].T, s=2, color="0.8")
    ax.scatter(*y.T, s=2, color=colors[name], alpha=0.6)
    ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), aspect="equal")
    ax.set_title(f"{name}, 1 Euler step")
plt.show()

# %%
# Numeric check
# -------------
# The straight flows at 4 evaluations are within 1.2x of their own dopri5 ratio (dopri5
# spends tens of evaluations), and one Euler step of the independent flow is far worse
# than one step of the exact-OT flow.
print(f"noise floor W2 = {floor:.4f} ({n} vs {n})")
print(f"{'':>12} " + " ".join(f"nfe={k:<3}" for k in budgets) + "  dopri5 (nfe)")
for name, r in ratios.items():
    cells = " ".join(f"{v:7.3f}" for v in r)
    print(f"{name:>12} {cells}  {dopri5[name][0]:.3f} ({dopri5[name][1]:.0f})")
for name in ("exact_ot", "reflow"):
    assert ratios[name][budgets.index(4)] <= 1.2 * dopri5[name][0], name
assert ratios["independent"][0] > 1.5 * ratios["exact_ot"][0]
