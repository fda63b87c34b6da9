"""The deterministic ODE solves of a :class:`~sitransport.flow.TransportFlow` in the caller's
coordinates: transport between two times, path energies and trajectories (the bodies of its
methods ``transport``, ``pull_back``, ``path_energy`` and ``trajectory``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from sitransport._validation import check_finite_output, check_times
from sitransport.flow.results import PathEnergy, TransportResult
from sitransport.ode import ODEOptions, integrate, integrate_energy

if TYPE_CHECKING:
    from sitransport.flow.transport import TransportFlow

#: Nothing public: these are the bodies of TransportFlow's methods, documented there.
__all__: list[str] = []


def _scalar_time(value: Any, name: str) -> float:
    """A single time in ``[0, 1]`` (``start``/``end`` of a solve), checked by ``check_times``."""
    t = check_times(value, name)
    if t.ndim != 0:
        raise ValueError(f"{name} must be a single time in [0, 1], got shape {tuple(t.shape)}")
    return float(t)


def solve(
    flow: TransportFlow,
    x: Any,
    name: str,
    start: Any,
    end: Any,
    ode: ODEOptions | None,
    nfe: int | None,
    method: str = "transport",
    *,
    condition: Any = None,
    guidance: float = 0.0,
) -> TransportResult:
    """:meth:`transport` of the argument called ``name`` (``y`` for :meth:`pull_back`), for
    the public method ``method`` (named if the result is not finite), under a conditional
    flow's ``condition`` (and classifier-free ``guidance``)."""
    start, end = _scalar_time(start, "start"), _scalar_time(end, "end")
    ts = torch.tensor([start, end])  # float32: also what float32 flows solve with
    if ts[0] == ts[1]:
        raise ValueError(
            f"start and end must differ (beyond float32 rounding), got start={start:g} "
            f"and end={end:g}"
        )
    options = flow._options(ode, nfe)
    xt, back, in_dtype = flow._prepare(x, name)
    codes = flow._codes(condition, xt.shape[0], xt)
    velocity = flow._guided(guidance)
    flow._eval_mode()
    res = integrate(velocity, flow._norm.encode(xt), ts.to(xt), options, condition=codes)
    out = flow._norm.decode(res.states[-1]).to(in_dtype)
    check_finite_output(out, method, "the transported states")
    return TransportResult(back(out), res.nfe)


def _squared(scale: float) -> float:
    """``scale**2``; ``inf`` where Python's ``**`` would raise ``OverflowError``."""
    try:
        return scale**2
    except OverflowError:
        return math.inf


def path_energy(
    flow: TransportFlow, x: Any, ode: ODEOptions | None, condition: Any = None
) -> PathEnergy:
    """The body of :meth:`TransportFlow.path_energy`."""
    xt, back, in_dtype = flow._prepare(x, "x")
    codes = flow._codes(condition, xt.shape[0], xt)
    flow._eval_mode()
    z = flow._norm.encode(xt)
    res = integrate_energy(flow._v, z, 0.0, 1.0, flow._options(ode), condition=codes)
    energy = (res.energy * _squared(flow._norm.scale)).to(in_dtype)
    x1 = flow._norm.decode(res.x).to(in_dtype)
    check_finite_output(x1, "path_energy", "the end points")
    check_finite_output(energy, "path_energy", "the path energies")
    return PathEnergy(back(x1), back_1d(back, energy), res.nfe)


def trajectory(
    flow: TransportFlow,
    x: Any,
    times: Any,
    ode: ODEOptions | None,
    nfe: int | None,
    condition: Any = None,
) -> xr.DataArray:
    """The body of :meth:`TransportFlow.trajectory`."""
    ts = check_times(times, "times")
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"times must be 1-D with at least 2 entries, got {tuple(ts.shape)}")
    options = flow._options(ode, nfe)
    xt, _, _ = flow._prepare(x, "x")
    diffs = torch.diff(ts.to(xt))  # in the dtype of the solve
    if not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
        raise ValueError(
            f"times must be strictly increasing or strictly decreasing in {xt.dtype}, got "
            f"{ts.tolist()}"
        )
    codes = flow._codes(condition, xt.shape[0], xt)
    flow._eval_mode()
    res = integrate(flow._v, flow._norm.encode(xt), ts.to(xt), options, condition=codes)
    decoded = check_finite_output(flow._norm.decode(res.states), "trajectory", "the states")
    states = decoded.detach().cpu().numpy().astype(np.float64)
    dims = ("time", "sample", "dim") if len(flow._shape) == 1 else None
    return xr.DataArray(
        states,
        dims=dims or ("time", "sample", *[f"axis{i}" for i in range(len(flow._shape))]),
        coords={"time": ts.detach().cpu().numpy().astype(np.float64)},
        attrs={"nfe": res.nfe, "method": options.method},
        name="trajectory",
    )


def back_1d(back: Callable, values: Tensor) -> Any:
    """Per-sample values in the caller's array type (xarray loses the ``dim`` axis)."""
    out = back(values)
    if isinstance(out, xr.DataArray):
        return xr.DataArray(out.values, dims=(out.dims[0],) if out.dims else ("sample",))
    return out
