r"""Simulation-free training: minimise the quadratic loss over the velocity network.

:func:`fit` is the entry point: it resolves both ends (samples, ``"gaussian"`` or a torch
Distribution), holds out a validation fraction, normalises, builds the network and runs
:func:`train`, which is AdamW with warm-up and cosine decay, optional EMA of the weights,
gradient clipping, validation losses, a tqdm progress bar, resumable checkpoints and a
training record as an ``xarray.Dataset``. No ODE is solved during training.
"""

from __future__ import annotations

import contextlib
import copy
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
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from sitransport._bases import Density, EmpiricalDensity, as_density
from sitransport._io import load_checkpoint, plain, previous_checkpoint
from sitransport._io import save_checkpoint as _atomic_save  # checksum, keeps <name>.prev
from sitransport._validation import (
    check_bool,
    check_choice,
    check_device,
    check_fraction,
    check_pixels,
    check_positive,
    check_positive_int,
    check_seed,
)
from sitransport.couplings import Coupling, GlobalOT, Independent, PlanSampler, get_coupling
from sitransport.distributed import ShardedDataset
from sitransport.distributed import _first as _image
from sitransport.errors import CheckpointMismatchError, TrainingDivergedError
from sitransport.flow import Normalization, TransportFlow
from sitransport.images import DequantizedImages, ImageData
from sitransport.interpolants import (
    Fourier,
    Interpolant,
    Linear,
    Normalized,
    Stochastic,
    Trig,
    get_interpolant,
)
from sitransport.losses import TimeSampler, denoiser_loss, get_time_sampler, quadratic_loss
from sitransport.nn import (
    UNET_PRESETS,
    MLPVelocity,
    PotentialVelocity,
    UNetVelocity,
    VelocityDenoiser,
    unet_config,
)
from sitransport.ode import ODEOptions
from sitransport.paths import PathOptimizer, PathSettings

__all__ = [
    "TrainSettings",
    "effective_rank",
    "fit",
    "reflow",
    "train",
]

DrawPairs = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of :func:`train` (see :func:`fit` for their meaning).

    Example:
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
        data = {
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


class _Schedule:
    """Learning-rate factor at a step: linear warm-up over ``warmup`` steps, then cosine decay
    to ``min_lr_ratio`` at step ``total``, and that floor after it.

    ``total`` is the run's planned length (``steps``). A resumed run keeps the total of the
    run that wrote the checkpoint, so a longer ``steps`` continues at the floor after it.
    """

    def __init__(self, settings: TrainSettings) -> None:
        self.warm, self.total, self.floor = settings.warmup, settings.steps, settings.min_lr_ratio

    def __call__(self, step: int) -> float:
        warm, floor = self.warm, self.floor
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.total - warm)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _lr_lambda(settings: TrainSettings) -> _Schedule:
    return _Schedule(settings)


def _generator(seed: int, stream: int = 0) -> torch.Generator:
    """The ``torch.Generator`` of one random stream of a run: ``seed + stream`` (splits,
    batches, validation times, path batches and reflow pairs each have their own stream)."""
    return torch.Generator().manual_seed(seed + stream)


def _ema_decay(decay: float, k: int) -> float:
    """EMA decay ``min(decay, (1 + k) / (10 + k))`` after ``k`` updates, so early weights are
    forgotten quickly and short runs are not dragged back to initialisation."""
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
            torch._foreach_lerp_(avg, cur, 1.0 - _ema_decay(decay, count))
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
                return self.net.denoiser(x, t).to(dtype)

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


class _DivergenceGuard:
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
        """Raise :class:`TrainingDivergedError` if step ``step`` (0-based) diverged."""
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


# fit settings that may change when a run is resumed: they do not change the trained model
# (steps: a longer run continues on the checkpoint's lr schedule; a shorter one must not be
# shorter than the steps already done)
_RESUMABLE = frozenset(
    {
        "checkpoint_dir",
        "checkpoint_every",
        "device",
        "lr_schedule_steps",
        "num_workers",
        "ode",
        "progress",
        "resume",
        "steps",
    }
)


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


def _digest(x: Tensor) -> str:
    """SHA-256 of a tensor's values (as float64) and shape."""
    x = x.detach().cpu().to(torch.float64).contiguous()
    return hashlib.sha256(repr(tuple(x.shape)).encode() + x.numpy().tobytes()).hexdigest()


def _spread(n: int, m: int) -> Tensor:
    """At most ``m`` indices spread evenly over ``range(n)`` (a fixed subsample)."""
    return torch.linspace(0, n - 1, min(n, m)).round().long()


def _network_fingerprint(net: nn.Module) -> dict[str, Any]:
    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in net.state_dict().items())
    return {
        "class": type(net).__qualname__,
        "config": getattr(net, "config", None),
        "shapes": hashlib.sha256(shapes.encode()).hexdigest(),
    }


def _data_fingerprint(end: Density | ShardedDataset) -> dict[str, Any]:
    """An end of ``fit`` as plain data: its spec and the SHA-256 of a fixed subsample (evenly
    spread rows of a sample set; a fixed-seed draw of a distribution, which tells its
    parameters apart)."""
    if isinstance(end, ShardedDataset):
        n = len(end.dataset)
        x = torch.stack([_image(end.dataset[i]) for i in _spread(n, 64).tolist()])
        return {"kind": "dataset", "n": n, "shape": list(end.shape), "sha256": _digest(x)}
    if isinstance(end, EmpiricalDensity):
        x = end.samples[_spread(end.samples.shape[0], 256)]
    elif isinstance(end, DequantizedImages):
        x = end.pixels[_spread(len(end), 64)]
    else:
        x = end.sample(64, _generator(0))
    return {**end.spec(), "sha256": _digest(x)}


