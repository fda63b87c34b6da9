"""Figures: samples, trajectories, log-density heat maps and a one-page summary of a 2-D flow.

Functions draw on a given matplotlib ``Axes`` (or build a ``Figure`` without pyplot, so
they work under any backend and in scripts without a display).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_density", "plot_samples", "plot_trajectories", "summary_figure"]


def _extent(*arrays: np.ndarray, pad: float = 0.05) -> tuple[float, float, float, float]:
    pts = np.concatenate([np.asarray(a)[:, :2] for a in arrays])
    lo, hi = np.quantile(pts, 0.001, axis=0), np.quantile(pts, 0.999, axis=0)
    span = hi - lo
    lo, hi = lo - pad * span, hi + pad * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def plot_samples(
    ax: Axes,
    x: np.ndarray,
    *,
    extent: tuple[float, float, float, float] | None = None,
    bins: int = 150,
    title: str | None = None,
    cmap: str = "magma",
) -> Axes:
    """2-D histogram of samples ``x`` of shape ``(n, 2)`` (first two coordinates)."""
    x = np.asarray(x)
    extent = extent or _extent(x)
    ax.hist2d(
        x[:, 0], x[:, 1], bins=bins, range=[extent[:2], extent[2:]], cmap=cmap, rasterized=True
    )
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectories(
    ax: Axes, trajectory: xr.DataArray, *, max_paths: int = 50, title: str | None = None
) -> Axes:
    """Paths of a :meth:`~sitransport.TransportFlow.trajectory` (first two coordinates).

    Start points are drawn black, end points red.
    """
    values = np.asarray(trajectory.values)[:, :max_paths, :2]
    for k in range(values.shape[1]):
        ax.plot(values[:, k, 0], values[:, k, 1], color="0.5", lw=0.6, alpha=0.7)
    ax.scatter(values[0, :, 0], values[0, :, 1], s=6, color="black", zorder=3, label="start")
    ax.scatter(values[-1, :, 0], values[-1, :, 1], s=6, color="tab:red", zorder=3, label="end")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_density(
    ax: Axes,
    flow: Any,
    extent: tuple[float, float, float, float],
    *,
    resolution: int = 80,
    title: str | None = None,
    cmap: str = "viridis",
) -> Axes:
    """Heat map of the density of the flow's ``rho1`` (from ``flow.log_prob``) on a square grid."""
    xs = np.linspace(extent[0], extent[1], resolution)
    ys = np.linspace(extent[2], extent[3], resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    lp = np.asarray(flow.log_prob(grid)).reshape(resolution, resolution)
    im = ax.imshow(
        np.exp(lp),
        origin="lower",
        extent=extent,
        cmap=cmap,
        aspect="equal",
        interpolation="nearest",
    )
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="density")
    if title:
        ax.set_title(title)
    return ax


def summary_figure(
    flow: Any,
    target: np.ndarray,
    generated: np.ndarray,
    *,
    source: np.ndarray | None = None,
    n_paths: int = 40,
    resolution: int = 80,
) -> Figure:
    """Target vs generated samples, a few trajectories and (with a base density) the
    learned density: the picture of a fitted 2-D flow.

    Args:
        flow: a fitted :class:`~sitransport.TransportFlow` on 2-D data.
        target: held-out samples of ``rho1``.
        generated: samples of the flow.
        source: samples of ``rho0`` to start trajectories from (else ``flow.base``).
    """
    has_density = flow.base is not None and flow.base.has_density
    ncols = 4 if has_density else 3
    fig = Figure(figsize=(4.2 * ncols, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    extent = _extent(target, generated)
    plot_samples(axes[0], target, extent=extent, title="target (held out)")
    plot_samples(axes[1], generated, extent=extent, title="generated")
    if source is None:
        source = flow.base.sample(n_paths, _generator()).numpy()
    traj = flow.trajectory(np.asarray(source)[:n_paths], times=np.linspace(0.0, 1.0, 31))
    plot_trajectories(axes[2], traj, title="trajectories t: 0 -> 1")
    if has_density:
        plot_density(axes[3], flow, extent, resolution=resolution, title="learned density")
    return fig


def _generator():
    import torch

    return torch.Generator().manual_seed(0)
