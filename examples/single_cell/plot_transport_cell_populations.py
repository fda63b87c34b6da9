r"""
Transport between cell populations of an AnnData object
=======================================================

Single-cell data live in :class:`anndata.AnnData` objects: a cells x genes matrix
``.X``, cell annotations in ``.obs`` and reduced representations in ``.obsm``
(``"X_pca"``). :mod:`sitransport.anndata` fits a flow between two groups of cells in
the representation named as scanpy names it (``use_rep="X_pca"``) and writes the
transported cells back into ``.obsm`` of a new object.

The data are scanpy's bundled ``pbmc68k_reduced`` (700 blood cells, 50 principal
components; read from a file inside the scanpy package, offline). The flow maps the
129 CD14+ monocytes onto the 240 dendritic cells; with ``coupling="ot"`` it learns the
optimal-transport map, which is then compared with the exact optimal-transport plan of
the two groups from POT.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import ot
import scanpy as sc
import torch

import sitransport as st

torch.set_num_threads(1)
SEED = 0

# %%
# Two cell groups
# ---------------
# Views of one object, selected by an ``.obs`` column; the representation is the
# PCA of ``.obsm["X_pca"]``.
adata = sc.datasets.pbmc68k_reduced()
source = adata[adata.obs["bulk_labels"] == "CD14+ Monocyte"]
target = adata[adata.obs["bulk_labels"] == "Dendritic"]
print(
    source.n_obs,
    "monocytes ->",
    target.n_obs,
    "dendritic cells,",
    source.obsm["X_pca"].shape[1],
    "PCs",
)

# %%
# Fit and push forward
# --------------------
# ``coupling="ot"`` trains on the exact optimal-transport plan of the two groups (every
# cell is used: ``validation=0``); with so few cells per group, the network
# interpolates that plan. ``push_forward`` returns a copy of ``source`` with the
# transported cells in ``.obsm["X_transported"]``; ``source`` itself is left as it was.
flow = st.anndata.fit(
    source,
    target,
    use_rep="X_pca",
    coupling="ot",
    steps=3000,
    batch_size=128,
    validation=0.0,
    seed=SEED,
    progress=False,
)
moved = st.anndata.push_forward(flow, source, use_rep="X_pca")
print(moved)
assert "X_transported" not in source.obsm

# %%
# The exact optimal-transport map
# -------------------------------
# POT's exact plan :math:`P` between the two groups (uniform weights, squared
# Euclidean cost) sends each monocyte to a mixture of dendritic cells; its barycentric
# projection :math:`T_{OT}(x_i) = n_0 \sum_j P_{ij} y_j` is the map a flow trained on
# it approximates. :func:`~sitransport.metrics.map_error` compares the two maps
# (L2-UVP: the mean squared difference as a percentage of the target's variance), and
# :func:`~sitransport.metrics.transport_report` the flow's path energy with the exact
# :math:`W_2^2` of POT.
x = source.obsm["X_pca"].astype(np.float64)
y = target.obsm["X_pca"].astype(np.float64)
tx = moved.obsm["X_transported"].astype(np.float64)
plan = ot.emd(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), ot.dist(x, y))
t_ot = len(x) * plan @ y
error = st.metrics.map_error(x, tx, t_ot)
report = st.metrics.transport_report(flow, x, y)

# %%
# Left: the first two PCs, with each monocyte joined to where the flow sends it.
# Right: per cell, the squared displacement of the flow's map against that of the
# exact map (on the diagonal where they agree).
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
ax = axes[0]
ax.scatter(*y[:, :2].T, s=10, c="tab:orange", label="dendritic (target)")
ax.scatter(*x[:, :2].T, s=10, c="tab:blue", label="CD14+ monocytes (source)")
ax.scatter(*tx[:, :2].T, s=12, c="k", marker="x", lw=0.8, label="pushed forward")
for a, b in zip(x[::3, :2], tx[::3, :2], strict=True):
    ax.plot([a[0], b[0]], [a[1], b[1]], c="0.6", lw=0.5, zorder=0)
ax.set(xlabel="PC1", ylabel="PC2", title="pbmc68k_reduced, in X_pca")
ax.legend(fontsize=8)
ax = axes[1]
flow_cost = np.sum((tx - x) ** 2, axis=1)
ot_cost = np.sum((t_ot - x) ** 2, axis=1)
ax.scatter(ot_cost, flow_cost, s=10)
top = max(flow_cost.max(), ot_cost.max())
ax.plot([0, top], [0, top], c="0.5", lw=1, ls="--")
ax.set(
    xlabel=r"$|T_{OT}(x) - x|^2$ (exact plan, POT)",
    ylabel=r"$|T(x) - x|^2$ (flow)",
    title="squared displacement per cell",
)
plt.show()

# %%
# Numeric check
# -------------
# The flow's map against the exact optimal-transport map, and its transport cost
# :math:`\mathbb{E}|T(x) - x|^2` against that of :math:`T_{OT}`. Both sit below the
# exact :math:`W_2^2` of the two groups: with 129 source and 240 target cells the plan
# splits each monocyte among two or three dendritic cells, and a map (which cannot split
# a cell) pays only the cost to their barycentre. The NPE of the report, which compares
# the path energy with :math:`W_2^2` itself, includes that gap.
bary_cost = float(np.mean(ot_cost))
print(f"L2-UVP {error.l2_uvp:.1f}%, displacement cosine {error.cosine:.3f}")
print(
    f"transport cost: flow {report.transport_cost:.1f}, exact map {bary_cost:.1f}, "
    f"exact W2^2 {report.w2_squared:.1f}"
)
print(report)
assert error.cosine > 0.95 and error.l2_uvp < 30.0
assert abs(report.transport_cost / bary_cost - 1.0) < 0.1
assert report.npe < 0.2
