"""What a resumed :func:`~sitransport.fit` must share with the run that wrote its
checkpoint: the settings of ``fit`` that change the model and both ends of the data, as plain
data (each end's spec and the SHA-256 of a fixed subsample)."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor

from sitransport.config import FitConfig
from sitransport.distributed import ShardedDataset
from sitransport.ends.densities import Density, EmpiricalDensity
from sitransport.fitting.conditions import FitConditions
from sitransport.images import DequantizedImages
from sitransport.train import run_generator

# The other functions are fit's own steps, imported by the package, not public API.
__all__: list[str] = []


def _digest(x: Tensor) -> str:
    """SHA-256 of a tensor's values (as float64) and shape."""
    x = x.detach().cpu().to(torch.float64).contiguous()
    return hashlib.sha256(repr(tuple(x.shape)).encode() + x.numpy().tobytes()).hexdigest()


def _spread(n: int, m: int) -> Tensor:
    """At most ``m`` indices spread evenly over ``range(n)`` (a fixed subsample)."""
    return torch.linspace(0, n - 1, min(n, m)).round().long()


def _data_fingerprint(end: Density | ShardedDataset) -> dict[str, Any]:
    """An end of ``fit`` as plain data: its spec and the SHA-256 of a fixed subsample (evenly
    spread rows of a sample set; a fixed-seed draw of a distribution, which tells its
    parameters apart)."""
    if isinstance(end, ShardedDataset):
        n = len(end.dataset)
        x = end.images(_spread(n, 64).tolist())
        return {"kind": "dataset", "n": n, "shape": list(end.shape), "sha256": _digest(x)}
    if isinstance(end, EmpiricalDensity):
        x = end.samples[_spread(end.samples.shape[0], 256)]
    elif isinstance(end, DequantizedImages):
        x = end.pixels[_spread(len(end), 64)]
    else:
        x = end.sample(64, run_generator(0))
    return {**end.spec(), "sha256": _digest(x)}


# what fit's fingerprint adds to train's (which has the training settings, seed, dtype,
# coupling, interpolant, time sampler, path settings and the network's architecture)
_FINGERPRINTED = ("validation", "normalize", "remedy", "rank0", "rank1", "sample_method")


def fit_fingerprint(
    config: FitConfig,
    rho0: Density,
    rho1: Density | ShardedDataset,
    conditions: FitConditions | None = None,
) -> dict[str, Any]:
    """What a resumed ``fit`` must share with the run that wrote the checkpoint, beyond what
    :func:`~sitransport.train.train` records: the network spec, the settings of ``fit``
    itself that change the model, and both ends of the data.

    Args:
        config: the fit's record.
        rho0: the source end, as resolved (before the split).
        rho1: the target end, as resolved (a density or a dataset).
        conditions: a conditional fit's conditions (kind, pairing weight and a SHA-256 of
            the values); unconditional fingerprints have no such entry.
    """
    run: dict[str, Any] = {name: getattr(config, name) for name in _FINGERPRINTED}
    run.update(
        network=config.network.spec(),
        rho0=_data_fingerprint(rho0),
        rho1=_data_fingerprint(rho1),
    )
    if conditions is not None:
        run["condition"] = {
            "kind": conditions.kind,
            "weight": config.condition_weight,
            "sha256": conditions.digest(),
        }
    return run
