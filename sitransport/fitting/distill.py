"""The entry point :func:`distill`: a one-step model of a fitted flow's map, a rectified flow
whose velocity at ``t = 0`` is trained as the map itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sitransport._validation import check_fraction
from sitransport.callbacks import Callback
from sitransport.fitting.reflow import reflow
from sitransport.flow import TransportFlow
from sitransport.losses import AtZeroTime
from sitransport.ode import ODEOptions
from sitransport.train import TrainSettings

__all__ = ["distill"]


def distill(
    flow: TransportFlow,
    n: int = 20_000,
    *,
    steps: int | None = None,
    weight: float = 0.8,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callback] | None = None,
    training: TrainSettings | None = None,
    ode: ODEOptions | None = None,
    condition: Any = None,
) -> TransportFlow:
    r"""Distil a flow into a one-step model: ``sample(n, nfe=1)`` draws in one evaluation.

    Pairs a fresh draw of ``rho0`` with its push-forward ``T(x0)`` by the flow's ODE (the
    teacher's map, as :func:`~sitransport.reflow` does) and fits a new velocity to them with
    the linear interpolant, a fraction ``weight`` of the training times at exactly ``t = 0``
    (:class:`~sitransport.losses.AtZeroTime`), the rest uniform. At ``t = 0`` the linear
    interpolant is ``x0`` itself and the minimiser of the loss is
    :math:`v_0(x_0) = T(x_0) - x_0`, so one Euler step from ``t = 0``,
    :math:`x_0 + v_0(x_0)`, is the teacher's map, regressed directly: the distillation of
    the rectified-flow paper (Liu et al., arXiv:2209.03003, Sec. 2.3), the one-step student
    of Luhman & Luhman (arXiv:2101.02388) trained on the teacher's ODE pairs. The teacher
    need not be straight: its own ``nfe=1`` may be far off.

    The result is a flow like any other. Its one-step map is the Euler step of
    ``nfe=1``: ``sample(n, nfe=1)``, ``push_forward(x, nfe=1)``, ``transport(x, nfe=1)``.
    Any other solver (the default ``dopri5``, ``nfe >= 2``) integrates the velocity at every
    time, which the uniform part of the times trains as the rectified flow of the pairs
    (:func:`~sitransport.reflow` with ``interpolant="linear"``); its map is close to the
    one-step map, not equal to it. ``log_prob``, ``pull_back`` and ``score`` are those of
    that ODE flow (its density, not the density of the one-step map, which has none in
    closed form; ``pull_back(y, nfe=1)`` is one Euler step of it from ``t = 1``, not the
    inverse of the one-step map).

    Training takes the flow's settings as :func:`~sitransport.reflow` does (network
    architecture, learning rate and schedule, EMA, batch size, dtype, device), with
    ``steps`` a quarter of the flow's by default; the pairs cost one ODE solve of ``n``
    points (``ode=`` may loosen its tolerances). Count both against the teacher's training:
    on 8x8 digits (64-D, a 1,500-image training set) the pairs of ``n = 20000`` cost about twice
    the student's training, and ``n = 5000`` halves the total for a one-step W2 1.15x the
    teacher's dopri5 W2 instead of 1.12x (``bench_onestep``). A conditional flow is distilled one
    condition at a time, as reflow does.
    ``flow.config`` records the pairs (``coupling.name == "paired"``, ``reflow_pairs``),
    the interpolant and ``time_sampler == {"name": "at_zero", "weight": weight}``; save and
    load keep them.

    Args:
        flow: a fitted :class:`TransportFlow` with a base to draw ``rho0`` from.
        n: number of teacher pairs generated. Default ``20000``.
        steps: training steps (default: ``training.steps`` when ``training`` is given, else
            a quarter of the flow's, at least 1).
        weight: the fraction of training times at ``t = 0``, in ``(0, 1)``. Default ``0.8``.
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
            the keywords above, when given, take precedence over its fields.
        ode: ODE settings for generating the pairs (default: the flow's).
        condition: a conditional flow's conditions to draw the pairs' from (see
            :func:`~sitransport.reflow`). Default ``None``.

    Returns:
        A new :class:`TransportFlow` with the same ends and normalisation, the linear
        interpolant, ``config.time_sampler == {"name": "at_zero", "weight": weight}`` and
        ``config.reflow_generation`` one higher than the flow's.

    Raises:
        TypeError: ``weight`` is not a number; ``training`` is not a ``TrainSettings``, or a
            bad ``dtype``.
        ValueError: ``weight`` outside ``(0, 1)``; ``n < 2``, ``steps < 1``, ``seed``
            outside ``[0, 2**63 - 1]``, no base to draw from, or a bad ``condition`` (as
            :func:`~sitransport.reflow`).

    References:
        Liu, Gong & Liu, *Flow Straight and Fast: Learning to Generate and Transfer Data
        with Rectified Flow*, arXiv:2209.03003. Luhman & Luhman, *Knowledge Distillation in
        Iterative Generative Models for Improved Sampling Speed*, arXiv:2101.02388.

    Example:
        >>> import sitransport as st
        >>> x1 = st.datasets.sample("moons", 1000, seed=0)
        >>> flow = st.fit("gaussian", x1, steps=60, network=st.MLPSpec(width=32),
        ...               progress=False, seed=0)
        >>> student = st.distill(flow, 1000, progress=False)
        >>> student.config.time_sampler, student.config.training.steps
        ({'name': 'at_zero', 'weight': 0.8}, 15)
        >>> student.sample(3, seed=0, nfe=1).shape
        (3, 2)
    """
    weight = check_fraction(weight, "weight")
    if weight == 0.0:
        raise ValueError(
            "weight must be in (0, 1), got 0.0: no time at t = 0 is reflow "
            "(sitransport.reflow), not a one-step model"
        )
    if steps is None and training is None:
        own = flow.config.training if flow.config is not None else TrainSettings()
        steps = max(1, own.steps // 4)
    return reflow(
        flow,
        n,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        dtype=dtype,
        progress=progress,
        callbacks=callbacks,
        training=training,
        interpolant="linear",
        time_sampler=AtZeroTime(weight),
        ode=ode,
        condition=condition,
    )