def _fit_fingerprint(
    config: dict[str, Any],
    interpolant: Interpolant,
    time_sampler: TimeSampler,
    coupling: Coupling,
    rho0: Density,
    rho1: Density | ShardedDataset,
) -> dict[str, Any]:
    """What a resumed ``fit`` must share with the run that wrote the checkpoint: its
    arguments (without those that may change) and both ends of the data."""
    run = {k: v for k, v in config.items() if k not in _RESUMABLE}
    run.update(interpolant=_path_fingerprint(interpolant), time_sampler=_spec(time_sampler))
    run.update(coupling=_spec(coupling), rho0=_data_fingerprint(rho0))
    run["rho1"] = _data_fingerprint(rho1)
    return run


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
            if key.split(".")[0] not in _RESUMABLE
            and before.get(key, _ABSENT) != now.get(key, _ABSENT)
        ]
        if differ:
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by another run: {len(differ)} field(s) differ "
                "(checkpoint -> this call):\n" + "\n".join(differ) + "\nResume with the "
                "checkpoint's settings and data (only steps, progress and checkpoint_every may "
                "change), or start a new run in another checkpoint_dir or with resume=False"
            )
        total = int(old["lr_schedule_steps"])
    if steps < done:
        raise CheckpointMismatchError(
            f"steps={steps} is fewer than the {done} steps already done in checkpoint {path}; "
            f"pass steps >= {done} to resume (or start a new run)"
        )
    return total


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
) -> tuple[nn.Module, xr.Dataset]:
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
        settings: optimisation settings.
        time_sampler: distribution of training times (uniform by default).
        coupling: how each batch is paired (:mod:`sitransport.couplings`; default as drawn).
            A :class:`~sitransport.couplings.GlobalOT` draws the batches from its plans
            instead: ``draw`` is wrapped in its sampler (its subsamples seeded by
            ``seed + 4``) unless it is a :class:`~sitransport.couplings.PlanSampler`.
        path: settings of the ascent on the interpolant's parameters (``None``: fixed path).
        seed: seeds every random draw of the run (one ``torch.Generator``; dropout masks from
            the global RNG, reseeded from ``seed``, rank and step inside ``fork_rng``); an
            integer in ``[0, 2**63 - 1]``.
        validation: ``(x0, x1)`` held-out pairs evaluated every ``eval_every`` steps at
            fixed times.
        checkpoint: file written every ``checkpoint_every`` steps (atomically): model, EMA,
            optimiser, scheduler, step, generator and data-position states, and the run's
            fingerprint (the settings, named as :func:`fit`'s arguments, ``seed``, ``dtype``,
            the interpolant's, time sampler's, coupling's and path settings' specs, the
            network's architecture, and ``fingerprint``).
        resume: continue from ``checkpoint`` if it exists (bit-for-bit the same run). The
            checkpoint's fingerprint must equal this call's, except ``steps``, ``progress``
            and ``checkpoint_every``. A larger ``steps`` extends the run: the learning-rate
            schedule stays the one of the run that wrote the checkpoint (warm-up and cosine
            decay over its ``steps``; ``history.attrs["lr_schedule_steps"]``), so the extra
            steps run at its floor ``min_lr_ratio * lr``, and the first steps are those of the
            original run. ``steps`` must not be below the steps already done. A checkpoint
            without a fingerprint (written by an older version) resumes with a warning.
        device: ``"cpu"``, an available ``"cuda[:index]"`` or ``"mps"``.
        fingerprint: plain data that also identifies the run (:func:`fit` passes its
            arguments and a description of the data: spec and SHA-256 of a fixed subsample);
            stored in checkpoints and compared on resume.

    Returns:
        ``(model, history)``: the EMA model (or ``net`` without EMA) and the record.

    Training stops with :class:`~sitransport.errors.TrainingDivergedError` (before the
    weights move) on a non-finite loss, a non-finite gradient norm, or a flow-matching loss
    grown by orders of magnitude: once 5 steps are recorded, when the median of the last 5
    batch values exceeds ``1e4`` times the lowest such running median since the first step
    and 10 times the first step's value (the untrained level), or at once when one batch
    value exceeds ``1e8`` times that lowest median (runs shorter than 5 steps). The median
    makes single noisy batches harmless; the flow-matching loss is used because ``G`` can be
    negative.

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

    Example:
        The low-level loop behind :func:`fit`, here from ``N(0, 1)`` to ``N(2, 1)``:

        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.nn import MLPVelocity
        >>> def draw(n, generator):
        ...     x0 = torch.randn(n, 1, generator=generator)
        ...     return x0, torch.randn(n, 1, generator=generator) + 2.0
        >>> settings = TrainSettings(steps=30, batch_size=64, progress=False)
        >>> net = MLPVelocity(1, width=16, depth=1)
        >>> model, history = train(net, Linear(), draw, settings=settings)
        >>> model(torch.zeros(3, 1), torch.full((3,), 0.5)).shape
        torch.Size([3, 1])
        >>> history.sizes["step"], sorted(history.data_vars)[:3]
        (30, ['fm_loss', 'grad_norm', 'kinetic'])
    """
    from torch.nn.parallel import DistributedDataParallel

    from sitransport.distributed import rank_and_world

    settings = settings or TrainSettings()
    seed = check_seed(seed)
    device = check_device(device)
    time_sampler = time_sampler or get_time_sampler("uniform")
    run = _fingerprint(
        net,
        interpolant,
        settings,
        fingerprint,
        seed=seed,
        dtype=str(dtype),
        time_sampler=time_sampler,
        coupling=coupling or Independent(),
        path=dataclasses.asdict(path) if path is not None else None,
    )
    draw, coupling = _plan_draw(draw, coupling or Independent(), seed)
    meter = _OTMeter(draw, coupling)
    rank, world = rank_and_world()
    k = settings.accumulate
    n_batch = settings.batch_size
    if interpolant.stochastic and settings.antithetic:
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
    net = net.to(device=device, dtype=dtype)
    interpolant = interpolant.to(device=device)
    path_opt = PathOptimizer(interpolant, path) if path is not None else None
    ema = (
        AveragedModel(net, use_buffers=True)  # the averaged copy; updated by _ema_updater
        if settings.ema is not None
        else None
    )
    params = list(net.parameters())
    # the fused kernel updates all tensors in one pass (a third of the per-tensor loop's time
    # for a small network on CPU); other devices keep torch's default implementation
    opt = torch.optim.AdamW(
        params,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        fused=True if device.type in ("cpu", "cuda") else None,
    )
    lr_factor = _lr_lambda(settings)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = _generator(seed)
    path_gen = _generator(seed, 3)
    record = _Record()
    start = 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    stateful_draw = hasattr(draw, "state_dict") and hasattr(draw, "load_state_dict")
    if resume and ckpt_path is None:
        raise ValueError("resume=True needs a checkpoint path")
    if resume and ckpt_path is not None and _any_checkpoint(ckpt_path):
        state = load_checkpoint(ckpt_path, map_location=device)  # verified; falls back to .prev
        lr_factor.total = run["lr_schedule_steps"] = _check_resume(
            state, run, ckpt_path, settings.steps
        )
        net.load_state_dict(state["net"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["generator"].cpu())
        path_gen.set_state(state["path_generator"].cpu())
        if path_opt is not None:
            path_opt.load_state_dict(state["path"])
        if stateful_draw and state.get("draw") is not None:
            draw.load_state_dict(state["draw"])
        record = _Record(**{k: list(v) for k, v in state["record"].items()})
        start = int(state["step"])
    model = ema.module if ema is not None else net
    update_ema = _ema_updater(ema, net, settings.ema) if ema is not None else None
    denoiser = getattr(net, "denoiser", None) if interpolant.stochastic else None
    objective: nn.Module = _Objective(net, interpolant, denoiser is not None)
    if world > 1:  # after loading: DDP broadcasts rank 0's weights at construction
        objective = DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast = torch.autocast(
        device_type=device.type,
        dtype=torch.bfloat16,
        enabled=settings.mixed_precision == "bf16",
    )

    val = None
    if validation is not None:
        vgen = _generator(seed, 1)
        v0, v1 = (v.detach().to(device=device, dtype=dtype) for v in validation)
        vt = time_sampler.sample(v0.shape[0], generator=vgen, device=device, dtype=dtype)
        val = (v0, v1, vt)
        if interpolant.stochastic:
            vz = torch.randn(v0.shape, generator=vgen, dtype=torch.float64).to(v0)
            val = (v0, v1, vt, vz)

    best: dict[str, Any] = {"loss": math.inf, "state": None}
    if resume and ckpt_path is not None and ckpt_path.is_file() and state.get("best"):
        best = state["best"]

    def evaluate(step: int) -> None:
        record.eval_step.append(step)
        learned = interpolant.base if isinstance(interpolant, Normalized) else interpolant
        if path_opt is not None and isinstance(learned, Fourier):  # coefficients over time
            record.path_a.append(learned.a.detach().cpu().tolist())
            record.path_b.append(learned.b.detach().cpu().tolist())
        if val is None:
            return
        model.eval()
        with torch.no_grad():
            out = quadratic_loss(model, interpolant, *val)
        model.train()
        record.val_loss.append(float(out.quadratic))
        record.val_fm_loss.append(float(out.flow_matching))
        if settings.restore_best and float(out.quadratic) < best["loss"]:
            best["loss"] = float(out.quadratic)
            best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    stochastic = interpolant.stochastic

    def batch(n: int, g: torch.Generator) -> Callable[[], tuple]:
        """Draw a batch and start its pairing; the returned function completes it.

        Stochastic interpolants get noise ``z``; with ``antithetic`` the batch is
        ``(x0, x1, t, z)`` followed by ``(x0, x1, t, -z)`` (the ``gamma' z . v`` term of the
        loss then cancels to first order), otherwise times come in pairs ``u, 1 - u``.
        """
        x0, x1 = (x.detach().to(device=device, dtype=dtype) for x in draw(n, g))
        if not stochastic:
            t = time_sampler.sample(
                n, generator=g, antithetic=settings.antithetic, device=device, dtype=dtype
            )
            paired = coupling.submit(x0, x1, g)
            return lambda: (*paired(), t)
        half = n // 2 if settings.antithetic else n
        t = time_sampler.sample(half, generator=g, device=device, dtype=dtype)
        z = torch.randn((half, *x0.shape[1:]), generator=g, dtype=torch.float64).to(x0)
        paired = coupling.submit(x0[:half], x1[:half], g)

        def complete() -> tuple:
            a, b = paired()
            if not settings.antithetic:
                return a, b, t, z
            return torch.cat([a, a]), torch.cat([b, b]), torch.cat([t, t]), torch.cat([z, -z])

        return complete

    def micro_batches(current: tuple) -> list[tuple]:
        """This rank's slice of the global batch, cut into ``accumulate`` micro-batches."""
        m = current[0].shape[0] // world
        mine = tuple(c[rank * m : (rank + 1) * m] for c in current)
        return list(zip(*(torch.chunk(c, k) for c in mine), strict=True))

    t_start = time.perf_counter() - (record.wall_time[-1] if record.wall_time else 0.0)
    bar = tqdm(
        range(start, settings.steps),
        initial=start,
        total=settings.steps,
        disable=not settings.progress or rank != 0,
        desc="fit",
        dynamic_ncols=True,
    )
    net.train()
    guard = _DivergenceGuard(settings.clip_grad, record.fm_loss)
    max_norm = settings.clip_grad if settings.clip_grad is not None else float("inf")
    # one batch ahead: its pairing (e.g. exact OT in a worker process) overlaps this step;
    # checkpoints store the generator (and data position) as before that look-ahead draw
    gen_state = gen.get_state()
    draw_state = draw.state_dict() if stateful_draw else None
    pending = batch(settings.batch_size, gen) if start < settings.steps else None
    rng_devices = [device] if device.type == "cuda" else []
    # dropout draws from the global generator of the device the network runs on; reseed just
    # that one (torch.manual_seed would also queue a lazy CUDA seeding with a captured stack
    # trace on every step, which costs more than a small network's whole step)
    step_rng = (
        torch.cuda.default_generators[device.index or 0]
        if device.type == "cuda"
        else torch.default_generator
    )
    with torch.random.fork_rng(devices=rng_devices):  # dropout reseeded per step, restored after
        for step in bar:
            step_rng.manual_seed(_step_seed(seed, rank, step))
            current = pending()
            gen_state = gen.get_state()
            draw_state = draw.state_dict() if stateful_draw else None
            if step + 1 < settings.steps:
                pending = batch(settings.batch_size, gen)
            done = step + 1
            simultaneous = (
                path_opt is not None
                and path_opt.settings.mode == "simultaneous"
                and path_opt.due(done)
            )
            opt.zero_grad(set_to_none=True)
            stats = torch.zeros(3, dtype=torch.float64, device=device)
            ascent = None
            parts = micro_batches(current)
            for j, part in enumerate(parts):
                sync = world == 1 or j == k - 1
                with contextlib.nullcontext() if sync else objective.no_sync():
                    with autocast:
                        loss, quadratic, fm, kinetic = objective(*part)
                    if simultaneous:  # max–min: the path's ascent from this same evaluation
                        ascent = torch.autograd.grad(quadratic, path_opt.params, retain_graph=True)
                    (loss / k if k > 1 else loss).backward()
                stats += torch.stack([loss.detach(), fm.detach(), kinetic.detach()]).double() / k
            if world > 1:
                torch.distributed.all_reduce(stats)
                stats /= world
            loss_value, fm_value, kinetic_value = (float(s) for s in stats)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            lr = sched.get_last_lr()[0]
            guard.check(step, loss_value, fm_value, grad_norm, lr)  # before the weights move
            opt.step()
            sched.step()
            if update_ema is not None:
                update_ema()
            if path_opt is not None:
                for p in interpolant.parameters():
                    p.grad = None  # the descent step above must not move the path
                if path_opt.due(done):  # the path's step size: see PathOptimizer.lr_factor
                    for group in path_opt.optimizer.param_groups:
                        factor = path_opt.lr_factor(done, lr_factor(step))
                        group["lr"] = path_opt.settings.lr * factor
                    if ascent is not None:
                        path_opt.ascend(ascent)
                    else:
                        path_opt.step(net, *batch(settings.batch_size, path_gen)())
            record.step.append(done)
            record.loss.append(loss_value)
            record.fm_loss.append(fm_value)
            record.kinetic.append(kinetic_value)
            record.lr.append(lr)
            record.grad_norm.append(grad_norm)
            record.wall_time.append(time.perf_counter() - t_start)
            if done % settings.eval_every == 0 or done == settings.steps:
                evaluate(done)
            if step % 50 == 0 or done == settings.steps:
                bar.set_postfix(loss=f"{float(np.mean(record.loss[-50:])):.4f}", **meter.postfix())
            if ckpt_path is not None and rank == 0 and done % settings.checkpoint_every == 0:
                _atomic_save(
                    {
                        "net": net.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None,
                        "opt": opt.state_dict(),
                        "sched": sched.state_dict(),
                        "path": path_opt.state_dict() if path_opt is not None else None,
                        "best": best if best["state"] is not None else None,
                        "generator": gen_state,
                        "path_generator": path_gen.get_state(),
                        "draw": draw_state,
                        "record": {k: list(v) for k, v in vars(record).items()},
                        "step": done,
                        "fingerprint": run,
                    },
                    ckpt_path,
                )
    bar.close()
    if settings.restore_best and best["state"] is not None:
        model.load_state_dict(best["state"])  # the weights with the lowest validation loss
    model.eval()
    attrs = {"seed": seed, "lr_schedule_steps": lr_factor.total, **meter.attrs()}
    if settings.restore_best and best["state"] is not None:
        attrs["best_val_loss"] = best["loss"]
    return model, record.to_dataset(attrs)


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


def _split(density: Density, fraction: float, gen: torch.Generator, name: str):
    """Hold out ``fraction`` of an empirical set; returns (train density, held-out or None)."""
    if isinstance(density, DequantizedImages) and fraction > 0.0:
        n_val = int(round(fraction * len(density)))
        if n_val < 1 or len(density) - n_val < 2:
            raise ValueError(
                f"validation={fraction} leaves {len(density) - n_val} training and {n_val} "
                f"held-out images of {name} (n={len(density)}); use more images or validation=0"
            )
        perm = torch.randperm(len(density), generator=gen)
        held = perm[:n_val][:4096]
        return density.subset(perm[n_val:]), density.take(held, gen)
    if not isinstance(density, EmpiricalDensity) or fraction == 0.0:
        return density, None
    x = density.samples
    n_val = int(round(fraction * x.shape[0]))
    if n_val < 1 or x.shape[0] - n_val < 2:
        raise ValueError(
            f"validation={fraction} leaves {x.shape[0] - n_val} training and {n_val} held-out "
            f"samples of {name} (n={x.shape[0]}); need at least 2 and 1: use more samples or "
            "validation=0"
        )
    perm = torch.randperm(x.shape[0], generator=gen)
    return EmpiricalDensity(x[perm[n_val:]]), x[perm[:n_val]]


def effective_rank(x: Tensor, rtol: float = 1e-6) -> int:
    """Number of covariance eigenvalues above ``rtol`` times the largest: the dimension of
    the affine span the samples fill (a line in the plane has rank 1).

    Example:
        >>> import sitransport as st
        >>> effective_rank(torch.from_numpy(st.datasets.sample("line", 500, seed=0)))
        1
    """
    flat = x.flatten(1).to(torch.float64)
    if flat.shape[0] < 2:
        return 0
    eig = torch.linalg.eigvalsh(torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1]))
    top = float(eig.max())
    return int((eig > rtol * top).sum()) if top > 0 else 0


