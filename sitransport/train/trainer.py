"""The trainer: :class:`Trainer` runs one training of a velocity network (AdamW with its
learning-rate schedule, EMA, gradient clipping, the divergence guard, validation, resumable
checkpoints and the record, with the optional ascent on a learnable path, calling the
callbacks of ``settings.callbacks`` through :mod:`sitransport.train.callbacks`);
:class:`TrainResult` is what it returns (its one-call form :func:`~sitransport.train.train`
lives in :mod:`sitransport.train.entry`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from sitransport._io import load_checkpoint, save_checkpoint
from sitransport._validation import check_device, check_seed
from sitransport.config.training import TrainSettings
from sitransport.couplings import Coupling, DrawPairs, PairSource
from sitransport.distributed import rank_and_world
from sitransport.interpolants import Fourier, Interpolant, Normalized
from sitransport.losses import TimeSampler, get_time_sampler, quadratic_loss
from sitransport.paths import PathOptimizer, PathSettings
from sitransport.train.callbacks import Hooks, held_out_samples
from sitransport.train.compiled import compiled_objective
from sitransport.train.diagnostics import SinkhornMonitor
from sitransport.train.guard import DivergenceGuard
from sitransport.train.inputs import (
    check_batches,
    check_conditional_plans,
    run_source,
    validation_batch,
)
from sitransport.train.record import Record
from sitransport.train.resume import any_checkpoint, check_resume, run_fingerprint
from sitransport.train.schedule import LRSchedule, ema_updater, run_generator, step_seed
from sitransport.train.step import Batches, Conditions, Gradients, Objective, StatefulDraw

__all__ = ["TrainResult", "Trainer"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` (and :meth:`Trainer.run`) return: the trained ``model`` (the EMA
    model, or the network without EMA, in eval mode) and ``history``, the record of the run.

    Attributes:
        model: the trained network (the EMA model, or the network without EMA), in eval mode.
        history: the record of the run, an ``xarray.Dataset``: per-step losses, learning
            rate, gradient norms and wall time, the validation losses, and the Sinkhorn
            diagnostic (:mod:`sitransport.train.diagnostics`).

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.nn import MLPVelocity
        >>> from sitransport.train import TrainSettings, train
        >>> def draw(n, g):
        ...     return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2
        >>> settings = TrainSettings(steps=3, batch_size=8, progress=False)
        >>> result = train(MLPVelocity(1, width=8, depth=1), Linear(), draw, settings=settings)
        >>> type(result.model).__name__, result.history.sizes["step"]
        ('MLPVelocity', 3)
    """

    model: nn.Module
    history: xr.Dataset


