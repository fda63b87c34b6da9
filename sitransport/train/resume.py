"""Resuming a training run: the run's fingerprint (settings, seed, dtype, interpolant, time
sampler, coupling, path settings, network architecture and the caller's data description, as
plain data), the check that a checkpoint belongs to this run (every differing field listed),
and whether there is a checkpoint to resume from."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from sitransport._io import previous_checkpoint
from sitransport._tree import plain
from sitransport.config.training import TrainSettings
from sitransport.couplings import Coupling
from sitransport.errors import CheckpointMismatchError
from sitransport.interpolants import Interpolant, Normalized
from sitransport.losses import TimeSampler

__all__: list[str] = []


def any_checkpoint(path: Path) -> bool:
    """A checkpoint to resume from: ``path`` or the previous one kept beside it (a crash
    between the two renames of :func:`~sitransport._io.save_checkpoint` leaves only that)."""
    return path.is_file() or previous_checkpoint(path).is_file()


# fingerprint fields that may change when a run is resumed: they do not change the trained
# model (steps: a longer run continues on the checkpoint's lr schedule; a shorter one must not
# be shorter than the steps already done). Where a run executes (device, workers) and how
# checkpoints are written are not in the fingerprint at all. Neither does the Sinkhorn
# diagnostic (it reads the model, never the training streams), which checkpoints written
# before it existed do not name. Nor does compiling the loss (``compile``): the same math, to
# float rounding.
RESUMABLE = frozenset(
    {
        "checkpoint_every",
        "compile",
        "lr_schedule_steps",
        "progress",
        "sinkhorn_blur",
        "sinkhorn_every",
        "sinkhorn_n",
        "sinkhorn_nfe",
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


def _network_fingerprint(net: nn.Module) -> dict[str, Any]:
    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in net.state_dict().items())
    return {
        "class": type(net).__qualname__,
        "config": getattr(net, "config", None),
        "shapes": hashlib.sha256(shapes.encode()).hexdigest(),
    }


def run_fingerprint(
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
    fields = settings.spec()  # without callbacks, which may differ on resume
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


def check_resume(state: dict[str, Any], fingerprint: dict[str, Any], path: Path, steps: int) -> int:
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
