"""The one-call form of the trainer: :func:`train` builds a :class:`~sitransport.train.Trainer`
with its arguments and runs it."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from sitransport.config.training import TrainSettings
from sitransport.couplings import Coupling, DrawPairs, PairSource
from sitransport.interpolants import Interpolant
from sitransport.losses import TimeSampler
from sitransport.paths import PathSettings
from sitransport.train.step import Conditions
from sitransport.train.trainer import Trainer, TrainResult

__all__ = ["train"]


def train(
    net: nn.Module,
    interpolant: Interpolant,
    draw: DrawPairs | PairSource,
    *,
    settings: TrainSettings | None = None,
    time_sampler: TimeSampler | None = None,
    coupling: Coupling | None = None,
    path: PathSettings | None = None,
    seed: int = 0,
    validation: tuple[Tensor, ...] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    fingerprint: dict[str, Any] | None = None,
    conditions: Conditions | None = None,
) -> TrainResult:
    """Train ``net`` on the quadratic loss; optionally ascend on the interpolant (max–min).

    Under an initialised ``torch.distributed`` process group (see
    :mod:`sitransport.distributed`) the network is wrapped in ``DistributedDataParallel``:
    every rank draws the same global batch of ``settings.batch_size`` pairs, pairs it with
    ``coupling`` on the whole global batch, and trains on its slice; gradients are averaged,
    so ``N`` ranks take the steps one process takes on the same batch. Each rank's slice is
    processed in ``settings.accumulate`` micro-batches (gradient accumulation). Only rank 0
    shows progress and writes checkpoints.

    Args:
        net: velocity network ``v(z, t)``; trained in place.
        interpolant: the path (trained in place too when ``path`` is given).
        draw: ``draw(n, generator)`` returns a global batch ``(x0, x1)`` of normalised samples
            (independent draws, or pairs for a given coupling such as reflow's). A draw with
            ``state_dict``/``load_state_dict`` methods (e.g. over a
            :class:`~sitransport.distributed.ShardedDataset`) is checkpointed too. Or a
            :class:`~sitransport.couplings.PairSource` built once by the caller with a
            coupling's :meth:`~sitransport.couplings.Coupling.source` (as ``fit`` does).
        settings: optimisation settings; ``None``: ``TrainSettings()``. Default ``None``.
        time_sampler: distribution of training times (uniform by default).
        coupling: how the batches come from ``draw`` (:mod:`sitransport.couplings`;
            default as drawn): its :meth:`~sitransport.couplings.Coupling.source`. Most
            couplings pair each drawn batch; a :class:`~sitransport.couplings.GlobalOT`
            draws the batches from its plans instead (subsamples seeded by ``seed + 4``).
            ``None`` with a ``PairSource`` as ``draw``.
        path: settings of the ascent on the interpolant's parameters (``None``: fixed path).
        seed: seeds every random draw of the run (one ``torch.Generator``; dropout masks from
            the global RNG, reseeded from ``seed``, rank and step inside ``fork_rng``); an
            integer in ``[0, 2**63 - 1]``. Default ``0``.
        validation: ``(x0, x1)`` held-out pairs evaluated every ``eval_every`` steps at
            fixed times. Default ``None``.
        checkpoint: file written every ``checkpoint_every`` steps (atomically): model, EMA,
            optimiser, scheduler, step, generator and data-position states, and the run's
            fingerprint (the settings, named as :func:`~sitransport.fit`'s arguments,
            ``seed``, ``dtype``, the interpolant's, time sampler's, coupling's and path
            settings' specs, the network's architecture, and ``fingerprint``). Default ``None``.
        resume: continue from ``checkpoint`` if it exists (bit-for-bit the same run). The
            checkpoint's fingerprint must equal this call's, except ``steps``, ``progress``
            and ``checkpoint_every``. A larger ``steps`` extends the run: the learning-rate
            schedule stays the one of the run that wrote the checkpoint (warm-up and cosine
            decay over its ``steps``; ``history.attrs["lr_schedule_steps"]``), so the extra
            steps run at its floor ``min_lr_ratio * lr``, and the first steps are those of the
            original run. ``steps`` must not be below the steps already done. A checkpoint
            without a fingerprint (written by an older version) resumes with a warning.
            Default ``False``.
        device: ``"cpu"``, an available ``"cuda[:index]"`` or ``"mps"``.
        dtype: dtype of the network and the batches (``torch.float32`` or ``torch.float64``).
            Default ``torch.float32``.
        fingerprint: plain data that also identifies the run (:func:`~sitransport.fit` passes its
            arguments and a description of the data: spec and SHA-256 of a fixed subsample);
            stored in checkpoints and compared on resume. Default ``None``.
        conditions: a conditional run (:class:`~sitransport.train.step.Conditions`): ``draw``
            returns ``(x0, x1, codes)``, pairs are made within conditions, conditions are
            dropped with probability ``conditions.dropout``, and ``validation`` is
            ``(x0, x1, codes)``. Default ``None``.

    Returns:
        A :class:`TrainResult`: ``model``, the EMA model (or ``net`` without EMA), and
        ``history``, the record.

    Raises:
        ValueError: the global batch does not split into ``world size x accumulate`` equal
            parts; path optimisation with several ranks or micro-batches; ``seed`` outside
            ``[0, 2**63 - 1]``; an unsupported or unavailable ``device``; a ``coupling``
            given with a ``PairSource``; a ``GlobalOT`` coupling of a stateful draw.
        TrainingDivergedError: the loss or gradient norm became NaN or infinite, or the loss
            grew by orders of magnitude (a ``FloatingPointError``; the message names the
            step, the value and what to try: a lower ``lr``, ``clip_grad``).
        CheckpointMismatchError: on resume, the checkpoint was written by a run with other
            settings or data (the message lists every differing field, checkpoint -> this
            call), or ``steps`` is below the checkpoint's step (a ``ValueError``).

    Notes:
        Training stops with :class:`~sitransport.errors.TrainingDivergedError` (before the
        weights move) on a non-finite loss, a non-finite gradient norm, or a flow-matching
        loss grown by orders of magnitude: once 5 steps are recorded, when the median of the
        last 5 batch values exceeds ``1e4`` times the lowest such running median since the
        first step and 10 times the first step's value (the untrained level), or at once
        when one batch value exceeds ``1e8`` times that lowest median (runs shorter than 5
        steps). The median makes single noisy batches harmless; the flow-matching loss is
        used because ``G`` can be negative.

    Example:
        The low-level loop behind :func:`~sitransport.fit`, here from ``N(0, 1)`` to ``N(2, 1)``:

        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.nn import MLPVelocity
        >>> def draw(n, generator):
        ...     x0 = torch.randn(n, 1, generator=generator)
        ...     return x0, torch.randn(n, 1, generator=generator) + 2.0
        >>> settings = TrainSettings(steps=30, batch_size=64, progress=False)
        >>> net = MLPVelocity(1, width=16, depth=1)
        >>> result = train(net, Linear(), draw, settings=settings)
        >>> result.model(torch.zeros(3, 1), torch.full((3,), 0.5)).shape
        torch.Size([3, 1])
        >>> result.history.sizes["step"], sorted(result.history.data_vars)[:3]
        (30, ['fm_loss', 'grad_norm', 'kinetic'])
    """
    return Trainer(
        net,
        interpolant,
        draw,
        settings=settings,
        time_sampler=time_sampler,
        coupling=coupling,
        path=path,
        seed=seed,
        validation=validation,
        checkpoint=checkpoint,
        resume=resume,
        device=device,
        dtype=dtype,
        fingerprint=fingerprint,
        conditions=conditions,
    ).run()
