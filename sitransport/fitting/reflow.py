"""The entry point :func:`reflow`: retrain a fitted flow on the coupling of its own map
(rectified flow), conditional flows one condition at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sitransport._validation import check_device, check_positive_int, check_seed
from sitransport.callbacks import Callback
from sitransport.config import (
    CouplingSpec,
    FitConfig,
)
from sitransport.ends.conditions import condition_array
from sitransport.fitting.conditions import (
    FitConditions,
    condition_record,
)
from sitransport.fitting.settings import (
    check_dtype,
    interpolant_record,
    merge_settings,
)
from sitransport.flow import TransportFlow
from sitransport.interpolants import Interpolant, Normalized, get_interpolant
from sitransport.losses import TimeSampler, get_time_sampler
from sitransport.nn.builder import fresh_network, network_spec_of
from sitransport.ode import ODEOptions
from sitransport.train import TrainSettings, run_generator, train
from sitransport.train.step import Conditions

__all__ = ["reflow"]


def _device_of(network: Any) -> torch.device:
    """Where a network's parameters are (the CPU for a parameter-free callable)."""
    params = network.parameters() if isinstance(network, nn.Module) else iter(())
    first = next(iter(params), None)
    return first.device if first is not None else torch.device("cpu")


def reflow(
    flow: TransportFlow,
    n: int = 20_000,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callback] | None = None,
    training: TrainSettings | None = None,
    interpolant: str | Interpolant = "linear",
    time_sampler: str | dict | TimeSampler | None = None,
    ode: ODEOptions | None = None,
    condition: Any = None,
) -> TransportFlow:
    r"""Rectify a flow: retrain on the coupling ``(x0, T(x0))`` of its own map ``T``.

    Pairs a fresh draw of ``rho0`` with its push-forward and fits a new velocity to them
    with the (default linear) interpolant. Pairs that come from a deterministic map do not
    cross, so the new flow's paths are straighter: lower kinetic energy and fewer ODE steps
    (Liu et al., Flow Straight and Fast, arXiv:2209.03003). Compare ``straightness`` and
    ``nfe`` of :func:`~sitransport.metrics.transport_report` before and after.

    The new network has the flow's architecture and trains as the flow did: with its
    ``flow.config.training`` settings (learning rate and schedule, EMA, clipping, batch
    size, ...), time sampler and dtype, on the device the flow's network is on. Each can be
    changed: the keywords as in :func:`~sitransport.fit`, the other settings by passing
    ``training=`` whole (e.g. ``dataclasses.replace(flow.config.training, ema=None)``). A
    flow built by hand (``flow.config is None``) trains with the defaults of
    :class:`~sitransport.train.TrainSettings` in its network's dtype.

    A conditional flow (``fit(..., condition=c)``) is rectified one condition at a time: each
    pair ``(x0, T(x0 | c))`` gets a condition ``c`` drawn uniformly from ``condition=`` (the
    values to draw from; pass the training conditions to keep their frequencies), or, for
    labels, from the flow's label set by default. The flow keeps only the standardisation
    of feature conditions, so features must be given. The new network is conditional too,
    trained with the flow's ``condition_dropout`` (so guidance still works), and the new
    flow has the flow's :attr:`~TransportFlow.condition`.

    Args:
        flow: a fitted :class:`TransportFlow` with a base to draw ``rho0`` from.
        n: number of pairs generated. Default ``20000``.
        steps: training steps (default: ``training.steps``).
        batch_size: pairs per step (default: ``training.batch_size``).
        lr: peak learning rate (default: ``training.lr``).
        seed: seed of the pairs and the training run. Default ``0``.
        device: where to train (default: where the flow's network is).
        dtype: the new network's dtype (default: the flow's, ``flow.config.dtype``).
        progress: show progress bars (default: ``training.progress``).
        callbacks: :class:`~sitransport.callbacks.Callback` objects called during training,
            e.g. ``[st.callbacks.TensorBoard("runs/a")]`` (default: ``training.callbacks``,
            none); never recorded in ``flow.config``.
        training: the training settings (default: the flow's, ``flow.config.training``);
            the five keywords above, when given, take precedence over its fields.
        interpolant: the new flow's interpolant (rectified flow uses ``"linear"``).
        time_sampler: distribution of training times (default: the flow's).
        ode: ODE settings for generating the pairs (default: the flow's).
        condition: a conditional flow's conditions to draw the pairs' from, one row each
            (labels or features the flow knows; drawn uniformly with replacement). Default
            ``None``: labels uniformly from the flow's label set; required for features.

    Returns:
        A new :class:`TransportFlow` with the same ends and normalisation; its ``config``
        is the flow's with the settings used, ``coupling.name == "paired"`` and
        ``reflow_generation`` one higher.

    Raises:
        ValueError: ``n < 2``, ``seed`` outside ``[0, 2**63 - 1]``, or no base to draw from.
        ValueError: ``condition`` for an unconditional flow; none for a flow conditioned on
            features; a label the flow never saw or features of another width; a flow
            fitted with ``condition=(c0, c1)`` (the flow does not keep which source samples
            go with which condition).
        TypeError: ``training`` is not a ``TrainSettings``, or a bad ``dtype``.

    Example:
        >>> import sitransport as st
        >>> x1 = st.datasets.sample("moons", 1000, seed=0)
        >>> flow = st.fit("gaussian", x1, steps=50, network=st.MLPSpec(width=32),
        ...               progress=False, seed=0)
        >>> straight = st.reflow(flow, 1000, steps=50, progress=False)
        >>> straight.config.reflow_generation, straight.config.coupling.name
        (1, 'paired')
        >>> straight.sample(3, seed=0).shape
        (3, 2)
    """
    n = check_positive_int(n, "n", minimum=2)
    seed = check_seed(seed)
    if flow.base is None:
        raise ValueError("reflow needs rho0: the flow has no base to draw from")
    base = flow.config
    if base is None:  # built by hand: the defaults, in the network's dtype
        spec = network_spec_of(flow.network, flow.shape)
        base = FitConfig(network=spec, interpolant=None, dtype=flow.dtype or torch.float32)
    training = merge_settings(
        training,
        base.training,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        progress=progress,
        callbacks=callbacks,
    )
    training = dataclasses.replace(training, checkpoint_every=TrainSettings().checkpoint_every)
    where = check_device(device) if device is not None else _device_of(flow.network)
    dtype = dtype if dtype is not None else base.dtype
    check_dtype(dtype)
    sampler = get_time_sampler(time_sampler if time_sampler is not None else base.time_sampler)
    draw, conditions, rows = _reflow_pairs(flow, n, run_generator(seed, 7), ode, condition, dtype)
    if conditions is not None:
        conditions = dataclasses.replace(conditions, dropout=training.condition_dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = fresh_network(flow.network, flow.shape, base.network, flow.condition)
    interp = get_interpolant(interpolant)
    norm = flow.normalization
    path = Normalized(interp, norm.shift, norm.scale)
    trained = train(
        net,
        path,
        draw,
        settings=training,
        time_sampler=sampler,
        seed=seed,
        device=where,
        dtype=dtype,
        conditions=conditions,
    )
    config = dataclasses.replace(
        base,
        training=training,
        coupling=CouplingSpec(CouplingSpec.PAIRED),
        interpolant=interpolant_record(interp),
        time_sampler=sampler.spec(),
        path=None,
        checkpoint=None,
        seed=seed,
        device=str(where),
        dtype=dtype,
        reflow_generation=base.reflow_generation + 1,
        reflow_pairs=n,
        ot_choice=None,  # the pairs are the flow's map now, whatever coupling="ot" picked
    )
    if flow.condition is not None and rows is not None:
        kind = base.condition or flow.condition.kind
        record = condition_record(FitConditions(flow.condition, kind, rows), None)
        trained.history.attrs.update(record)
    return TransportFlow(
        trained.model,
        interp,
        base=flow.base,
        target=flow.target,
        normalization=norm,
        ode=flow.ode,
        config=config,
        history=trained.history,
        condition=flow.condition,
    )


def _reflow_pairs(
    flow: TransportFlow,
    n: int,
    gen: torch.Generator,
    ode: ODEOptions | None,
    condition: Any,
    dtype: torch.dtype,
) -> tuple[Callable[..., tuple[Tensor, ...]], Conditions | None, np.ndarray | None]:
    """Reflow's pairs ``(x0, T(x0 [| c]))`` in normalised coordinates, as a draw of
    ``(z0, z1[, codes])``, the trainer's conditions of a conditional flow and the pairs'
    condition values."""
    assert flow.base is not None  # checked by reflow
    x0 = flow.base.sample(n, gen)
    rows = _reflow_conditions(flow, condition, n, gen)
    x1 = torch.as_tensor(flow.push_forward(x0.numpy(), ode=ode, condition=rows))
    norm = flow.normalization
    z0, z1 = norm.encode(x0), norm.encode(x1)
    enc = flow.condition
    if enc is None:

        def draw(m: int, g: torch.Generator) -> tuple[Tensor, ...]:
            idx = torch.randint(0, n, (m,), generator=g)
            return z0[idx], z1[idx]

        return draw, None, None
    codes = enc.encode(rows, n, dtype=dtype)

    def draw_conditional(m: int, g: torch.Generator) -> tuple[Tensor, ...]:
        idx = torch.randint(0, n, (m,), generator=g)
        return z0[idx], z1[idx], codes[idx]

    return draw_conditional, Conditions(enc, enc.kind == "labels", None, 0.0), rows


def _reflow_conditions(
    flow: TransportFlow, condition: Any, n: int, gen: torch.Generator
) -> np.ndarray | None:
    """The conditions of reflow's ``n`` pairs, drawn uniformly from ``condition`` (a
    labelled flow's label set by default); ``None`` for an unconditional flow."""
    enc = flow.condition
    if enc is None:
        if condition is not None:
            raise ValueError(
                "condition: this flow is unconditional (fitted without condition=), got a "
                f"condition of type {type(condition).__name__} for reflow"
            )
        return None
    kind = flow.config.condition if flow.config is not None else enc.kind
    if kind is not None and kind.startswith("paired"):
        raise ValueError(
            "reflow of a flow fitted with condition=(c0, c1) is not supported: its source "
            "samples go with conditions of their own, which the flow does not keep"
        )
    if condition is None:
        if enc.kind == "features":
            raise ValueError(
                f"condition: reflow of a flow conditioned on features ({enc!r}) needs "
                "condition= (feature rows to draw the pairs' conditions from, e.g. the "
                "training conditions): the flow keeps only their standardisation"
            )
        values = np.asarray(enc.labels)
    else:
        values = condition_array(condition, "condition")
        enc.encode(values, len(values))  # known labels, the right width: else ValueError
    return values[torch.randint(0, len(values), (n,), generator=gen).numpy()]