def _default_width(d: int) -> int:
    """MLP width when none is given: 128 up to 16 dimensions, 256 above."""
    return 128 if d <= 16 else 256


def _rank_of(density: Density) -> int:
    if isinstance(density, EmpiricalDensity):
        return effective_rank(density.samples)
    return math.prod(density.shape)  # Gaussian / distribution ends: full rank


def fit(
    rho0: Any,
    rho1: Any,
    *,
    interpolant: str | Interpolant = "trig",
    steps: int = 20_000,
    batch_size: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    validation: float = 0.1,
    width: int | None = None,
    depth: int = 4,
    activation: str = "silu",
    time_frequencies: int = 8,
    space_frequencies: int = 0,
    time_sampler: str | dict | TimeSampler = "uniform",
    antithetic: bool = True,
    ema: float | None = 0.999,
    weight_decay: float = 0.0,
    warmup: int = 200,
    clip_grad: float | None = 1.0,
    normalize: bool = True,
    eval_every: int = 500,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    ode: ODEOptions | None = None,
    coupling: str | dict | Coupling = "independent",
    optimize_path: bool = False,
    path_lr: float = 5e-3,
    path_every: int = 1,
    path_start: int = 1000,
    path_mode: str = "alternating",
    path_freeze: float = 0.5,
    remedy: str | None = None,
    latent: int | str | None = None,
    latent_variance: float = 0.999,
    restore_best: bool = False,
    network: str | dict = "auto",
    accumulate: int = 1,
    mixed_precision: str | None = None,
    num_workers: int = 0,
) -> TransportFlow:
    r"""Learn a transport map from ``rho0`` to ``rho1`` by minimising the quadratic loss.

    .. math::

        \min_v\; \mathbb{E}_{t, x_0, x_1}\big[|v_t(x_t)|^2 - 2\,\partial_t x_t\cdot v_t(x_t)\big],
        \qquad x_t = \alpha(t) x_0 + \beta(t) x_1,

    with ``x0 ~ rho0`` and ``x1 ~ rho1`` drawn independently. Simulation-free: no ODE is
    solved during training.

    Args:
        rho0: source at ``t = 0``: samples ``(n, d)`` or images ``(n, c, h, w)`` (numpy,
            torch or xarray), integer images as :class:`~sitransport.images.ImageData`
            (dequantised afresh each batch, in ``[0, 1]``), ``"gaussian"`` (``N(0, I)``) or a
            torch Distribution.
        rho1: target at ``t = 1``, same kinds, or a map-style torch ``Dataset`` of images
            (read through :class:`~sitransport.distributed.ShardedDataset`: one shard per rank
            under ``torch.distributed``; integer images are dequantised with 256 levels), or a
            ``DataLoader`` over one (its dataset and ``num_workers`` are used; batches and
            shuffling are fit's own, so runs are reproducible and resumable).
        interpolant: ``"trig"`` (default), ``"linear"`` or an :class:`Interpolant`.
        steps: optimisation steps.
        batch_size: pairs per step.
        lr: peak AdamW learning rate (linear warm-up over ``warmup`` steps, cosine decay
            to 1% of it).
        seed: seeds the whole run (splits, batches, times, initial weights); an integer in
            ``[0, 2**63 - 1]``.
        progress: show a tqdm progress bar.
        device: torch device for training and the returned flow: ``"cpu"``, an available
            ``"cuda[:index]"`` or ``"mps"``.
        dtype: network dtype (``torch.float32`` or ``torch.float64``).
        validation: fraction of each sample set held out for the validation loss.
        width: hidden width of the MLP; ``None`` picks 128 for ``d <= 16`` and 256 above.
        depth, activation, time_frequencies: the MLP (:class:`~sitransport.nn.MLPVelocity`,
            or the potential's MLP with ``network="potential"``).
        space_frequencies: octaves of positional features of ``x`` in the MLP
            (:class:`~sitransport.nn.SpaceEmbedding`); 0 feeds ``x`` as it is. 5, with
            ``time_sampler={"name": "beta", "a": 1, "b": 0.5}``, sharpens the edges of
            densities with jumps (see the failure-modes guide).
        time_sampler: ``"uniform"``, ``"beta"`` / ``{"name": "beta", "a": .., "b": ..}``.
        antithetic: draw times in pairs ``u, 1 - u`` (lower-variance batches).
        ema: decay of the exponential moving average of the weights (``None``: off); the
            flow uses the averaged weights.
        weight_decay: AdamW weight decay.
        warmup: learning-rate warm-up steps.
        clip_grad: max gradient norm (``None``: off).
        normalize: learn in coordinates ``(x - m) / s`` (pooled mean ``m`` and scalar scale
            ``s`` of both ends); a similarity, so optimal-transport couplings are kept. A
            change of coordinates only: the network learns the named path
            :math:`\alpha x_0 + \beta x_1` itself, written in those coordinates
            (:class:`~sitransport.interpolants.Normalized`), so velocities, scores and
            marginals are the same as with ``normalize=False``.
        eval_every: steps between validation evaluations.
        checkpoint_dir: directory for ``checkpoint.pt`` (written every ``checkpoint_every``),
            which also stores a fingerprint of the call: these arguments and, for each end,
            its kind, shape, size and the SHA-256 of a fixed subsample (evenly spread rows of
            samples; a fixed-seed draw of a distribution).
        resume: continue from the checkpoint in ``checkpoint_dir`` if present. Every argument
            and both ends must be the checkpoint's, except ``steps``, ``progress``,
            ``checkpoint_every`` and where things run or are read from (``checkpoint_dir``,
            ``device``, ``num_workers``, ``ode``). A larger ``steps`` extends the run on the
            original learning-rate schedule (the extra steps run at its floor, 1% of ``lr``;
            see :func:`train`); with ``optimize_path`` and ``path_freeze < 1`` it would also
            move the path's freeze step (``path_freeze * steps``), which is refused.
        ode: default ODE settings of the returned flow.
        coupling: pairing of each batch: ``"independent"`` (the paper's), ``"exact_ot"``
            (exact minibatch OT, in blocks of 256), ``"global_ot"`` (batches drawn from the
            exact OT plan of 4096-point subsamples of the training sets, re-solved
            periodically: OT pairs at about the cost of independent ones; the solve times are
            in ``flow.history.attrs["ot_plan_solve_s"]``) or ``"sinkhorn"`` (entropic); see
            :mod:`sitransport.couplings`.
        optimize_path: max–min training: ascend on the interpolant's parameters (needs a
            learnable interpolant, e.g. ``"fourier"``); see :mod:`sitransport.paths`.
        path_lr, path_every, path_start: the ascent's Adam learning rate, velocity steps per
            path step, and velocity steps before the first path step.
        path_mode: ``"alternating"`` (an ascent step on a fresh batch after each due velocity
            step) or ``"simultaneous"`` (gradient descent–ascent on the same batch).
        path_freeze: fraction of ``steps`` after which the path is frozen and the velocity
            finishes on the fixed path (1: ascend to the end).
        remedy: ``None`` (default) or ``"auto"``. ``fit`` compares the effective ranks
            (covariance spectrum) of the two sample sets and warns, naming both, when
            ``rho0``'s is lower: a deterministic flow maps a lower-dimensional source onto a
            lower-dimensional set and cannot fill ``rho1``. With ``"auto"`` it then trains a
            stochastic interpolant (:class:`~sitransport.interpolants.Stochastic` on the
            chosen base path, with a denoiser) and the flow samples with the SDE by default.

        restore_best: keep the weights with the lowest validation loss.
        network: ``"auto"`` (an MLP for vectors, a U-Net for images), ``"mlp"``,
            ``"potential"`` (vectors: the velocity is the gradient of an MLP potential,
            :class:`~sitransport.nn.PotentialVelocity`, a curl-free field like the
            optimal-transport velocity; about 2-2.5 times the cost per step), ``"unet"``
            (the ``"tiny"`` preset up to 16x16 images, ``"small"`` above), a U-Net preset
            name (:data:`~sitransport.nn.UNET_PRESETS`, e.g. ``"cifar10"``) or a dict of
            :class:`~sitransport.nn.UNetVelocity` arguments with an optional ``"preset"``.
        accumulate: micro-batches per step (gradient accumulation: the same step as one
            batch of ``batch_size``, in ``1 / accumulate`` of the memory).
        mixed_precision: ``None`` or ``"bf16"`` (autocast of the network; for GPUs).
        num_workers: ``DataLoader`` workers when ``rho1`` is a torch ``Dataset``.

    Under ``torch.distributed`` (launch with ``torchrun``, call
    :func:`sitransport.distributed.setup`), ``batch_size`` is the global batch: see
    :func:`train`.

    Returns:
        The fitted :class:`TransportFlow`; ``flow.config`` records these settings and
        ``flow.history`` the training record.

    Training that diverges stops with an error rather than return a broken flow: a
    non-finite loss or gradient norm, or a flow-matching loss whose 5-step running median
    grew to ``1e4`` times its lowest, or one batch loss ``1e8`` times it (see :func:`train`).

    Raises:
        ValueError, TypeError: bad input (the message names the argument), e.g. ``seed``
            outside ``[0, 2**63 - 1]`` or an unsupported ``device``.
        ValueError: the normalisation of the data overflows float64, or ``dtype`` cannot
            resolve an end in it (the message names the end, and ``dtype=torch.float64``
            when that resolves it).
        TrainingDivergedError: the loss or gradient became non-finite, or the loss grew by
            orders of magnitude (a ``FloatingPointError``; the message names the step).
        CheckpointMismatchError: ``resume=True`` with a checkpoint of another run (every
            differing field is listed) or ``steps`` below the checkpoint's step.

    Example:
        >>> import sitransport as st
        >>> x1 = st.datasets.sample("moons", 2000, seed=0)
        >>> flow = st.fit("gaussian", x1, steps=200, progress=False)
        >>> flow.sample(5, seed=0).shape
        (5, 2)
    """
    seed = check_seed(seed)  # before the config records it
    kwargs = {k: v for k, v in locals().items() if k not in ("rho0", "rho1")}
    config = plain(kwargs)
    settings = TrainSettings(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        ema=ema,
        clip_grad=clip_grad,
        antithetic=antithetic,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        progress=progress,
        restore_best=restore_best,
        accumulate=accumulate,
        mixed_precision=mixed_precision,
    )
    check_device(device)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    _check_fit_arguments(normalize, time_frequencies, ode)
    validation = check_fraction(validation, "validation", high=0.9)
    interp = get_interpolant(interpolant)
    if optimize_path:  # trained in place: never mutate the caller's object
        interp = copy.deepcopy(interp)
    sampler = get_time_sampler(time_sampler)
    pairing = get_coupling(coupling)
    path = None
    if optimize_path:
        path = PathSettings(path_lr, path_every, path_start, path_mode, _stop(path_freeze, steps))

    source = None
    if isinstance(rho1, torch.utils.data.DataLoader):  # its dataset and workers; fit batches
        rho1, num_workers = rho1.dataset, max(num_workers, rho1.num_workers)
    if isinstance(rho0, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        raise TypeError("rho0 cannot be a torch Dataset; pass it as rho1 (data at t = 1)")
    if isinstance(rho1, torch.utils.data.Dataset):
        source = ShardedDataset(rho1, seed=seed, num_workers=num_workers)
        d1 = None
        d0 = _end(rho0, "rho0", source.shape)
        shape1 = source.shape
    elif isinstance(rho1, str):  # "gaussian" takes its dimension from the other end
        d0 = _end(rho0, "rho0")
        d1 = _end(rho1, "rho1", d0.shape)
        shape1 = d1.shape
    else:
        d1 = _end(rho1, "rho1")
        d0 = _end(rho0, "rho0", d1.shape)
        shape1 = d1.shape
    if d0.shape != shape1:
        raise ValueError(
            f"rho0 and rho1 must have the same dimension, got samples of shape {d0.shape} "
            f"and {shape1}"
        )
    if len(d0.shape) not in (1, 3):
        raise ValueError(
            f"fit takes vectors (n, d) or images (n, c, h, w), got sample shape {d0.shape}"
        )
    images = len(d0.shape) == 3

    if latent is not None:
        if images or source is not None:
            raise ValueError("latent= works on vectors (n, d); flatten images first")
        return _fit_latent(d0, d1, kwargs)
    if remedy is not None:
        check_choice(remedy, "remedy", ("auto",))
    # effective ranks: a covariance of d x d, for vectors (images: not computed)
    rank0, rank1 = (_rank_of(d0), _rank_of(d1)) if not images else (0, 0)
    if not images:
        config["rank0"], config["rank1"] = rank0, rank1
    if rank0 < rank1:
        if remedy == "auto" and not interp.stochastic:
            base_name = interp.spec().get("name") if isinstance(interp, (Linear, Trig)) else None
            interp = Stochastic(base_name or "linear", "sin2", 1.0)
            config["interpolant"] = plain(interp.spec())
            config["sample_method"] = "sde"
        else:
            warnings.warn(
                f"rho0 has effective rank {rank0} but rho1 has {rank1}: a deterministic flow "
                "maps rho0's support onto a set of dimension at most "
                f"{rank0} and cannot fill rho1. Remedies: fit(..., remedy='auto') (stochastic "
                "interpolant + SDE sampling), a stochastic interpolant, or a latent flow",
                stacklevel=2,
            )

    gen = _generator(seed, 2)
    train0, held0 = _split(d0, validation, gen, "rho0")
    if source is not None:
        train1, held1 = _split_dataset(source, validation, gen)
    else:
        train1, held1 = _split(d1, validation, gen, "rho1")

    if normalize:
        n_stat = 20_000 if not images else 2048  # images: a bounded pool for the statistics
        pool = [
            train.samples
            if isinstance(train, EmpiricalDensity) and not images
            else train.sample(n_stat, gen)
            if isinstance(train, Density)
            else _dataset_items(train, n_stat, gen)
            for train in (train0, train1)
        ]
        norm = Normalization.from_samples(*pool, names=("rho0", "rho1"), dtype=dtype)
    else:
        norm = Normalization.identity(d0.shape)

    val = None
    if validation > 0:
        n_val = 4096
        v0 = held0 if held0 is not None else train0.sample(n_val, gen)
        v1 = held1 if held1 is not None else train1.sample(n_val, gen)
        m = min(v0.shape[0], v1.shape[0], n_val)
        val = (norm.encode(v0[:m]), norm.encode(v1[:m]))

    with torch.random.fork_rng(devices=[]):  # seeded weight init, global RNG untouched

        def make() -> nn.Module:
            kind = _network_kind(network, d0.shape)
            if kind == "unet":
                return UNetVelocity(**_unet_arguments(network, d0.shape))
            d = d0.shape[0]
            return (PotentialVelocity if kind == "potential" else MLPVelocity)(
                d,
                width if width is not None else _default_width(d),
                depth,
                activation,
                time_frequencies,
                space_frequencies,
            )

        torch.manual_seed(seed)
        net = make()
        if interp.stochastic:  # a second network for the denoiser eta_z (score = -eta_z / gamma)
            net = VelocityDenoiser(net, make())
    ckpt = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir is not None else None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)

    def draw(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        return norm.encode(train0.sample(n, g)), norm.encode(train1.sample(n, g))

    if source is not None:  # a dataset: its position in the epoch is checkpointed too
        draw = _DatasetDraw(train0, train1, norm)
    if isinstance(pairing, GlobalOT):  # batches from OT plans of the training sets
        draw = _plan_sampler(pairing, train0, train1, norm, seed)
    end1 = source if source is not None else d1
    run = _fit_fingerprint(config, interp, sampler, pairing, d0, end1) if ckpt else None

    model, history = train(
        net,
        Normalized(interp, norm.shift, norm.scale),  # the caller's path, in the network's u
        draw,
        settings=settings,
        time_sampler=sampler,
        coupling=pairing,
        path=path,
        seed=seed,
        validation=val,
        checkpoint=ckpt,
        resume=resume,
        device=device,
        dtype=dtype,
        fingerprint=run,
    )
    return TransportFlow(
        model,
        interp,
        base=d0,
        target=d1 if not isinstance(d1, DequantizedImages) else None,  # not kept in the flow
        normalization=norm,
        ode=ode,
        config=config,
        history=history,
    )


def _check_fit_arguments(normalize: Any, time_frequencies: Any, ode: Any) -> None:
    """Checks of ``fit``'s arguments that nothing downstream names as the caller did."""
    check_bool(normalize, "normalize")
    check_positive_int(time_frequencies, "time_frequencies")
    if ode is not None and not isinstance(ode, ODEOptions):
        raise TypeError(f"ode must be an ODEOptions or None, got {type(ode).__name__} {ode!r}")


def _stop(freeze: Any, steps: int) -> int | None:
    """The last path step of a max–min fit frozen after a fraction ``freeze`` of ``steps``."""
    if isinstance(freeze, bool) or not isinstance(freeze, (int, float)) or not 0 <= freeze <= 1:
        raise ValueError(f"path_freeze must be a number in [0, 1], got {freeze!r}")
    return None if freeze == 1 else int(freeze * steps)


def _end(rho: Any, name: str, shape: tuple[int, ...] | None = None) -> Density:
    """An end of ``fit``: integer images dequantised per draw, anything else as_density."""
    if isinstance(rho, ImageData):
        return DequantizedImages(rho.pixels, rho.levels)
    if isinstance(rho, Tensor):  # data is data: no gradient flows into the caller's tensor
        rho = rho.detach()
    return as_density(rho, name, shape=shape)


def _plan_sampler(
    coupling: GlobalOT, train0: Density, train1: Any, norm: Normalization, seed: int
) -> PlanSampler:
    """The :class:`PlanSampler` of ``fit``'s training ends in normalised coordinates: sample
    sets as finite ends, other densities as streams."""
    if isinstance(train1, ShardedDataset):
        raise ValueError(
            "coupling='global_ot' needs rho1 as samples, ImageData or a distribution, not a "
            "torch Dataset; use coupling='exact_ot' for datasets"
        )

    def end(density: Density) -> Any:
        if isinstance(density, EmpiricalDensity):
            return norm.encode(density.samples)
        return lambda m, g: norm.encode(density.sample(m, g))

    return coupling.sampler(end(train0), end(train1), seed=seed + 4)


def _network_kind(network: str | dict, shape: tuple[int, ...]) -> str:
    """``"mlp"``, ``"potential"`` or ``"unet"`` from fit's ``network`` argument, checked
    against the data."""
    if isinstance(network, dict):
        kind = "unet"
    elif isinstance(network, str):
        check_choice(network, "network", ("auto", "mlp", "potential", "unet", *UNET_PRESETS))
        auto = "unet" if len(shape) == 3 else "mlp"
        kind = {"auto": auto, "mlp": "mlp", "potential": "potential"}.get(network, "unet")
    else:
        raise TypeError(f"network must be a name or a dict, got {type(network).__name__}")
    if kind == "unet" and len(shape) != 3:
        raise ValueError(
            f"network={network!r} is a U-Net, which needs images (n, c, h, w), got sample "
            f"shape {shape}"
        )
    if kind in ("mlp", "potential") and len(shape) != 1:
        raise ValueError(f"network={kind!r} needs vectors (n, d), got sample shape {shape}")
    return kind


def _unet_arguments(network: str | dict, shape: tuple[int, ...]) -> dict[str, Any]:
    c, h, w = shape
    if isinstance(network, dict):
        overrides = dict(network)
        overrides.pop("kind", None)
        preset = overrides.pop("preset", "tiny" if max(h, w) <= 16 else "small")
        for key in ("channels", "image_size"):
            if key in overrides:
                raise ValueError(f"network[{key!r}] is set by the data (shape {shape})")
        return unet_config(preset, c, (h, w), **overrides)
    preset = network if network in UNET_PRESETS else ("tiny" if max(h, w) <= 16 else "small")
    return unet_config(preset, c, (h, w))


class _DatasetDraw:
    """``draw(n, g)`` over a base density and a :class:`ShardedDataset` (stateful)."""

    def __init__(self, base: Density, source: ShardedDataset, norm: Normalization) -> None:
        self.base, self.source, self.norm = base, source, norm

    def __call__(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.norm.encode(self.base.sample(n, g)), self.norm.encode(self.source(n, g))

    def state_dict(self) -> dict[str, int]:
        return self.source.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.source.load_state_dict(state)


def _dataset_items(source: ShardedDataset, n: int, gen: torch.Generator) -> Tensor:
    """Up to ``n`` random items of a dataset, dequantised (float64)."""
    m = min(n, len(source.dataset))
    idx = torch.randperm(len(source.dataset), generator=gen)[:m].tolist()
    x = torch.stack([_image(source.dataset[i]) for i in idx]).detach()
    if torch.is_floating_point(x):
        return x.to(torch.float64)
    check_pixels(x, "dataset images", source.levels)
    return (x.to(torch.float64) + torch.rand(x.shape, generator=gen, dtype=torch.float64)) / (
        source.levels
    )


def _split_dataset(
    source: ShardedDataset, fraction: float, gen: torch.Generator
) -> tuple[ShardedDataset, Tensor | None]:
    """Hold out ``fraction`` of a dataset's items (at most 4096 are loaded for validation)."""
    if fraction == 0.0:
        return source, None
    n = len(source.dataset)
    n_val = int(round(fraction * n))
    if n_val < 1 or n - n_val < 2:
        raise ValueError(
            f"validation={fraction} leaves {n - n_val} training and {n_val} held-out items of "
            f"the rho1 dataset (n={n}); use more data or validation=0"
        )
    perm = torch.randperm(n, generator=gen)
    held = torch.utils.data.Subset(source.dataset, perm[:n_val].tolist())
    train_set = ShardedDataset(
        torch.utils.data.Subset(source.dataset, perm[n_val:].tolist()),
        levels=source.levels,
        seed=source.seed,
        num_workers=source.num_workers,
    )
    held_source = ShardedDataset(held, levels=source.levels)
    return train_set, _dataset_items(held_source, 4096, gen)


def _fit_latent(d0: Density, d1: Density, kwargs: dict[str, Any]) -> Any:
    """``fit`` in the principal coordinates of the empirical ends (see ``latent=``)."""
    from sitransport._bases import StandardNormal
    from sitransport.latent import LatentFlow, PCAEncoder

    latent = kwargs.pop("latent")
    if isinstance(latent, str):
        check_choice(latent, "latent", ("pca",))
        k = None
    else:
        k = check_positive_int(latent, "latent")
    pool = [d.samples for d in (d0, d1) if isinstance(d, EmpiricalDensity)]
    if not pool:
        raise ValueError("latent= needs samples at one end at least to find principal axes")
    enc = PCAEncoder.fit(torch.cat(pool), k, kwargs.pop("latent_variance"))

    def to_latent(d: Density, name: str) -> Any:
        if isinstance(d, EmpiricalDensity):
            return enc.encode(d.samples).numpy()
        if isinstance(d, StandardNormal):
            return "gaussian"
        raise ValueError(f"latent= supports samples or 'gaussian' for {name}, got a {d.kind}")

    inner = fit(to_latent(d0, "rho0"), to_latent(d1, "rho1"), **kwargs)
    return LatentFlow(inner, enc, source_is_latent=not isinstance(d0, EmpiricalDensity))


def _fresh_network(network: Any, shape: tuple[int, ...], config: dict) -> nn.Module:
    """A newly initialised velocity network of the same architecture as ``network`` (the
    velocity part of a velocity-denoiser pair); an MLP of the configured width and depth when
    ``network`` is not one of ours."""
    network = getattr(network, "velocity", network)
    if isinstance(network, (MLPVelocity, PotentialVelocity, UNetVelocity)):
        kind = type(network)
        return kind(**{k: v for k, v in network.config.items() if k != "kind"})
    width = int(config.get("width") or _default_width(shape[0]))
    return MLPVelocity(shape[0], width, int(config.get("depth", 4)))


def reflow(
    flow: TransportFlow,
    n: int = 20_000,
    *,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    interpolant: str | Interpolant = "linear",
    ode: ODEOptions | None = None,
) -> TransportFlow:
    r"""Rectify a flow: retrain on the coupling ``(x0, T(x0))`` of its own map ``T``.

    Pairs a fresh draw of ``rho0`` with its push-forward and fits a new velocity to them
    with the (default linear) interpolant. Pairs that come from a deterministic map do not
    cross, so the new flow's paths are straighter: lower kinetic energy and fewer ODE steps
    (Liu et al., Flow Straight and Fast, arXiv:2209.03003). Compare ``straightness`` and
    ``nfe`` of :meth:`TransportFlow.transport_report` before and after.

    Args:
        flow: a fitted :class:`TransportFlow` with a base to draw ``rho0`` from.
        n: number of pairs generated.
        steps: training steps (default: those of ``flow``).
        seed: seed of the pairs and the training run.
        progress: show progress bars.
        interpolant: the new flow's interpolant (rectified flow uses ``"linear"``).
        ode: ODE settings for generating the pairs (default: the flow's).

    Returns:
        A new :class:`TransportFlow` with the same ends and normalisation.

    Raises:
        ValueError: ``n < 2``, ``seed`` outside ``[0, 2**63 - 1]``, or no base to draw from.

    Example:
        >>> import sitransport as st
        >>> x1 = st.datasets.sample("moons", 1000, seed=0)
        >>> flow = st.fit("gaussian", x1, steps=50, width=32, progress=False, seed=0)
        >>> straight = st.reflow(flow, 1000, steps=50, progress=False)
        >>> straight.config["reflow_generation"], straight.config["coupling"]
        (1, 'paired')
        >>> straight.sample(3, seed=0).shape
        (3, 2)
    """
    n = check_positive_int(n, "n", minimum=2)
    seed = check_seed(seed)
    if flow.base is None:
        raise ValueError("reflow needs rho0: the flow has no base to draw from")
    config = dict(flow.config)
    config.update(
        {
            "reflow_generation": int(config.get("reflow_generation", 0)) + 1,
            "reflow_pairs": n,
            "interpolant": interpolant if isinstance(interpolant, str) else repr(interpolant),
            "coupling": "paired",
        }
    )
    gen = _generator(seed, 7)
    x0 = flow.base.sample(n, gen)
    x1 = torch.as_tensor(flow.push_forward(x0.numpy(), ode=ode))
    norm = flow.normalization
    z0, z1 = norm.encode(x0), norm.encode(x1)

    def draw(m: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, n, (m,), generator=g)
        return z0[idx], z1[idx]

    settings = TrainSettings(
        steps=steps if steps is not None else int(config.get("steps", 20_000)),
        batch_size=int(config.get("batch_size", 512)),
        lr=float(config.get("lr", 2e-3)),
        progress=progress,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _fresh_network(flow.network, flow.shape, config)
    interp = get_interpolant(interpolant)
    path = Normalized(interp, norm.shift, norm.scale)
    model, history = train(net, path, draw, settings=settings, seed=seed)
    return TransportFlow(
        model,
        interp,
        base=flow.base,
        target=flow.target,
        normalization=norm,
        ode=flow.ode,
        config=config,
        history=history,
    )
