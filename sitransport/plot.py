"""Figures: samples, trajectories, log-density heat maps, the training record (loss and
the Sinkhorn diagnostic against its noise floor) and a one-page summary of a 2-D flow.

Functions draw on a given matplotlib ``Axes`` (or build a ``Figure`` without pyplot, so
they work under any backend and in scripts without a display).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sitransport._validation import torch_generator
from sitransport.protocols import Flow

if TYPE_CHECKING:
    from sitransport.flow import TransportFlow

__all__ = ["plot_density", "plot_samples", "plot_training", "plot_trajectories", "summary_figure"]


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
    """2-D histogram of samples ``x`` of shape ``(n, 2)`` (first two coordinates).

    Args:
        ax: the axes to draw on.
        x: samples, shape ``(n, d)`` with ``d >= 2``.
        extent: ``(xmin, xmax, ymin, ymax)``; default: the 0.1%-99.9% quantiles, padded.
        bins: histogram bins per axis. Default ``150``.
        title: axes title. Default ``None``.
        cmap: matplotlib colormap name. Default ``"magma"``.

    Returns:
        ``ax``.

    Example:
        >>> from matplotlib.figure import Figure
        >>> from sitransport import datasets
        >>> ax = Figure().subplots()
        >>> ax = plot_samples(ax, datasets.sample("moons", 1000, seed=0), bins=40, title="moons")
        >>> ax.get_title(), ax.get_aspect()
        ('moons', 1.0)
    """
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

    Args:
        ax: the axes to draw on.
        trajectory: ``xarray.DataArray`` with dims ``("time", "sample", "dim")``.
        max_paths: draw at most this many paths. Default ``50``.
        title: axes title. Default ``None``.

    Returns:
        ``ax``.

    Example:
        >>> import numpy as np
        >>> from matplotlib.figure import Figure
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: -z, "linear", base="gaussian", shape=(2,))
        >>> traj = flow.trajectory(np.eye(2), times=np.linspace(0, 1, 5))
        >>> ax = plot_trajectories(Figure().subplots(), traj, title="contraction")
        >>> len(ax.lines), ax.get_title()  # one line per path
        (2, 'contraction')
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
    flow: Flow,
    extent: tuple[float, float, float, float],
    *,
    resolution: int = 80,
    title: str | None = None,
    cmap: str = "viridis",
) -> Axes:
    """Heat map of the density of the flow's ``rho1`` (from ``flow.log_prob``) on a square grid.

    Args:
        ax: the axes to draw on (a colorbar is added next to it).
        flow: a 2-D flow with a base density (``flow.log_prob`` works).
        extent: ``(xmin, xmax, ymin, ymax)`` of the grid.
        resolution: grid points per axis (``resolution**2`` log-density evaluations).
            Default ``80``.
        title: axes title. Default ``None``.
        cmap: matplotlib colormap name. Default ``"viridis"``.

    Returns:
        ``ax``.

    Example:
        >>> from matplotlib.figure import Figure
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> ax = plot_density(Figure().subplots(), flow, (-3, 3, -3, 3), resolution=10)
        >>> ax.images[0].get_array().shape  # the density on the grid
        (10, 10)
    """
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


def plot_training(ax: Axes, history: xr.Dataset, *, title: str | None = None) -> Axes:
    """The training record: the flow-matching loss (batch values averaged over windows of
    1 % of the run) on ``ax`` and, when the run has it, the Sinkhorn diagnostic
    ``history["sinkhorn"]`` on a twin axis from 0, with its noise floor (dashed) and the
    floor's spread (one standard deviation, shaded).

    Args:
        ax: the axes to draw on.
        history: a flow's ``history`` (:attr:`~sitransport.TransportFlow.history`).
        title: axes title. Default ``None``.

    Returns:
        ``ax`` (the Sinkhorn curve is on ``ax``'s twin, when drawn).

    Example:
        >>> import numpy as np, xarray as xr
        >>> from matplotlib.figure import Figure
        >>> steps = np.arange(1, 101)
        >>> history = xr.Dataset(
        ...     {"fm_loss": ("step", 1.0 / steps), "sinkhorn": ("sinkhorn_step", [0.5, 0.1])},
        ...     coords={"step": steps, "sinkhorn_step": [50, 100]},
        ...     attrs={"sinkhorn_floor": 0.08, "sinkhorn_floor_sd": 0.01},
        ... )
        >>> fig = Figure()
        >>> ax = plot_training(fig.subplots(), history, title="training")
        >>> len(fig.axes), ax.get_title()
        (2, 'training')
    """
    steps, loss = history["step"].values, history["fm_loss"].values
    window = max(1, len(loss) // 100)
    k = len(loss) // window * window
    mean_steps = steps[:k].reshape(-1, window)[:, -1]
    mean_loss = loss[:k].reshape(-1, window).mean(axis=1)
    (line,) = ax.plot(mean_steps, mean_loss, color="0.45", lw=1.0, label="flow-matching loss")
    lines: list = [line]
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss (batch)")
    if "sinkhorn" in history:
        twin = ax.twinx()
        at, value = history["sinkhorn_step"].values, history["sinkhorn"].values
        lines += twin.plot(at, value, "o-", color="tab:blue", ms=3, label="Sinkhorn S_eps")
        floor = history.attrs.get("sinkhorn_floor")
        if floor is not None:
            label = "noise floor (held out vs held out)"
            lines.append(twin.axhline(floor, color="tab:blue", ls="--", lw=1.0, label=label))
            sd = history.attrs.get("sinkhorn_floor_sd", math.nan)
            if math.isfinite(sd):
                label = "its spread (1 SD): a perfect flow's values"
                band = twin.axhspan(floor - sd, floor + sd, color="tab:blue", alpha=0.12, lw=0)
                band.set_label(label)
                lines.append(band)
        twin.set_ylim(bottom=0.0)
        twin.set_ylabel("Sinkhorn divergence vs held out", color="tab:blue")
    ax.legend(handles=lines, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
              fontsize="small", frameon=False)  # fmt: skip
    if title:
        ax.set_title(title)
    return ax


def summary_figure(
    flow: TransportFlow,
    target: np.ndarray,
    generated: np.ndarray,
    *,
    source: np.ndarray | None = None,
    n_paths: int = 40,
    resolution: int = 80,
) -> Figure:
    """Target vs generated samples, a few trajectories, (with a base density) the learned
    density and (with a training record) the loss and the Sinkhorn diagnostic against its
    noise floor (:func:`plot_training`): the picture of a fitted 2-D flow.

    Args:
        flow: a fitted :class:`~sitransport.TransportFlow` on 2-D data.
        target: held-out samples of ``rho1``.
        generated: samples of the flow.
        source: samples of ``rho0`` to start trajectories from (else ``flow.base``).
            Default ``None``.
        n_paths: number of trajectories drawn. Default ``40``.
        resolution: grid points per axis of the density panel. Default ``80``.

    Returns:
        A ``matplotlib.figure.Figure`` (no pyplot): save it with ``fig.savefig(path)``.

    Raises:
        ValueError: no ``source`` and the flow has no base to draw one from.

    Example:
        >>> import numpy as np
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> target = np.random.default_rng(0).normal(scale=np.e, size=(500, 2))
        >>> fig = summary_figure(flow, target, flow.sample(500, seed=0), resolution=10)
        >>> [ax.get_title() for ax in fig.axes[:4]]
        ['target (held out)', 'generated', 'trajectories t: 0 -> 1', 'learned density']
    """
    has_density = flow.base is not None and flow.base.has_density
    history = flow.history
    has_record = history is not None and "fm_loss" in history and history.sizes["step"] > 0
    ncols = 3 + has_density + has_record
    fig = Figure(figsize=(4.2 * ncols, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    extent = _extent(target, generated)
    plot_samples(axes[0], target, extent=extent, title="target (held out)")
    plot_samples(axes[1], generated, extent=extent, title="generated")
    if source is None:
        if flow.base is None:
            raise ValueError("source is required: the flow has no base to draw rho0 from")
        source = flow.base.sample(n_paths, torch_generator(0)).numpy()
    traj = flow.trajectory(np.asarray(source)[:n_paths], times=np.linspace(0.0, 1.0, 31))
    plot_trajectories(axes[2], traj, title="trajectories t: 0 -> 1")
    if has_density:
        plot_density(axes[3], flow, extent, resolution=resolution, title="learned density")
    if history is not None and has_record:
        plot_training(axes[-1], history, title="training")
    return fig
