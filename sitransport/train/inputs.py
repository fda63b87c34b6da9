"""The inputs of a training run, resolved and checked before it starts: the run's pair
source (:func:`run_source`; conditional runs refuse plans between whole ends,
:func:`check_conditional_plans`), the split of the global batch into micro-batches
(:func:`check_batches`) and the held-out batch with its fixed times and noise
(:func:`validation_batch`)."""

from __future__ import annotations

import torch
from torch import Tensor

from sitransport.config.training import TrainSettings
from sitransport.couplings import (
    Coupling,
    DrawPairs,
    EntropicPlanSampler,
    Independent,
    PairSource,
    PlanSampler,
)
from sitransport.losses import TimeSampler
from sitransport.paths import PathSettings
from sitransport.train.schedule import run_generator

__all__: list[str] = []


def run_source(draw: DrawPairs | PairSource, coupling: Coupling | None, seed: int) -> PairSource:
    """The run's :class:`~sitransport.couplings.PairSource`: ``draw`` itself when it is one
    (built by the caller), else ``coupling``'s source of ``draw`` (default independent).

    Raises:
        ValueError: a ``PairSource`` given with a ``coupling``.
    """
    if isinstance(draw, PairSource):
        if coupling is not None:
            raise ValueError(
                "coupling: the PairSource given as draw carries its coupling already "
                f"({draw.coupling!r}); pass coupling=None"
            )
        return draw
    return (coupling or Independent()).source(draw, seed=seed)


def check_conditional_plans(source: PairSource, conditional: bool) -> None:
    """A conditional run cannot draw from plans between whole ends (they drop the codes and
    pair across conditions).

    Raises:
        ValueError: a conditional run with a :class:`~sitransport.couplings.PlanSampler` (or
            :class:`~sitransport.couplings.EntropicPlanSampler`).
    """
    if conditional and isinstance(source.plans, (PlanSampler, EntropicPlanSampler)):
        raise ValueError(
            f"coupling={type(source.coupling).__name__} with conditions: its plans must be "
            "solved within conditions; pass a GroupPlans or FeaturePlans (sitransport.couplings) "
            "as draw, as fit does for GlobalOT, or use coupling=ExactOT() (or EntropicOT())"
        )


def check_batches(
    settings: TrainSettings, world: int, stochastic: bool, path: PathSettings | None
) -> None:
    """The global batch must split into ``world size x accumulate`` equal micro-batches;
    path optimisation runs on one process without accumulation.

    Raises:
        ValueError: either is not so.
    """
    k = settings.accumulate
    n_batch = settings.batch_size
    if stochastic and settings.antithetic:
        n_batch = 2 * (n_batch // 2)  # (z, -z) halves
    if n_batch % (world * k):
        raise ValueError(
            f"batch_size={settings.batch_size} must split into world size x accumulate = "
            f"{world} x {k} equal micro-batches (antithetic stochastic batches use "
            f"{n_batch} pairs)"
        )
    if path is not None and (world > 1 or k > 1):
        raise ValueError(
            "path optimisation (optimize_path) runs on one process without gradient "
            f"accumulation, got world size {world} and accumulate={k}"
        )


def validation_batch(
    validation: tuple[Tensor, ...] | None,
    conditional: bool,
    seed: int,
    time_sampler: TimeSampler,
    stochastic: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[tuple[Tensor, ...] | None, Tensor | None]:
    """Held-out pairs with fixed times (and noise) drawn once from the run's stream 1, and a
    conditional run's codes, kept apart: ``((v0, v1, vt[, vz]), codes or None)``;
    ``(None, None)`` without validation."""
    if validation is None:
        return None, None
    codes = None
    if conditional:
        codes = validation[2].detach().to(device)
        codes = codes.to(dtype) if codes.is_floating_point() else codes
    vgen = run_generator(seed, 1)
    v0, v1 = (v.detach().to(device=device, dtype=dtype) for v in validation[:2])
    vt = time_sampler.sample(v0.shape[0], generator=vgen, device=device, dtype=dtype)
    if not stochastic:
        return (v0, v1, vt), codes
    vz = torch.randn(v0.shape, generator=vgen, dtype=torch.float64).to(v0)
    return (v0, v1, vt, vz), codes