class Trainer:
    """One training run of :func:`train`: the optimiser, schedule, EMA, validation,
    checkpoints and record of a velocity network, as short named steps.

    The constructor checks the settings, moves the network, builds the optimiser and restores
    a checkpoint when resuming; :meth:`run` trains and returns a :class:`TrainResult`. Each part
    of the loop is a short method: one optimisation step (``_step``: the batch drawn one step
    ahead, its micro-batches, the backward passes, the divergence guard, AdamW, the schedule,
    EMA and the path's ascent, the record), :meth:`evaluate`, the Sinkhorn diagnostic
    (:attr:`monitor`, a :class:`~sitransport.train.diagnostics.SinkhornMonitor`),
    :meth:`checkpoint` and :meth:`restore`. The run's inputs are checked and resolved by
    :mod:`sitransport.train.inputs`; the callbacks of ``settings.callbacks``
    (:mod:`sitransport.callbacks`) are called on rank 0 after each step, evaluation and
    checkpoint and at the end (:class:`~sitransport.train.callbacks.Hooks`).

    :meth:`on_checkpoint` is a hook called on rank 0 right after each checkpoint file is
    written (a no-op): override it in a subclass to act on checkpoints (copy them elsewhere),
    or patch it in tests to interrupt a run right after a checkpoint, as a crash would.

    The arguments are those of :func:`train`.

    Args:
        net: velocity network ``v(z, t)``; trained in place and moved to ``device``.
        interpolant: the path (trained in place too when ``path`` is given).
        draw: ``draw(n, generator)`` returning a global batch ``(x0, x1)`` of normalised
            samples, or a :class:`~sitransport.couplings.PairSource` built by a coupling.
        settings: optimisation settings; ``None``: ``TrainSettings()``. Default ``None``.
        time_sampler: distribution of training times; ``None``: uniform. Default ``None``.
        coupling: the coupling whose :meth:`~sitransport.couplings.Coupling.source` turns
            ``draw`` into the run's batches; ``None``: as drawn (independent), or the
            coupling of a given ``PairSource``. Default ``None``.
        path: settings of the ascent on the interpolant's parameters; ``None``: a fixed path.
            Default ``None``.
        seed: seeds every random draw of the run, an integer in ``[0, 2**63 - 1]``. Default ``0``.
        validation: ``(x0, x1)`` held-out pairs evaluated every ``eval_every`` steps, and the
            samples of the Sinkhorn diagnostic (:mod:`sitransport.train.diagnostics`);
            ``None``: no validation. Default ``None``.
        checkpoint: file written every ``checkpoint_every`` steps; ``None``: no checkpoints. Default
            ``None``.
        resume: continue from ``checkpoint`` if it exists (see :func:`train`). Default ``False``.
        device: ``"cpu"``, an available ``"cuda[:index]"`` or ``"mps"``. Default ``"cpu"``.
        dtype: dtype of the network and the batches. Default ``torch.float32``.
        fingerprint: plain data that also identifies the run, stored in checkpoints and compared on
            resume. Default ``None``.
        conditions: a conditional run's conditions
            (:class:`~sitransport.train.step.Conditions`: the encoder, pairing within
            conditions, condition dropout); ``draw`` then returns ``(x0, x1, codes)`` and
            ``net`` takes ``net(x, t, codes)``. Default ``None``: unconditional.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.nn import MLPVelocity
        >>> from sitransport.train import TrainSettings, Trainer
        >>> def draw(n, generator):
        ...     x0 = torch.randn(n, 1, generator=generator)
        ...     return x0, torch.randn(n, 1, generator=generator) + 2.0
        >>> settings = TrainSettings(steps=5, batch_size=8, progress=False)
        >>> trainer = Trainer(MLPVelocity(1, width=8, depth=1), Linear(), draw, settings=settings)
        >>> result = trainer.run()
        >>> trainer.done, result.history.sizes["step"]
        (5, 5)
    """

    def __init__(
        self,
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
    ) -> None:
        self.settings = settings = settings or TrainSettings()
        self.conditions = conditions
        self.seed = seed = check_seed(seed)
        self.device = device = check_device(device)
        self.dtype = dtype
        self.time_sampler = time_sampler or get_time_sampler("uniform")
        source = run_source(draw, coupling, seed)
        check_conditional_plans(source, conditions is not None)
        self.fingerprint = run_fingerprint(
            net,
            interpolant,
            settings,
            fingerprint,
            seed=seed,
            dtype=str(dtype),
            time_sampler=self.time_sampler,
            coupling=source.coupling,
            path=path.spec() if path is not None else None,
        )
        self.draw, self.coupling, self.meter = source.draw, source.batch_coupling, source
        self.rank, self.world = rank_and_world()
        self.hooks = Hooks(settings.callbacks, self.rank)
        self.stochastic = interpolant.stochastic
        check_batches(settings, self.world, self.stochastic, path)
        self.net = net.to(device=device, dtype=dtype)
        self.interpolant = interpolant.to(device=device)
        self.path_opt = PathOptimizer(self.interpolant, path) if path is not None else None
        self._build_optimizer()
        self.gen = run_generator(seed)
        self.path_gen = run_generator(seed, 3)
        self.record = Record()
        self.start = self.done = 0
        self.best: dict[str, Any] = {"loss": math.inf, "state": None}
        self.checkpoint_path = Path(checkpoint) if checkpoint is not None else None
        self.stateful_draw = hasattr(self.draw, "state_dict") and hasattr(
            self.draw, "load_state_dict"
        )
        if resume and self.checkpoint_path is None:
            raise ValueError("resume=True needs a checkpoint path")
        if resume and self.checkpoint_path is not None and any_checkpoint(self.checkpoint_path):
            self.restore(self.checkpoint_path)
        self.model = self.ema.module if self.ema is not None else self.net
        self._update_ema = (
            ema_updater(self.ema, self.net, settings.ema)
            if self.ema is not None and settings.ema is not None  # the one implies the other
            else None
        )
        self.objective = self._objective()
        self.autocast = torch.autocast(
            device_type=device.type,
            dtype=torch.bfloat16,
            enabled=settings.mixed_precision == "bf16",
        )
        self.validation, self.validation_codes = validation_batch(
            validation, conditions is not None, seed, self.time_sampler, self.stochastic,
            device, dtype,
        )  # fmt: skip
        self.monitor = SinkhornMonitor(
            settings, self.validation, self.validation_codes, self.interpolant
        )
        self._batch = Batches(
            self.draw,
            self.coupling,
            self.time_sampler,
            self.stochastic,
            settings.antithetic,
            device,
            dtype,
            conditions,
        )
        loss: nn.Module | Callable[..., Any] = self.objective
        if settings.compile:
            loss = compiled_objective(
                self.objective, self.net, device, self.world, path is not None
            )
        self._backward = Gradients(
            loss,
            self.autocast,
            self.path_opt,
            settings.accumulate,
            self.rank,
            self.world,
            device,
        )
        self._gen_state = self.gen.get_state()  # as before the batch drawn one step ahead
        self._draw_state = self._draw_position()

    def _build_optimizer(self) -> None:
        """The EMA copy, AdamW and its learning-rate schedule."""
        settings, device = self.settings, self.device
        self.ema = (
            AveragedModel(self.net, use_buffers=True)  # the averaged copy; see ema_updater
            if settings.ema is not None
            else None
        )
        self.params = list(self.net.parameters())
        # the fused kernel updates all tensors in one pass (a third of the per-tensor loop's
        # time for a small network on CPU); other devices keep torch's default implementation
        self.opt = torch.optim.AdamW(
            self.params,
            lr=settings.lr,
            weight_decay=settings.weight_decay,
            fused=True if device.type in ("cpu", "cuda") else None,
        )
        self.lr_factor = LRSchedule(settings)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self.lr_factor)

    def _objective(self) -> nn.Module:
        """The loss module; under several ranks wrapped in ``DistributedDataParallel`` (after
        loading a checkpoint: DDP broadcasts rank 0's weights at construction)."""
        denoiser = getattr(self.net, "denoiser", None) if self.stochastic else None
        objective: nn.Module = Objective(
            self.net, self.interpolant, denoiser is not None, self.conditions is not None
        )
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            device = self.device
            objective = DistributedDataParallel(
                objective, device_ids=[device.index] if device.type == "cuda" else None
            )
        return objective

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` (verified; its ``.prev`` if the file is
        missing or damaged) after checking it belongs to this run (:func:`check_resume`).

        Args:
            path: the checkpoint file (its ``<name>.prev`` is read if it is missing or damaged).

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> from sitransport.nn import MLPVelocity
            >>> def draw(n, g):
            ...     return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2
            >>> settings = TrainSettings(steps=4, batch_size=8, progress=False)
            >>> import pathlib, tempfile
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
            >>> settings = TrainSettings(steps=4, batch_size=8, checkpoint_every=4, progress=False)
            >>> net = MLPVelocity(1, width=8, depth=1)
            >>> _ = Trainer(net, Linear(), draw, settings=settings, checkpoint=path).run()
            >>> again = Trainer(MLPVelocity(1, width=8, depth=1), Linear(), draw, settings=settings)
            >>> again.restore(path)
            >>> again.start, again.record.step
            (4, [1, 2, 3, 4])

        """
        state = load_checkpoint(path, map_location=self.device)
        total = check_resume(state, self.fingerprint, path, self.settings.steps)
        self.lr_factor.total = self.fingerprint["lr_schedule_steps"] = total
        self.net.load_state_dict(state["net"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["generator"].cpu())
        self.path_gen.set_state(state["path_generator"].cpu())
        if self.path_opt is not None:
            self.path_opt.load_state_dict(state["path"])
        if self.stateful_draw and state.get("draw") is not None:
            cast(StatefulDraw, self.draw).load_state_dict(state["draw"])
        self.record = Record(**{k: list(v) for k, v in state["record"].items()})
        self.start = self.done = int(state["step"])
        if path.is_file() and state.get("best"):
            self.best = state["best"]

    def run(self) -> TrainResult:
        """Train from the current step to ``settings.steps``; a :class:`TrainResult`: the EMA
        model (or the network without EMA) in eval mode, and the record.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> from sitransport.nn import MLPVelocity
            >>> def draw(n, g):
            ...     return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2
            >>> settings = TrainSettings(steps=4, batch_size=8, progress=False)
            >>> net = MLPVelocity(1, width=8, depth=1)
            >>> result = Trainer(net, Linear(), draw, settings=settings).run()
            >>> result.history.sizes["step"], result.model.training
            (4, False)"""
        settings, device = self.settings, self.device
        record = self.record
        self._t_start = time.perf_counter() - (record.wall_time[-1] if record.wall_time else 0.0)
        self.bar = tqdm(
            range(self.start, settings.steps),
            initial=self.start,
            total=settings.steps,
            disable=not settings.progress or self.rank != 0,
            desc="fit",
            dynamic_ncols=True,
        )
        self.net.train()
        self.guard = DivergenceGuard(settings.clip_grad, record.fm_loss)
        # one batch ahead: its pairing (e.g. exact OT in a worker process) overlaps this
        # step; checkpoints store the generator (and data position) as before that draw
        self._gen_state = self.gen.get_state()
        self._draw_state = self._draw_position()
        self._pending = (
            self._batch(settings.batch_size, self.gen) if self.start < settings.steps else None
        )
        rng_devices = [device] if device.type == "cuda" else []
        self._dropout_rng = self._step_rng()
        with torch.random.fork_rng(devices=rng_devices):  # dropout reseeded per step
            for step in self.bar:
                self._step(step)
        self.bar.close()
        result = self._result()
        self.hooks.end(result)
        return result

    def _draw_position(self) -> dict[str, Any] | None:
        """The position of a stateful draw (a dataset) to checkpoint; ``None`` for others."""
        return cast(StatefulDraw, self.draw).state_dict() if self.stateful_draw else None

    def _step_rng(self) -> torch.Generator:
        """The global generator dropout draws from on the network's device; only it is
        reseeded (``torch.manual_seed`` would also queue a lazy CUDA seeding with a captured
        stack trace on every step, which costs more than a small network's whole step)."""
        device = self.device
        if device.type == "cuda":
            return torch.cuda.default_generators[device.index or 0]
        return torch.default_generator

    def _step(self, step: int) -> None:
        """Optimisation step ``step`` (0-based): the pending batch, the next one drawn ahead,
        gradients over the micro-batches, the divergence guard (before the weights move),
        AdamW, the schedule, EMA, the path's ascent, then record, evaluate and checkpoint."""
        settings = self.settings
        self._dropout_rng.manual_seed(step_seed(self.seed, self.rank, step))
        assert self._pending is not None  # drawn ahead while steps remain
        current = self._pending()
        self._gen_state = self.gen.get_state()
        self._draw_state = self._draw_position()
        if step + 1 < settings.steps:
            self._pending = self._batch(settings.batch_size, self.gen)
        self.done = done = step + 1
        path_opt = self.path_opt
        simultaneous = (
            path_opt is not None and path_opt.settings.mode == "simultaneous" and path_opt.due(done)
        )
        self.opt.zero_grad(set_to_none=True)
        (loss, fm, kinetic), ascent = self._backward(current, simultaneous)
        max_norm = settings.clip_grad if settings.clip_grad is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        lr = float(self.sched.get_last_lr()[0])  # a float (torch types it float | Tensor)
        self.guard.check(step, loss, fm, grad_norm, lr)  # before the weights move
        self.opt.step()
        self.sched.step()
        if self._update_ema is not None:
            self._update_ema()
        if path_opt is not None:
            self._path_step(path_opt, step, ascent)
        self._log(loss, fm, kinetic, lr, grad_norm)
        if self.hooks:
            self.hooks.step(self.record)
        self._evaluations(done)
        if step % 50 == 0 or done == settings.steps:
            mean = float(np.mean(self.record.loss[-50:]))
            self.bar.set_postfix(loss=f"{mean:.4f}", **self.meter.postfix())
        path = self.checkpoint_path
        if path is not None and self.rank == 0 and done % settings.checkpoint_every == 0:
            self.checkpoint(path)

    def _evaluations(self, done: int) -> None:
        """The validation and the Sinkhorn diagnostic when due after ``done`` steps, then
        the callbacks' ``on_eval`` if either ran."""
        steps = self.settings.steps
        validate = done % self.settings.eval_every == 0 or done == steps
        if validate:
            self.evaluate(done)
        measure = self.monitor.due(done, steps)
        if measure:
            self.monitor.record(self.model, done, self.record)
        if self.hooks and (validate or measure):
            held, samples = self.validation, None
            if held is not None and held[0].ndim == 2:
                options = self.monitor.options
                codes = self.validation_codes
                samples = held_out_samples(self.model, held, codes, self.interpolant, options)
            self.hooks.evaluate(done, self.record, samples)

    def _path_step(
        self, path_opt: PathOptimizer, step: int, ascent: tuple[Tensor, ...] | None
    ) -> None:
        """The interpolant's ascent after velocity step ``step``, when due (its step size: see
        :meth:`~sitransport.paths.PathOptimizer.lr_factor`)."""
        done = step + 1
        for p in self.interpolant.parameters():
            p.grad = None  # the descent step must not move the path
        if not path_opt.due(done):
            return
        for group in path_opt.optimizer.param_groups:
            factor = path_opt.lr_factor(done, self.lr_factor(step))
            group["lr"] = path_opt.settings.lr * factor
        if ascent is not None:
            path_opt.ascend(ascent)
        else:
            path_opt.step(self.net, *self._batch(self.settings.batch_size, self.path_gen)())

    def _log(self, loss: float, fm: float, kinetic: float, lr: float, grad_norm: float) -> None:
        """Append the step just taken to the record."""
        record = self.record
        record.step.append(self.done)
        record.loss.append(loss)
        record.fm_loss.append(fm)
        record.kinetic.append(kinetic)
        record.lr.append(lr)
        record.grad_norm.append(grad_norm)
        record.wall_time.append(time.perf_counter() - self._t_start)

    def evaluate(self, step: int) -> None:
        """Record the learned path's coefficients and the validation losses at ``step``;
        with ``restore_best``, keep the weights of the lowest validation loss.

        Args:
            step: the number of steps done, recorded as ``eval_step``.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> from sitransport.nn import MLPVelocity
            >>> def draw(n, g):
            ...     return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2
            >>> settings = TrainSettings(steps=4, batch_size=8, progress=False)
            >>> held = draw(64, torch.Generator().manual_seed(1))
            >>> net = MLPVelocity(1, width=8, depth=1)
            >>> trainer = Trainer(net, Linear(), draw, settings=settings, validation=held)
            >>> trainer.evaluate(0)
            >>> trainer.record.eval_step, len(trainer.record.val_loss)
            ([0], 1)

        """
        record, model = self.record, self.model
        record.eval_step.append(step)
        interpolant = self.interpolant
        learned = interpolant.base if isinstance(interpolant, Normalized) else interpolant
        if self.path_opt is not None and isinstance(learned, Fourier):  # coefficients in time
            record.path_a.append(learned.a.detach().cpu().tolist())
            record.path_b.append(learned.b.detach().cpu().tolist())
        if self.validation is None:
            return
        model.eval()
        codes = () if self.validation_codes is None else (self.validation_codes,)
        with torch.no_grad():
            out = quadratic_loss(lambda x, t: model(x, t, *codes), interpolant, *self.validation)
        model.train()
        record.val_loss.append(float(out.quadratic))
        record.val_fm_loss.append(float(out.flow_matching))
        if self.settings.restore_best and float(out.quadratic) < self.best["loss"]:
            self.best["loss"] = float(out.quadratic)
            self.best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def checkpoint(self, path: Path) -> None:
        """Write the run's state after :attr:`done` steps to ``path`` (atomically, with a
        checksum; the previous file kept as ``<name>.prev``), then call
        :meth:`on_checkpoint` and the callbacks' ``on_checkpoint``.

        Args:
            path: the checkpoint file.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> from sitransport.nn import MLPVelocity
            >>> def draw(n, g):
            ...     return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2
            >>> settings = TrainSettings(steps=4, batch_size=8, progress=False)
            >>> import pathlib, tempfile
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
            >>> net = MLPVelocity(1, width=8, depth=1)
            >>> trainer = Trainer(net, Linear(), draw, settings=settings)
            >>> _ = trainer.run()
            >>> trainer.checkpoint(path)
            >>> trainer.done, path.is_file()
            (4, True)

        """
        ema, path_opt, best = self.ema, self.path_opt, self.best
        state = {
            "net": self.net.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "path": path_opt.state_dict() if path_opt is not None else None,
            "best": best if best["state"] is not None else None,
            "generator": self._gen_state,
            "path_generator": self.path_gen.get_state(),
            "draw": self._draw_state,
            "record": {k: list(v) for k, v in vars(self.record).items()},
            "step": self.done,
            "fingerprint": self.fingerprint,
        }
        save_checkpoint(state, path)
        self.on_checkpoint(self.done, path)
        self.hooks.checkpoint(self.done, path)

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Hook called on rank 0 after the checkpoint of step ``step`` (1-based count of steps
        done) is written to ``path``; does nothing. Override it to act on checkpoints (copy
        them elsewhere, stop the run by raising).

        Args:
            step: the number of steps done when the checkpoint was written.
            path: the checkpoint file just written.

        Example:
            >>> import torch
            >>> from sitransport.interpolants import Linear
            >>> from sitransport.nn import MLPVelocity
            >>> def draw(n, g):
            ...     return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2
            >>> settings = TrainSettings(steps=4, batch_size=8, progress=False)
            >>> class Logged(Trainer):
            ...     def on_checkpoint(self, step, path):
            ...         print("checkpoint", step, path.name)
            >>> import pathlib, tempfile
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
            >>> settings = TrainSettings(steps=4, batch_size=8, checkpoint_every=2, progress=False)
            >>> net = MLPVelocity(1, width=8, depth=1)
            >>> _ = Logged(net, Linear(), draw, settings=settings, checkpoint=path).run()
            checkpoint 2 checkpoint.pt
            checkpoint 4 checkpoint.pt

        """

    def _result(self) -> TrainResult:
        """The :class:`TrainResult` at the end of the run (the best weights with
        ``restore_best``)."""
        model, best, settings = self.model, self.best, self.settings
        if settings.restore_best and best["state"] is not None:
            model.load_state_dict(best["state"])  # the weights with the lowest validation loss
        model.eval()
        attrs = {"seed": self.seed, "lr_schedule_steps": self.lr_factor.total}
        attrs.update(self.meter.attrs())
        attrs.update(self.monitor.attrs(self.record, time.perf_counter() - self._t_start))
        if settings.restore_best and best["state"] is not None:
            attrs["best_val_loss"] = best["loss"]
        return TrainResult(model, self.record.to_dataset(attrs))
