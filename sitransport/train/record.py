"""The record of a training run: :class:`Record` keeps the per-step losses, learning rate,
gradient norms and wall time, the validation losses and learned path coefficients at each
evaluation, and the Sinkhorn diagnostic with its seconds at each of its steps, and turns them
into the run's ``history`` (an ``xarray.Dataset``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

__all__: list[str] = []


@dataclass
class Record:
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    fm_loss: list[float] = field(default_factory=list)
    kinetic: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_fm_loss: list[float] = field(default_factory=list)
    path_a: list[Any] = field(default_factory=list)
    path_b: list[Any] = field(default_factory=list)
    sinkhorn_step: list[int] = field(default_factory=list)
    sinkhorn: list[float] = field(default_factory=list)
    sinkhorn_seconds: list[float] = field(default_factory=list)

    def to_dataset(self, attrs: dict[str, Any]) -> xr.Dataset:
        per_step = ("step",)
        data: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
            "loss": (per_step, np.array(self.loss)),
            "fm_loss": (per_step, np.array(self.fm_loss)),
            "kinetic": (per_step, np.array(self.kinetic)),
            "lr": (per_step, np.array(self.lr)),
            "grad_norm": (per_step, np.array(self.grad_norm)),
            "wall_time": (per_step, np.array(self.wall_time)),
        }
        if self.val_loss:
            data["val_loss"] = (("eval_step",), np.array(self.val_loss))
            data["val_fm_loss"] = (("eval_step",), np.array(self.val_fm_loss))
        for name, coefs in (("path_a", self.path_a), ("path_b", self.path_b)):
            if coefs:
                arr = np.array(coefs)
                data[name] = (("eval_step", "k", "dim")[: arr.ndim], arr)
        coords = {"step": np.array(self.step), "eval_step": np.array(self.eval_step)}
        if self.sinkhorn_step:  # the Sinkhorn diagnostic (sitransport.train.diagnostics)
            coords["sinkhorn_step"] = np.array(self.sinkhorn_step)
            data["sinkhorn"] = (("sinkhorn_step",), np.array(self.sinkhorn, dtype=float))
            data["sinkhorn_seconds"] = (("sinkhorn_step",), np.array(self.sinkhorn_seconds))
        ds = xr.Dataset(data, coords=coords, attrs=attrs)
        ds["loss"].attrs["description"] = "quadratic loss G of the paper (batch estimate)"
        ds["fm_loss"].attrs["description"] = "flow-matching loss E|v - dI/dt|^2 (batch)"
        ds["kinetic"].attrs["description"] = "E|v(x_t)|^2 on the batch: kinetic energy estimate"
        ds["wall_time"].attrs["units"] = "s"
        if self.sinkhorn_step:
            ds["sinkhorn"].attrs["description"] = (
                "debiased Sinkhorn divergence S_eps (geomloss, cost |x - y|^2 / 2; "
                "-> W2^2 / 2 as blur -> 0) of flow samples vs held-out targets"
            )
            ds["sinkhorn_seconds"].attrs["units"] = "s"
        return ds
