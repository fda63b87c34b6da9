r"""Simulation-free training: minimise the quadratic loss over the velocity network.

:func:`train` runs a :class:`Trainer`: AdamW with warm-up and cosine decay, optional EMA of
the weights, gradient clipping, a divergence guard, gradient accumulation and data-parallel
ranks, validation losses, a tqdm progress bar, resumable checkpoints and a training record as
an ``xarray.Dataset``, with the optional ascent on a learnable interpolant (max–min). Its
settings are a :class:`TrainSettings`. :func:`sitransport.fit` is the entry point that builds
the network and the data and calls :func:`train`. No ODE is solved during training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from sitransport._io import load_checkpoint, plain, previous_checkpoint, save_checkpoint
from sitransport._spec import FieldsSpec
from sitransport._validation import (
    check_bool,
    check_choice,
    check_device,
    check_fraction,
    check_positive,
    check_positive_int,
    check_seed,
)
from sitransport.couplings import Coupling, GlobalOT, Independent, PlanSampler
from sitransport.distributed import rank_and_world
from sitransport.errors import CheckpointMismatchError, TrainingDivergedError
from sitransport.interpolants import Fourier, Interpolant, Normalized
from sitransport.losses import TimeSampler, denoiser_loss, get_time_sampler, quadratic_loss
from sitransport.paths import PathOptimizer, PathSettings

if TYPE_CHECKING:
    from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DivergenceGuard",
    "LRSchedule",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "ema_decay",
    "train",
]

DrawPairs = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]


class _StatefulDraw(Protocol):
    """A draw with a position to checkpoint (a dataset's: see ``fit``), besides ``__call__``."""

    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` (and :meth:`Trainer.run`) return: the trained ``model`` (the EMA
    model, or the network without EMA, in eval mode) and ``history``, the record of the run.

    Attributes:
        model: the trained network (the EMA model, or the network without EMA), in eval mode.
        history: the record of the run, an ``xarray.Dataset``: per-step losses, learning
            rate, gradient norms and wall time, and the validation losses.

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


@dataclass(frozen=True)
class TrainSettings(FieldsSpec):
    """Optimisation settings of :func:`train` and of :func:`~sitransport.fit`'s
    ``training=``.

    Args:
        steps: optimisation steps (default 20,000).
        batch_size: pairs per step, the global batch under ``torch.distributed``
            (default 512).
        lr: peak AdamW learning rate (default ``2e-3``).
        weight_decay: AdamW weight decay (default 0).
        warmup: steps of linear warm-up from 0 to ``lr`` (default 200); then cosine decay.
        min_lr_ratio: where the cosine decay ends, as a fraction of ``lr`` (default 0.01).
        ema: decay of the exponential moving average of the weights that the returned
            model holds (default 0.999, ramped up as :func:`ema_decay`); ``None``: the
            trained weights themselves.
        clip_grad: largest gradient norm, larger ones are scaled down to it (default 1.0);
            ``None``: no clipping.
        antithetic: variance reduction (default on): times in pairs ``u, 1 - u``, or, for
            stochastic interpolants, each noise ``z`` with ``-z``.
        eval_every: steps between validation losses (default 500).
        checkpoint_every: steps between checkpoints when checkpointing (default 1000).
        progress: show a tqdm progress bar (default on).
        restore_best: end with the weights of the lowest validation loss (default off;
            needs held-out data).
        accumulate: micro-batches per step, gradients accumulated (default 1): the same
            step in less memory.
        mixed_precision: ``"bf16"``: the network runs under bfloat16 autocast, the loss,
            optimiser and EMA stay in float32 (default ``None``: off).

    Example:
        >>> from sitransport import TrainSettings
        >>> settings = TrainSettings(steps=2000, batch_size=256, ema=None, progress=False)
        >>> settings.steps, settings.lr, settings.ema
        (2000, 0.002, None)
    """

    steps: int = 20_000
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup: int = 200
    min_lr_ratio: float = 0.01
    ema: float | None = 0.999
    clip_grad: float | None = 1.0
    antithetic: bool = True
    eval_every: int = 500
    checkpoint_every: int = 1000
    progress: bool = True
    restore_best: bool = False
    accumulate: int = 1
    mixed_precision: str | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size", minimum=2)
        check_positive(self.lr, "lr")
        check_positive(self.weight_decay, "weight_decay", allow_zero=True)
        check_positive_int(self.warmup, "warmup", minimum=0)
        check_fraction(self.min_lr_ratio, "min_lr_ratio", high=1.0 + 1e-12)
        if self.ema is not None:
            check_fraction(self.ema, "ema")
        if self.clip_grad is not None:
            check_positive(self.clip_grad, "clip_grad")
        check_positive_int(self.eval_every, "eval_every")
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        check_positive_int(self.accumulate, "accumulate")
        if self.mixed_precision is not None:
            check_choice(self.mixed_precision, "mixed_precision", ("bf16",))
        for name in ("antithetic", "progress", "restore_best"):
            check_bool(getattr(self, name), name)


@dataclass
class _Record:
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
        ds = xr.Dataset(
            data,
            coords={"step": np.array(self.step), "eval_step": np.array(self.eval_step)},
            attrs=attrs,
        )
        ds["loss"].attrs["description"] = "quadratic loss G of the paper (batch estimate)"
        ds["fm_loss"].attrs["description"] = "flow-matching loss E|v - dI/dt|^2 (batch)"
        ds["kinetic"].attrs["description"] = "E|v(x_t)|^2 on the batch: kinetic energy estimate"
        ds["wall_time"].attrs["units"] = "s"
        return ds


class LRSchedule:
    """Learning-rate factor at a step: linear warm-up over ``warmup`` steps, then cosine decay
    to ``min_lr_ratio`` at step ``total``, and that floor after it.

    ``total`` is the run's planned length (``steps``). A resumed run keeps the total of the
    run that wrote the checkpoint, so a longer ``steps`` continues at the floor after it.
    Benchmarks train peers on the same schedule (``LambdaLR(optimizer, LRSchedule(s))``).

    Args:
        settings: the run's settings: ``warmup``, ``steps`` (the total) and ``min_lr_ratio``.

    Example:
        >>> from sitransport.train import LRSchedule, TrainSettings
        >>> factor = LRSchedule(TrainSettings(steps=110, warmup=10, min_lr_ratio=0.01))
        >>> [round(factor(k), 3) for k in (0, 9, 10, 60, 110, 500)]
        [0.1, 1.0, 1.0, 0.505, 0.01, 0.01]
    """

    def __init__(self, settings: TrainSettings) -> None:
        self.warm, self.total, self.floor = settings.warmup, settings.steps, settings.min_lr_ratio

    def __call__(self, step: int) -> float:
        warm, floor = self.warm, self.floor
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.total - warm)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def run_generator(seed: int, stream: int = 0) -> torch.Generator:
    """The ``torch.Generator`` of one random stream of a run: ``seed + stream`` (splits,
    batches, validation times, path batches and reflow pairs each have their own stream)."""
    return torch.Generator().manual_seed(seed + stream)


def ema_decay(decay: float, k: int) -> float:
    """EMA decay ``min(decay, (1 + k) / (10 + k))`` after ``k`` updates, so early weights are
    forgotten quickly and short runs are not dragged back to initialisation.

    Args:
        decay: the configured EMA decay, in ``[0, 1)``.
        k: number of EMA updates done so far, ``>= 0``.

    Example:
        >>> [round(ema_decay(0.999, k), 4) for k in (0, 10, 10_000)]
        [0.1, 0.55, 0.999]
    """
    return min(decay, (1.0 + k) / (10.0 + k))


def _ema_updater(ema: AveragedModel, net: nn.Module, decay: float) -> Callable[[], None]:
    """``ema.update_parameters(net)`` on tensor lists gathered once (the stock method walks
    both module trees on every call, about a tenth of a small network's step), with the
    update count kept on the host so no step waits for the device."""
    averaged = list(itertools.chain(ema.module.parameters(), ema.module.buffers()))
    current = list(itertools.chain(net.parameters(), net.buffers()))
    pairs = list(zip(averaged, current, strict=True))
    avg = [a.detach() for a, _ in pairs if a.is_floating_point()]
    cur = [c.detach() for a, c in pairs if a.is_floating_point()]
    others = [(a, c) for a, c in pairs if not a.is_floating_point()]
    count = int(ema.n_averaged)

    @torch.no_grad()
    def update() -> None:
        nonlocal count
        if count == 0:
            torch._foreach_copy_(avg, cur)
        else:
            torch._foreach_lerp_(avg, cur, 1.0 - ema_decay(decay, count))
        for a, c in others:
            a.copy_(c)
        ema.n_averaged += 1
        count += 1

    return update


class _Objective(nn.Module):
    """The training loss as a module, so ``DistributedDataParallel`` can wrap it whole
    (the denoiser of a stochastic interpolant is trained in the same forward pass). The
    interpolant is held outside the module tree: its parameters are not the network's."""

    def __init__(self, net: nn.Module, interpolant: Interpolant, denoiser: bool) -> None:
        super().__init__()
        self.net = net
        self._interpolant = (interpolant,)
        self._denoiser = denoiser

    def forward(self, *batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(loss, G, flow-matching loss, kinetic)`` of a batch ``(x0, x1, t[, z])``."""
        interpolant = self._interpolant[0]
        dtype = batch[0].dtype

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return self.net(x, t).to(dtype)  # under autocast: the loss in full precision

        out = quadratic_loss(velocity, interpolant, *batch)
        loss = out.quadratic
        if self._denoiser:

            def denoiser(x: Tensor, t: Tensor) -> Tensor:
                return cast(nn.Module, self.net.denoiser)(x, t).to(dtype)

            loss = loss + denoiser_loss(denoiser, interpolant, *batch)
        return loss, out.quadratic, out.flow_matching, out.kinetic


def _any_checkpoint(path: Path) -> bool:
    """A checkpoint to resume from: ``path`` or the previous one kept beside it (a crash
    between the two renames of :func:`~sitransport._io.save_checkpoint` leaves only that)."""
    return path.is_file() or previous_checkpoint(path).is_file()


def _step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of the global RNG (dropout) at ``step`` on ``rank``: a function of the step, so
    a resumed run draws the same dropout masks, and ranks draw different ones."""
    return ((seed * 1_000_003 + rank) * 1_000_033 + step) % (2**63 - 1)


class DivergenceGuard:
    """Stops a run that diverged, with :class:`TrainingDivergedError` naming the step.

    Checked on every step, before the optimiser moves the weights: a non-finite loss, a
    non-finite gradient norm (before clipping), or a flow-matching loss grown by orders of
    magnitude. Growth is measured on the running median of the last :attr:`window` batch
    losses, so one noisy batch cannot trigger it. The reference is the lowest running median
    seen so far, from the first step on (the untrained network's batch loss, so a run that
    diverges from its first steps is caught too); once :attr:`window` steps are recorded, the
    run stops when the running median exceeds :attr:`growth` times that reference *and* 10
    times the first step's loss. A single batch loss above ``growth**2`` times the reference
    stops it at once, so short runs that blow up in their first steps are caught too. The
    flow-matching loss ``E|v - dI/dt|^2 >= 0`` is used because the quadratic loss ``G`` can
    be negative. The state is rebuilt from the record's ``fm_loss``, so a resumed run checks
    the same way.

    Args:
        clip_grad: the run's gradient-clipping norm (``None``: no clipping), quoted in the advice of
            the error.
        fm_losses: flow-matching batch losses of the steps already done (the record's ``fm_loss``;
            empty for a new run).

    Example:
        >>> from sitransport.train import DivergenceGuard
        >>> DivergenceGuard(clip_grad=None, fm_losses=[1.0, 0.9]).lowest  # median(1.0, 0.9)
        0.95
    """

    window = 5
    growth = 1e4

    def __init__(self, clip_grad: float | None, fm_losses: list[float]) -> None:
        self.clip_grad = clip_grad
        self.recent: list[float] = []
        self.first = math.nan
        self.lowest = math.inf
        for value in fm_losses:
            self._level(value)

    def _level(self, fm: float) -> float | None:
        """The running median after ``fm``; ``None`` until the window is full."""
        self.recent = [*self.recent[1 - self.window :], fm]
        level = statistics.median(self.recent)
        if math.isnan(self.first):
            self.first = level
        self.lowest = min(self.lowest, level)
        return level if len(self.recent) == self.window else None

    def _advice(self, lr: float) -> str:
        clip = (
            f"lower clip_grad (now {self.clip_grad:.3g})"
            if self.clip_grad is not None
            else "turn on clip_grad (e.g. clip_grad=1.0)"
        )
        return f"lower lr (now {lr:.3g}), {clip}, or check the data scale"

    def check(self, step: int, loss: float, fm: float, grad_norm: float, lr: float) -> None:
        """Raise :class:`TrainingDivergedError` if step ``step`` (0-based) diverged.

        Args:
            step: the step, 0-based, named in the error.
            loss: the batch's quadratic loss G.
            fm: the batch's flow-matching loss ``E|v - dI/dt|^2``.
            grad_norm: the gradient norm before clipping.
            lr: the current learning rate, quoted in the advice of the error.

        Example:
            >>> guard = DivergenceGuard(clip_grad=1.0, fm_losses=[])
            >>> for step, fm in enumerate([2.0, 1.5, 1.2]):
            ...     guard.check(step, fm, fm, grad_norm=1.0, lr=1e-3)
            >>> guard.check(3, 1e9, 1e9, grad_norm=1.0, lr=1e-3)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            sitransport.errors.TrainingDivergedError: training diverged at step 3: ...
        """
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the loss became {loss} at step {step}; {self._advice(lr)}"
            )
        if not math.isfinite(grad_norm):
            raise TrainingDivergedError(
                f"the gradient norm became {grad_norm} at step {step} (loss {loss:.3g}); "
                f"{self._advice(lr)}"
            )
        level = self._level(fm)
        if fm > self.growth**2 * self.lowest:  # no noise explains 1e8 times in one step
            raise TrainingDivergedError(
                f"training diverged at step {step}: the flow-matching loss {fm:.3g} is "
                f"{fm / self.lowest:.3g} times its lowest {self.lowest:.3g}; {self._advice(lr)}"
            )
        if level is not None and level > self.growth * self.lowest and level > 10 * self.first:
            raise TrainingDivergedError(
                f"training diverged at step {step}: the flow-matching loss (median of the "
                f"last {self.window} steps) grew to {level:.3g}, {level / self.lowest:.3g} "
                f"times its lowest {self.lowest:.3g}; {self._advice(lr)}"
            )


# fingerprint fields that may change when a run is resumed: they do not change the trained
# model (steps: a longer run continues on the checkpoint's lr schedule; a shorter one must not
# be shorter than the steps already done). Where a run executes (device, workers) and how
# checkpoints are written are not in the fingerprint at all.
RESUMABLE = frozenset({"checkpoint_every", "lr_schedule_steps", "progress", "steps"})


def _spec(obj: Any) -> Any:
    """``obj.spec()``, or its class where it has none (a default repr holds an address)."""
    try:
        return obj.spec()
    except (AttributeError, NotImplementedError, TypeError):
        return {"class": type(obj).__qualname__}


def _path_fingerprint(interpolant: Interpolant) -> Any:
    """The interpolant as the caller named it (without normalisation, learned weights or
    callables, which do not compare across processes)."""
    path = interpolant.base if isinstance(interpolant, Normalized) else interpolant
    try:
        spec = path.spec()
    except TypeError:  # user callables: the class is all that compares
        return {"class": type(path).__qualname__}
    return {k: v for k, v in spec.items() if k != "state"}


def _network_fingerprint(net: nn.Module) -> dict[str, Any]:
    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in net.state_dict().items())
    return {
        "class": type(net).__qualname__,
        "config": getattr(net, "config", None),
        "shapes": hashlib.sha256(shapes.encode()).hexdigest(),
    }


def _fingerprint(
    net: nn.Module,
    interpolant: Interpolant,
    settings: TrainSettings,
    extra: dict[str, Any] | None,
    time_sampler: TimeSampler,
    coupling: Coupling,
    **parts: Any,
) -> dict[str, Any]:
    """What identifies a run, as plain data: the settings (named as ``fit``'s arguments),
    ``parts`` (seed, dtype, time sampler, coupling, path settings), the interpolant, the
    network's architecture and ``extra`` (``fit``'s arguments and data)."""
    fields = {k: v for k, v in dataclasses.asdict(settings).items()}
    fields.update(parts)
    fields.update(time_sampler=_spec(time_sampler), coupling=_spec(coupling))
    fields["interpolant"] = _path_fingerprint(interpolant)
    fields["network_architecture"] = _network_fingerprint(net)
    fields.update(extra or {})
    fields["lr_schedule_steps"] = settings.steps
    return plain(fields)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


_ABSENT = object()


def _show(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_resume(
    state: dict[str, Any], fingerprint: dict[str, Any], path: Path, steps: int
) -> int:
    """Check that checkpoint ``state`` belongs to this run; return the lr schedule's total.

    Raises:
        CheckpointMismatchError: a setting or the data differ (every differing field is
            listed), or ``steps`` is below the steps already done.
    """
    done = int(state["step"])
    old = state.get("fingerprint")
    if old is None:
        warnings.warn(
            f"checkpoint {path} has no fingerprint (written by an older sitransport): whether "
            "it belongs to this call's settings and data cannot be checked; resuming it as is",
            stacklevel=3,
        )
        total = steps
    else:
        before, now = _flatten(old), _flatten(fingerprint)
        differ = [
            f"  {key}: {_show(before.get(key, _ABSENT))} -> {_show(now.get(key, _ABSENT))}"
            for key in sorted(before.keys() | now.keys())
            if key.split(".")[0] not in RESUMABLE
            and before.get(key, _ABSENT) != now.get(key, _ABSENT)
        ]
        if differ:
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by another run: {len(differ)} field(s) differ "
                "(checkpoint -> this call):\n" + "\n".join(differ) + "\nResume with the "
                "checkpoint's settings and data (only steps, progress, how often it "
                "checkpoints and where it runs may change), or start a new run in another "
                "checkpoint directory or without resuming"
            )
        total = int(old["lr_schedule_steps"])
    if steps < done:
        raise CheckpointMismatchError(
            f"steps={steps} is fewer than the {done} steps already done in checkpoint {path}; "
            f"pass steps >= {done} to resume (or start a new run)"
        )
    return total


class Trainer:
    """One training run of :func:`train`: the optimiser, schedule, EMA, validation,
    checkpoints and record of a velocity network, as short named steps.

    The constructor checks the settings, moves the network, builds the optimiser and restores
    a checkpoint when resuming; :meth:`run` trains and returns a :class:`TrainResult`. Each part
    of the loop is a short method: one optimisation step (``_step``: the batch drawn one step
    ahead, its micro-batches, the backward passes, the divergence guard, AdamW, the schedule,
    EMA and the path's ascent, the record), :meth:`evaluate`, :meth:`checkpoint` and
    :meth:`restore`.

    :meth:`on_checkpoint` is a hook called on rank 0 right after each checkpoint file is
    written (a no-op): override it in a subclass to act on checkpoints (copy them elsewhere),
    or patch it in tests to interrupt a run right after a checkpoint, as a crash would.

    The arguments are those of :func:`train`.

    Args:
        net: velocity network ``v(z, t)``; trained in place and moved to ``device``.
        interpolant: the path (trained in place too when ``path`` is given).
        draw: ``draw(n, generator)`` returning a global batch ``(x0, x1)`` of normalised samples.
        settings: optimisation settings; ``None``: ``TrainSettings()``. Default ``None``.
        time_sampler: distribution of training times; ``None``: uniform. Default ``None``.
        coupling: how each batch is paired; ``None``: as drawn (independent). Default ``None``.
        path: settings of the ascent on the interpolant's parameters; ``None``: a fixed path.
            Default ``None``.
        seed: seeds every random draw of the run, an integer in ``[0, 2**63 - 1]``. Default ``0``.
        validation: ``(x0, x1)`` held-out pairs evaluated every ``eval_every`` steps; ``None``: no
            validation. Default ``None``.
        checkpoint: file written every ``checkpoint_every`` steps; ``None``: no checkpoints. Default
            ``None``.
        resume: continue from ``checkpoint`` if it exists (see :func:`train`). Default ``False``.
        device: ``"cpu"``, an available ``"cuda[:index]"`` or ``"mps"``. Default ``"cpu"``.
        dtype: dtype of the network and the batches. Default ``torch.float32``.
        fingerprint: plain data that also identifies the run, stored in checkpoints and compared on
            resume. Default ``None``.

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
        draw: DrawPairs,
        *,
        settings: TrainSettings | None = None,
        time_sampler: TimeSampler | None = None,
        coupling: Coupling | None = None,
        path: PathSettings | None = None,
        seed: int = 0,
        validation: tuple[Tensor, Tensor] | None = None,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        fingerprint: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings = settings or TrainSettings()
        self.seed = seed = check_seed(seed)
        self.device = device = check_device(device)
        self.dtype = dtype
        self.time_sampler = time_sampler or get_time_sampler("uniform")
        self.fingerprint = _fingerprint(
            net,
            interpolant,
            settings,
            fingerprint,
            seed=seed,
            dtype=str(dtype),
            time_sampler=self.time_sampler,
            coupling=coupling or Independent(),
            path=path.spec() if path is not None else None,
        )
        self.draw, self.coupling = _plan_draw(draw, coupling or Independent(), seed)
        self.meter = _OTMeter(self.draw, self.coupling)
        self.rank, self.world = rank_and_world()
        self.stochastic = interpolant.stochastic
        self._check_batches(path)
        self.net = net.to(device=device, dtype=dtype)
        self.interpolant = interpolant.to(device=device)
        self.path_opt = PathOptimizer(self.interpolant, path) if path is not None else None
        self._build_optimizer()
        self.gen = run_generator(seed)
        self.path_gen = run_generator(seed, 3)
        self.record = _Record()
        self.start = self.done = 0
        self.best: dict[str, Any] = {"loss": math.inf, "state": None}
        self.checkpoint_path = Path(checkpoint) if checkpoint is not None else None
        self.stateful_draw = hasattr(self.draw, "state_dict") and hasattr(
            self.draw, "load_state_dict"
        )
        if resume and self.checkpoint_path is None:
            raise ValueError("resume=True needs a checkpoint path")
        if resume and self.checkpoint_path is not None and _any_checkpoint(self.checkpoint_path):
            self.restore(self.checkpoint_path)
        self.model = self.ema.module if self.ema is not None else self.net
        self._update_ema = (
            _ema_updater(self.ema, self.net, settings.ema)
            if self.ema is not None and settings.ema is not None  # the one implies the other
            else None
        )
        self.objective = self._objective()
        self.autocast = torch.autocast(
            device_type=device.type,
            dtype=torch.bfloat16,
            enabled=settings.mixed_precision == "bf16",
        )
        self.validation = self._validation_batch(validation)
        self._gen_state = self.gen.get_state()  # as before the batch drawn one step ahead
        self._draw_state = self._draw_position()

    def _check_batches(self, path: PathSettings | None) -> None:
        """The global batch must split into ``world size x accumulate`` equal micro-batches;
        path optimisation runs on one process without accumulation."""
        settings, world, k = self.settings, self.world, self.settings.accumulate
        n_batch = settings.batch_size
        if self.stochastic and settings.antithetic:
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

    def _build_optimizer(self) -> None:
        """The EMA copy, AdamW and its learning-rate schedule."""
        settings, device = self.settings, self.device
        self.ema = (
            AveragedModel(self.net, use_buffers=True)  # the averaged copy; see _ema_updater
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
        objective: nn.Module = _Objective(self.net, self.interpolant, denoiser is not None)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            device = self.device
            objective = DistributedDataParallel(
                objective, device_ids=[device.index] if device.type == "cuda" else None
            )
        return objective

    def _validation_batch(self, validation: tuple[Tensor, Tensor] | None) -> tuple | None:
        """Held-out pairs with fixed times (and noise) drawn once from the run's stream 1."""
        if validation is None:
            return None
        device, dtype = self.device, self.dtype
        vgen = run_generator(self.seed, 1)
        v0, v1 = (v.detach().to(device=device, dtype=dtype) for v in validation)
        vt = self.time_sampler.sample(v0.shape[0], generator=vgen, device=device, dtype=dtype)
        if not self.stochastic:
            return v0, v1, vt
        vz = torch.randn(v0.shape, generator=vgen, dtype=torch.float64).to(v0)
        return v0, v1, vt, vz

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` (verified; its ``.prev`` if the file is
        missing or damaged) after checking it belongs to this run (:func:`_check_resume`).

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
        total = _check_resume(state, self.fingerprint, path, self.settings.steps)
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
            cast(_StatefulDraw, self.draw).load_state_dict(state["draw"])
        self.record = _Record(**{k: list(v) for k, v in state["record"].items()})
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
        return self._result()

    def _draw_position(self) -> dict[str, Any] | None:
        """The position of a stateful draw (a dataset) to checkpoint; ``None`` for others."""
        return cast(_StatefulDraw, self.draw).state_dict() if self.stateful_draw else None

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
        self._dropout_rng.manual_seed(_step_seed(self.seed, self.rank, step))
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
        if done % settings.eval_every == 0 or done == settings.steps:
            self.evaluate(done)
        if step % 50 == 0 or done == settings.steps:
            mean = float(np.mean(self.record.loss[-50:]))
            self.bar.set_postfix(loss=f"{mean:.4f}", **self.meter.postfix())
        path = self.checkpoint_path
        if path is not None and self.rank == 0 and done % settings.checkpoint_every == 0:
            self.checkpoint(path)

    def _batch(self, n: int, g: torch.Generator) -> Callable[[], tuple]:
        """Draw a batch and start its pairing; the returned function completes it.

        Stochastic interpolants get noise ``z``; with ``antithetic`` the batch is
        ``(x0, x1, t, z)`` followed by ``(x0, x1, t, -z)`` (the ``gamma' z . v`` term of the
        loss then cancels to first order), otherwise times come in pairs ``u, 1 - u``.
        """
        device, dtype, antithetic = self.device, self.dtype, self.settings.antithetic
        x0, x1 = (x.detach().to(device=device, dtype=dtype) for x in self.draw(n, g))
        if not self.stochastic:
            t = self.time_sampler.sample(
                n, generator=g, antithetic=antithetic, device=device, dtype=dtype
            )
            paired = self.coupling.submit(x0, x1, g)
            return lambda: (*paired(), t)
        half = n // 2 if antithetic else n
        t = self.time_sampler.sample(half, generator=g, device=device, dtype=dtype)
        z = torch.randn((half, *x0.shape[1:]), generator=g, dtype=torch.float64).to(x0)
        paired = self.coupling.submit(x0[:half], x1[:half], g)

        def complete() -> tuple:
            a, b = paired()
            if not antithetic:
                return a, b, t, z
            return torch.cat([a, a]), torch.cat([b, b]), torch.cat([t, t]), torch.cat([z, -z])

        return complete

    def _micro_batches(self, current: tuple) -> list[tuple]:
        """This rank's slice of the global batch, cut into ``accumulate`` micro-batches."""
        rank, world = self.rank, self.world
        m = current[0].shape[0] // world
        mine = tuple(c[rank * m : (rank + 1) * m] for c in current)
        chunks = (torch.chunk(c, self.settings.accumulate) for c in mine)
        return list(zip(*chunks, strict=True))

    def _backward(
        self, current: tuple, simultaneous: bool
    ) -> tuple[tuple[float, float, float], tuple[Tensor, ...] | None]:
        """Accumulate the gradients of a global batch over this rank's micro-batches (only
        the last one synchronises ranks); ``((loss, fm_loss, kinetic), ascent)``, averaged over
        micro-batches and ranks, with the path's ascent direction when ``simultaneous``."""
        k, world = self.settings.accumulate, self.world
        stats = torch.zeros(3, dtype=torch.float64, device=self.device)
        ascent = None
        path_opt = self.path_opt if simultaneous else None
        for j, part in enumerate(self._micro_batches(current)):
            sync = world == 1 or j == k - 1
            # not synchronising: several ranks, so the objective is a DistributedDataParallel
            ddp = cast("DistributedDataParallel", self.objective)
            with contextlib.nullcontext() if sync else ddp.no_sync():
                with self.autocast:
                    loss, quadratic, fm, kinetic = self.objective(*part)
                if path_opt is not None:  # max–min: the path's ascent from this evaluation
                    params = path_opt.params
                    ascent = torch.autograd.grad(quadratic, params, retain_graph=True)
                (loss / k if k > 1 else loss).backward()
            stats += torch.stack([loss.detach(), fm.detach(), kinetic.detach()]).double() / k
        if world > 1:
            torch.distributed.all_reduce(stats)
            stats /= world
        loss_value, fm_value, kinetic_value = (float(s) for s in stats)
        return (loss_value, fm_value, kinetic_value), ascent

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
        with torch.no_grad():
            out = quadratic_loss(model, interpolant, *self.validation)
        model.train()
        record.val_loss.append(float(out.quadratic))
        record.val_fm_loss.append(float(out.flow_matching))
        if self.settings.restore_best and float(out.quadratic) < self.best["loss"]:
            self.best["loss"] = float(out.quadratic)
            self.best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def checkpoint(self, path: Path) -> None:
        """Write the run's state after :attr:`done` steps to ``path`` (atomically, with a
        checksum; the previous file kept as ``<name>.prev``), then call
        :meth:`on_checkpoint`.

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
        if settings.restore_best and best["state"] is not None:
            attrs["best_val_loss"] = best["loss"]
        return TrainResult(model, self.record.to_dataset(attrs))


def train(
    net: nn.Module,
    interpolant: Interpolant,
    draw: DrawPairs,
    *,
    settings: TrainSettings | None = None,
    time_sampler: TimeSampler | None = None,
    coupling: Coupling | None = None,
    path: PathSettings | None = None,
    seed: int = 0,
    validation: tuple[Tensor, Tensor] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    fingerprint: dict[str, Any] | None = None,
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
            :class:`~sitransport.distributed.ShardedDataset`) is checkpointed too.
        settings: optimisation settings; ``None``: ``TrainSettings()``. Default ``None``.
        time_sampler: distribution of training times (uniform by default).
        coupling: how each batch is paired (:mod:`sitransport.couplings`; default as drawn).
            A :class:`~sitransport.couplings.GlobalOT` draws the batches from its plans
            instead: ``draw`` is wrapped in its sampler (its subsamples seeded by
            ``seed + 4``) unless it is a :class:`~sitransport.couplings.PlanSampler`.
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

    Returns:
        A :class:`TrainResult`: ``model``, the EMA model (or ``net`` without EMA), and
        ``history``, the record.

    Raises:
        ValueError: the global batch does not split into ``world size x accumulate`` equal
            parts; path optimisation with several ranks or micro-batches; ``seed`` outside
            ``[0, 2**63 - 1]``; an unsupported or unavailable ``device``.
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
    ).run()


def _plan_draw(draw: DrawPairs, coupling: Coupling, seed: int) -> tuple[DrawPairs, Coupling]:
    """Under :class:`GlobalOT`, batches are drawn from its plans (``draw`` wrapped in a
    :class:`PlanSampler` unless it is one) and used as drawn."""
    if not isinstance(coupling, GlobalOT):
        return draw, coupling
    if not isinstance(draw, PlanSampler):
        if hasattr(draw, "state_dict"):
            raise ValueError(
                "coupling=GlobalOT cannot wrap a stateful draw (a dataset); pass a "
                "PlanSampler built with GlobalOT.sampler, or use coupling='exact_ot'"
            )
        joint = draw
        draw = coupling.sampler(
            lambda m, g: joint(m, g)[0], lambda m, g: joint(m, g)[1], seed=seed + 4
        )
    return draw, Independent()


class _OTMeter:
    """The OT solve times of a run: plan solves of a :class:`PlanSampler`, or the per-batch
    solves of a minibatch coupling during this run; for the progress bar and the record."""

    def __init__(self, draw: DrawPairs, coupling: Coupling) -> None:
        self.plans = draw if isinstance(draw, PlanSampler) else None
        self.coupling = coupling
        self.start = coupling.solve_time

    def _batches(self) -> tuple[int, float]:
        now = self.coupling.solve_time
        return int(now["count"] - self.start["count"]), now["total"] - self.start["total"]

    def postfix(self) -> dict[str, str]:
        """``ot=0.61s/plan`` (the latest plan) or ``ot=3.1ms`` (mean per batch so far)."""
        if self.plans is not None:
            seconds = self.plans.solve_seconds
            return {"ot": f"{_duration(seconds[-1])}/plan"} if seconds else {}
        count, total = self._batches()
        return {"ot": _duration(total / count)} if count else {}

    def attrs(self) -> dict[str, Any]:
        if self.plans is not None:
            return {
                "ot_plan_solve_s": list(self.plans.solve_seconds),
                "ot_plan_n": self.plans.coupling.n,
            }
        count, total = self._batches()
        return {"ot_batch_solve_ms": 1e3 * total / count, "ot_batches": count} if count else {}


def _duration(seconds: float) -> str:
    return f"{seconds:.2f}s" if seconds >= 1.0 else f"{1e3 * seconds:.1f}ms"
