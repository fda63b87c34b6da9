"""The settings of a call of :func:`~sitransport.fit` or :func:`~sitransport.reflow`: its
flat keywords merged into the training settings, checkpointing, path ascent and latent
coordinates resolved from their arguments, and the checks of the arguments nothing
downstream names as the caller did."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from sitransport._validation import check_bool, check_choice, check_device, check_positive_int
from sitransport.config import Checkpointing, LatentSpec, freeze_step
from sitransport.interpolants import Interpolant, get_interpolant
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings
from sitransport.train import TrainSettings

# The other functions are fit's own steps, imported by the package, not public API.
__all__: list[str] = []

#: The file ``fit`` writes in its checkpoint folder (``checkpoint=``).
CHECKPOINT_FILE = "checkpoint.pt"


def merge_settings(given: TrainSettings | None, base: TrainSettings, **flat: Any) -> TrainSettings:
    """The training settings of a call: ``given`` (else ``base``) with the flat keywords
    ``flat`` that are not ``None``, which take precedence over its fields.

    Args:
        given: the caller's ``training=`` settings, or ``None``.
        base: the settings used when ``given`` is ``None``.
        **flat: the flat keywords (``steps``, ``batch_size``, ``lr``, ``progress``,
            ``callbacks``) as the caller gave them; ``None``: not given.

    Raises:
        TypeError: ``given`` is not a :class:`~sitransport.train.TrainSettings`.

    Example:
        >>> from sitransport.train import TrainSettings
        >>> settings = merge_settings(TrainSettings(steps=5, ema=None), TrainSettings(),
        ...                            steps=10, lr=None)
        >>> settings.steps, settings.ema, settings.lr
        (10, None, 0.002)
    """
    if given is not None and not isinstance(given, TrainSettings):
        raise TypeError(
            f"training must be a TrainSettings or None, got {type(given).__name__} {given!r:.60}"
        )
    settings = given if given is not None else base
    return dataclasses.replace(
        settings, **{name: value for name, value in flat.items() if value is not None}
    )


def with_checkpointing(
    settings: TrainSettings, ckpt: Checkpointing | None, given: TrainSettings | None
) -> TrainSettings:
    """``settings`` with ``checkpoint_every`` from ``ckpt``, which owns it.

    Args:
        settings: the training settings of the call (see :func:`merge_settings`).
        ckpt: the call's checkpointing, or ``None`` (no checkpoint).
        given: the caller's ``training=`` settings, or ``None``.

    Raises:
        ValueError: ``training.checkpoint_every`` set with no checkpoint, or differing from
            ``checkpoint.every``.
    """
    default = TrainSettings().checkpoint_every
    own = given.checkpoint_every if given is not None else default
    if ckpt is None:
        if own != default:
            raise ValueError(
                f"training.checkpoint_every={own} does not apply: no checkpoint= was given "
                "(pass checkpoint=Checkpointing(dir, every=...))"
            )
        return settings
    if own not in (default, ckpt.every):
        raise ValueError(
            f"training.checkpoint_every={own} and checkpoint.every={ckpt.every} disagree: "
            "set it in checkpoint= only"
        )
    return dataclasses.replace(settings, checkpoint_every=ckpt.every)


def checkpointing(checkpoint: Any) -> Checkpointing | None:
    """``fit``'s ``checkpoint``: a directory or a :class:`Checkpointing` (``None``: none),
    checked to be a folder ``fit`` can write ``checkpoint.pt`` to (:func:`check_folder`).

    Args:
        checkpoint: ``fit``'s ``checkpoint=`` argument.

    Raises:
        TypeError: not a str, path, ``Checkpointing`` or ``None``.
        ValueError: a folder ``fit`` could not write to (see :func:`check_folder`).
    """
    if checkpoint is None:
        return None
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = Checkpointing(os.fspath(checkpoint))
    if not isinstance(checkpoint, Checkpointing):
        raise TypeError(
            "checkpoint must be a directory (str or path), a Checkpointing or None, got "
            f"{type(checkpoint).__name__} {checkpoint!r:.60}"
        )
    check_folder(Path(checkpoint.dir))
    return checkpoint


def check_folder(folder: Path) -> None:
    """Refuse, before any work, a checkpoint folder that writing ``checkpoint.pt`` in it
    would fail on: an existing file (e.g. the ``checkpoint.pt`` of a run, not its folder), a
    path through a file, a ``checkpoint.pt`` that is not a file, or a folder (or the nearest
    existing parent it would be made in) that cannot be written. An existing folder with a
    checkpoint in it is accepted (to resume, or to be overwritten).

    Args:
        folder: ``checkpoint.dir``.

    Raises:
        ValueError: as above; the message names ``checkpoint`` and what to pass instead.
    """
    if "\x00" in str(folder):
        raise ValueError(f"checkpoint folder {str(folder)!r:.80} cannot be used: it holds a NUL")
    try:
        _check_folder(folder)
    except OSError as err:  # a path the system refuses (e.g. a name too long)
        raise ValueError(
            f"checkpoint folder {str(folder)!r:.80} cannot be used ({err.strerror}); pass a "
            "folder path the file system accepts"
        ) from None


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"checkpoint must be a folder (fit writes {CHECKPOINT_FILE} in it), got the "
            f"existing file {str(folder)!r}; to resume from a checkpoint file, pass its folder: "
            f"checkpoint=Checkpointing({str(folder.parent)!r}, resume=True)"
        )
    file = folder / CHECKPOINT_FILE
    if file.exists() and not file.is_file():
        raise ValueError(
            f"checkpoint folder {str(folder)!r} holds a {CHECKPOINT_FILE} that is not a file; "
            "remove it or pass another folder"
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(
            f"checkpoint folder {str(folder)!r} cannot be made: {str(existing)!r} is a file, "
            "not a folder; pass a folder path"
        )
    try:  # the one test of writing that holds for every file system and user
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".sitransport-write-test-")
    except OSError as err:
        raise ValueError(
            f"checkpoint folder {str(folder)!r} cannot be written: making a file in "
            f"{str(existing)!r} fails ({err.strerror}); pass a writable folder (to resume a "
            "run stored there, copy the folder somewhere writable first)"
        ) from None
    os.close(handle)
    os.remove(probe)


def path_settings(optimize_path: Any, steps: int) -> PathSettings | None:
    """``fit``'s ``optimize_path`` as settings: ``True`` freezes the path after half the
    steps; ``False`` is none.

    Args:
        optimize_path: ``fit``'s ``optimize_path=`` argument.
        steps: the run's optimisation steps.
    """
    if isinstance(optimize_path, PathSettings):
        return optimize_path
    if optimize_path is True:
        return PathSettings(stop=freeze_step(0.5, steps))
    if optimize_path is False:
        return None
    raise TypeError(
        "optimize_path must be True, False or a PathSettings, got "
        f"{type(optimize_path).__name__} {optimize_path!r:.60}"
    )


def latent_spec(latent: Any) -> LatentSpec:
    """``fit``'s ``latent``: a number of axes, ``"pca"`` or a :class:`LatentSpec`.

    Args:
        latent: ``fit``'s ``latent=`` argument (not ``None``).
    """
    if isinstance(latent, LatentSpec):
        return latent
    if isinstance(latent, str):
        check_choice(latent, "latent", ("pca",))
        return LatentSpec(None)
    return LatentSpec(check_positive_int(latent, "latent"))


def check_fit_arguments(
    device: Any, dtype: Any, normalize: Any, ode: Any, num_workers: Any
) -> None:
    """Checks of ``fit``'s arguments that nothing downstream names as the caller did.

    Args:
        device: ``fit``'s ``device=``.
        dtype: ``fit``'s ``dtype=``.
        normalize: ``fit``'s ``normalize=``.
        ode: ``fit``'s ``ode=``.
        num_workers: ``fit``'s ``num_workers=``.
    """
    check_device(device)
    check_dtype(dtype)
    check_bool(normalize, "normalize")
    check_positive_int(num_workers, "num_workers", minimum=0)
    if ode is not None and not isinstance(ode, ODEOptions):
        raise TypeError(f"ode must be an ODEOptions or None, got {type(ode).__name__} {ode!r}")


def check_dtype(dtype: Any) -> None:
    """Refuse a network dtype other than ``torch.float32`` or ``torch.float64``.

    Args:
        dtype: the dtype of ``fit`` or ``reflow``.
    """
    if not isinstance(dtype, torch.dtype) or dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def interpolant_record(interp: Interpolant) -> dict[str, Any] | None:
    """The spec of a built-in interpolant that rebuilds as itself (``None`` for a user's)."""
    try:
        spec = interp.spec()
        same = type(get_interpolant(spec)) is type(interp)
    except (TypeError, ValueError, KeyError):
        return None
    return spec if same else None
