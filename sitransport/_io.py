"""File plumbing shared by flows and checkpoints: checked atomic writes, safe reads, plain data.

Every file is written as an outer ``torch.save`` record
``{"format": "sitransport-checked", "version": 1, "sha256": hex, "payload": uint8 tensor}``
whose ``payload`` holds the bytes of ``torch.save(obj)`` and ``sha256`` their SHA-256. Both
layers are read with ``torch.load(weights_only=True)``: no code from a file is ever run, and a
flipped byte anywhere in the payload is detected (torch itself does not check the zip CRC).
Files written before checksums (a bare ``torch.save(obj)``) are still read, unchecked.

Writes go to a temporary file in the target's folder, are flushed to disk (``fsync``), then
renamed over the target: a crash never leaves a half-written file under the final name.
Checkpoints also keep the previous one as ``<name>.prev`` and fall back to it when the newest
is unreadable.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitransport._tree import Budget, TreeError, bounded_copy, check_layout
from sitransport.errors import CorruptFileError

__all__ = [
    "CHECKED_FORMAT",
    "MAX_NODES",
    "MAX_NUMBER",
    "MAX_SIZE",
    "atomic_save",
    "atomic_write",
    "check_load_path",
    "check_map_location",
    "check_save_path",
    "check_sizes",
    "load_checkpoint",
    "module_mismatch",
    "previous_checkpoint",
    "read_checked",
    "save_checkpoint",
    "state_mismatch",
    "weights_problem",
]

#: ``format`` of the outer record that carries a payload and its SHA-256.
CHECKED_FORMAT = "sitransport-checked"
_CHECKED_VERSION = 1
#: What a training checkpoint holds at least (other keys may be added).
_CHECKPOINT_KEYS = ("generator", "net", "opt", "path_generator", "record", "sched", "step")


# --------------------------------------------------------------------------- arguments
def check_load_path(path: Any) -> Path:
    """``path`` as a :class:`~pathlib.Path` to an existing file.

    Raises:
        TypeError: ``path`` is not a string or path-like.
        ValueError: ``path`` is empty or names a folder.
        FileNotFoundError: no file at ``path`` (the message names it).

    Example:
        >>> check_load_path("")
        Traceback (most recent call last):
        ...
        ValueError: path must name a file, got an empty path ''
    """
    out = _file_path(path)
    if not out.is_file():
        raise FileNotFoundError(f"path: no sitransport file at {str(out)!r}")
    return out


def _file_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if os.fspath(path) in ("", b""):
        raise ValueError("path must name a file, got an empty path ''")
    out = Path(os.fsdecode(path))
    if out.is_dir():
        raise ValueError(f"path must name a file, got the folder {str(out)!r}")
    return out


def check_save_path(path: Any) -> Path:
    """``path`` as a :class:`~pathlib.Path` to a file that can be written in an existing folder.

    Raises:
        TypeError: ``path`` is not a string or path-like.
        ValueError: ``path`` is empty or names a folder.
        FileNotFoundError: the folder does not exist (the message names it).

    Example:
        >>> check_save_path("flow.sit").name
        'flow.sit'
    """
    out = _file_path(path)
    folder = out.parent
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise FileNotFoundError(f"cannot write {str(out)!r}: the folder {str(folder)!r} {what}")
    return out


def check_map_location(map_location: Any) -> torch.device:
    """``map_location`` as a :class:`torch.device` that exists on this machine.

    Raises:
        TypeError: not a string or :class:`torch.device`.
        ValueError: not a device name, ``"meta"``, or a device this machine does not have.

    Example:
        >>> check_map_location("cpu")
        device(type='cpu')
    """
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(
            f"map_location must be a device name or torch.device, got {type(map_location).__name__}"
        )
    try:
        device = torch.device(map_location)
    except RuntimeError:
        raise ValueError(
            f"map_location must be a device such as 'cpu' or 'cuda:0', got {map_location!r}"
        ) from None
    if device.type == "meta":
        raise ValueError("map_location must be a device that holds data, got 'meta'")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # AssertionError: torch built without CUDA
        first = (str(err).splitlines() or [""])[0][:200]  # torch lists every backend
        raise ValueError(
            f"map_location={map_location!r} is not available on this machine: {first}"
        ) from None
    return device


# ------------------------------------------------------------------------------ writing
def atomic_save(obj: Any, path: str | os.PathLike, *, keep_previous: bool = False) -> None:
    """Write ``obj`` (tensors and plain data) with its SHA-256, atomically, to ``path``
    (:func:`atomic_write` of the checked torch record).

    Raises:
        TypeError, ValueError, FileNotFoundError: a bad ``path`` (see :func:`check_save_path`).

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     atomic_save({"w": torch.ones(2)}, Path(tmp) / "x.pt")
        ...     read_checked(Path(tmp) / "x.pt", "cpu")
        {'w': tensor([1., 1.])}
    """
    atomic_write(path, lambda tmp: _write_checked(obj, tmp), keep_previous=keep_previous)


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], None], *, keep_previous: bool = False
) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``write`` must flush the file to disk (``fsync``) before it returns. With
    ``keep_previous``, the file it replaces is kept as :func:`previous_checkpoint` (a hard
    link where the file system allows, so ``path`` never goes missing). Temporary files left
    by a process that was killed while saving to the same ``path`` are removed.

    Raises:
        TypeError, ValueError, FileNotFoundError: a bad ``path`` (see :func:`check_save_path`).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     atomic_write(Path(tmp) / "x.txt", lambda f: Path(f).write_text("hi"))
        ...     (Path(tmp) / "x.txt").read_text()
        'hi'
    """
    path = check_save_path(path)
    _remove_orphans(path)
    with _temporary(path) as tmp:
        write(tmp)
        # the mode follows the umask, like any file open() creates (mkstemp makes it 0600,
        # and a writer may create the file anew)
        os.chmod(tmp, 0o666 & ~_umask())
        if keep_previous and path.is_file():
            _keep_previous(path)
        os.replace(tmp, path)
    _fsync_folder(path.parent)


def save_checkpoint(obj: Any, path: str | os.PathLike) -> None:
    """:func:`atomic_save` keeping the file it replaces as :func:`previous_checkpoint`.

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     for step in (1, 2):
        ...         save_checkpoint({"step": step}, Path(tmp) / "ckpt.pt")
        ...     sorted(p.name for p in Path(tmp).iterdir())
        ['ckpt.pt', 'ckpt.pt.prev']
    """
    atomic_save(obj, path, keep_previous=True)


def previous_checkpoint(path: str | os.PathLike) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint before ``path``: ``<name>.prev``.

    Example:
        >>> previous_checkpoint("out/checkpoint.pt").name
        'checkpoint.pt.prev'
    """
    path = Path(path)
    return path.with_name(path.name + ".prev")


def _temporary_prefix(path: Path, pid: int) -> str:
    return f".{path.name}.{pid}."


def _remove_orphans(path: Path) -> None:
    """Remove the temporary files of saves to ``path`` whose process no longer exists (a save
    killed by SIGKILL or a power cut cannot clean up after itself)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours (EPERM), or no signals here: keep its file
        return True
    return True


@contextlib.contextmanager
def _temporary(path: Path) -> Iterator[str]:
    """A hidden temporary file beside ``path`` named with this process id, removed on any
    exception (also Ctrl-C)."""
    prefix = _temporary_prefix(path, os.getpid())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        os.close(fd)
        yield tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask. Reading it means setting it: it is set to the strictest mask, 0o077,
    for that instant (a file another thread creates meanwhile is never more open), then
    restored."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _write_checked(obj: Any, tmp: str) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()
    record = {
        "format": CHECKED_FORMAT,
        "version": _CHECKED_VERSION,
        "sha256": hashlib.sha256(data).hexdigest(),
        "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8),
    }
    del data  # release the view so the buffer can be freed
    with open(tmp, "wb") as f:
        torch.save(record, f)
        f.flush()
        os.fsync(f.fileno())


def _keep_previous(path: Path) -> None:
    prev = previous_checkpoint(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(prev)
    try:
        os.link(path, prev)
    except OSError:  # no hard links on this file system: move it (path briefly missing)
        os.replace(path, prev)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------ reading
def read_checked(path: Path, map_location: Any, what: str = "sitransport file") -> Any:
    """The object written by :func:`atomic_save` (or a bare ``torch.save``) at ``path``.

    Only tensors and plain data are loaded (``weights_only=True``); the payload's SHA-256 is
    verified when the file carries one.

    Args:
        path: an existing file.
        map_location: device for the tensors (checked by :func:`check_map_location`).
        what: how messages call the file (``"sitransport file"``, ``"checkpoint"``).

    Raises:
        CorruptFileError: truncated, corrupted (checksum mismatch), holding objects other
            than tensors and plain data, or not a torch file at all. The message names the file.
        OSError: the file cannot be opened (permissions, a folder, ...).

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     torch.save({"old": 1}, Path(tmp) / "old.pt")  # no checksum: read as it is
        ...     read_checked(Path(tmp) / "old.pt", "cpu")
        {'old': 1}
    """
    size = path.stat().st_size
    outer = _load_file(path, "cpu", what)
    if not (isinstance(outer, dict) and outer.get("format") == CHECKED_FORMAT):
        if torch.device(map_location).type != "cpu":  # an older file: tensors to the device
            outer = _load_file(path, map_location, what)
        return _bounded(outer, size, path, what)
    data = _verified_bytes(outer, path, what, size)
    return _bounded(_torch_load(io.BytesIO(data), path, map_location, what), size, path, what)


def _verified_bytes(outer: dict[str, Any], path: Path, what: str, size: int) -> bytes:
    """The payload's bytes, once its layout is known to lie within the file's ``size`` (an
    expanded view of a few stored bytes would otherwise be copied in full)."""
    payload, digest = outer.get("payload"), outer.get("sha256")
    if not (
        isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8 and payload.dim() == 1
    ):
        raise CorruptFileError(f"{str(path)!r} is a damaged {what}: it has no payload")
    try:
        check_layout(payload, "payload")
    except TreeError as err:
        raise CorruptFileError(f"{str(path)!r} is a damaged {what}: {err}") from None
    if payload.numel() > size:
        raise CorruptFileError(
            f"{str(path)!r} is a damaged {what}: its payload claims {payload.numel()} bytes, "
            f"the file has {size}"
        )
    data = payload.numpy().tobytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise CorruptFileError(
            f"{str(path)!r} is a corrupted {what}: the SHA-256 of its content is {actual}, "
            f"but the file records {digest!r} (a changed or damaged file)"
        )
    return data


def _bounded(obj: Any, size: int, path: Path, what: str) -> Any:
    """``obj`` copied by :func:`~sitransport._tree.bounded_copy` within a budget that a file
    of ``size`` bytes can honestly fill: at most ``size`` bytes of tensors, and one value
    per byte (plus a margin): shared references cannot make a small file large."""
    try:
        return bounded_copy(obj, Budget(nodes=10_000 + size, tensor_bytes=size))
    except TreeError as err:
        raise CorruptFileError(f"{str(path)!r} is a damaged {what}: {err}") from None


def _load_file(path: Path, map_location: Any, what: str) -> Any:
    with open(path, "rb") as f:  # errors opening it (permissions, ...) are not its content's
        return _torch_load(f, path, map_location, what)


def _torch_load(source: Any, path: Path, map_location: Any, what: str) -> Any:
    _check_zip(source, path, what)
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except pickle.UnpicklingError:  # never quote torch's advice to disable weights_only
        raise CorruptFileError(
            f"{str(path)!r} is not a readable {what}: it holds objects other than tensors and "
            "plain data, which sitransport refuses to load (no code from it was run)"
        ) from None
    except Exception as err:  # torch raises many types for damaged files
        raise CorruptFileError(
            f"{str(path)!r} is not a readable {what} (truncated, corrupted or another "
            f"format): {type(err).__name__}: {err}"
        ) from None


#: The most records a torch file of the library holds (a flow's: 10 to 50).
_MAX_RECORDS = 100_000


def _check_zip(source: Any, path: Path, what: str) -> None:
    """A torch file is a zip archive whose records are stored uncompressed within its size:
    torch itself inflates compressed records, so a small crafted file could unpack to any
    size."""
    start = source.tell()
    size = source.seek(0, os.SEEK_END)
    source.seek(start)
    try:
        with zipfile.ZipFile(source) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as err:
        raise CorruptFileError(
            f"{str(path)!r} is not a readable {what} (truncated, corrupted or another "
            f"format): {err}"
        ) from None
    finally:
        source.seek(start)
    stored = sum(r.file_size for r in records)
    packed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
    if packed or stored > size or len(records) > _MAX_RECORDS:
        problem = (
            f"the compressed record {packed[0]!r:.80}"
            if packed
            else f"{len(records)} records of {stored} bytes in {size} bytes"
        )
        raise CorruptFileError(f"{str(path)!r} is a damaged {what}: it holds {problem}")


def load_checkpoint(path: str | os.PathLike, map_location: Any) -> dict[str, Any]:
    """A training checkpoint written by :func:`save_checkpoint`, verified.

    When ``path`` is unreadable, fails its checksum or misses a part of a checkpoint, the
    previous checkpoint (:func:`previous_checkpoint`) is used instead, with a warning naming
    both files.

    Raises:
        CorruptFileError: neither ``path`` nor its previous checkpoint is usable; the message
            names both files.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ckpt = Path(tmp) / "ckpt.pt"
        ...     state = dict.fromkeys(_CHECKPOINT_KEYS, 0)
        ...     save_checkpoint(dict(state, step=1), ckpt)
        ...     save_checkpoint(dict(state, step=2), ckpt)
        ...     _ = ckpt.write_bytes(b"garbage")
        ...     with warnings.catch_warnings(record=True) as caught:
        ...         warnings.simplefilter("always")
        ...         step = load_checkpoint(ckpt, "cpu")["step"]
        >>> step, "falling back" in str(caught[0].message)
        (1, True)
    """
    path, prev = Path(path), previous_checkpoint(path)
    try:
        return _read_checkpoint(path, map_location)
    except (CorruptFileError, FileNotFoundError) as err:
        if not prev.is_file():
            raise
        try:
            state = _read_checkpoint(prev, map_location)
        except CorruptFileError as err_prev:
            raise CorruptFileError(
                f"{err}; the previous checkpoint is unusable too: {err_prev}"
            ) from None
        warnings.warn(
            f"checkpoint {str(path)!r} is unusable ({err}); falling back to the previous "
            f"checkpoint {str(prev)!r}",
            stacklevel=2,
        )
        return state


def _read_checkpoint(path: Path, map_location: Any) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    state = read_checked(path, map_location, "checkpoint")
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CorruptFileError(
            f"{str(path)!r} is not a sitransport checkpoint: it has no {', '.join(missing)}"
        )
    return state


# --------------------------------------------------------------------------- structure
def module_mismatch(module: nn.Module, rebuilt: nn.Module) -> str | None:
    """How ``module`` differs from ``rebuilt`` (what its saved description gives back), in
    the class of a submodule or the shape of a tensor; ``None`` if they match.

    Example:
        >>> module_mismatch(nn.Linear(2, 3), nn.Linear(2, 3)) is None
        True
        >>> module_mismatch(nn.Sequential(nn.Tanh()), nn.Sequential(nn.ReLU()))
        "submodule '0' is a Tanh where its description gives a ReLU"
    """
    ours, theirs = dict(module.named_modules()), dict(rebuilt.named_modules())
    for name, sub in ours.items():
        other = theirs.get(name)
        if type(sub) is not type(other):
            where = f"submodule {name!r}" if name else "it"
            given = type(other).__name__ if other is not None else "nothing"
            return f"{where} is a {type(sub).__qualname__} where its description gives a {given}"
    if len(theirs) != len(ours):
        return f"its description gives {len(theirs)} submodules, it has {len(ours)}"
    return state_mismatch(module.state_dict(), rebuilt)


def state_mismatch(state: dict[str, Any], module: nn.Module) -> str | None:
    """How a stored ``state`` dict differs from ``module.state_dict()`` in names or shapes
    (``module`` may live on the ``meta`` device); ``None`` if they match.

    Example:
        >>> state_mismatch({"weight": torch.zeros(3, 2)}, nn.Linear(2, 3, bias=False)) is None
        True
        >>> state_mismatch({"weight": torch.zeros(3, 4)}, nn.Linear(2, 3, bias=False))
        "'weight' has shape (3, 4), expected (3, 2)"
    """
    expected = module.state_dict()
    if set(state) != set(expected):
        extra, missing = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
        return f"tensors differ: unexpected {extra[:3]}, missing {missing[:3]}"
    for name, ref in expected.items():
        value = state[name]
        if not isinstance(value, torch.Tensor):
            return f"{name!r} is a {type(value).__name__}, not a tensor"
        if value.shape != ref.shape:
            return f"{name!r} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}"
    return None


def weights_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with stored weights (tensors, as :func:`state_mismatch` checked): not
    real floating point, of several dtypes, or holding NaN or infinity; ``None`` if nothing.

    Example:
        >>> weights_problem({"w": torch.zeros(2), "b": torch.zeros(1)}) is None
        True
        >>> weights_problem({"w": torch.zeros(2, dtype=torch.complex64)})
        "'w' is complex64, not real floating point"
        >>> weights_problem({"w": torch.tensor([0.0, float("nan")])})
        "'w' holds NaN or infinite values"
    """
    for name, value in state.items():
        if not value.is_floating_point():
            return f"{name!r} is {str(value.dtype).removeprefix('torch.')}, not real floating point"
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values()})
    if len(dtypes) > 1:
        return f"they mix the dtypes {', '.join(dtypes)}"
    for name, value in state.items():
        if not bool(torch.isfinite(value).all()):
            return f"{name!r} holds NaN or infinite values"
    return None


#: No stored size (a width, a dimension, a number of terms) is larger than this.
MAX_SIZE = 2**24
#: No stored float of a description is larger than this: its square stays a float32.
MAX_NUMBER = 1e19
#: A stored description (of a network, a path) holds at most this many values.
MAX_NODES = 100_000


def check_sizes(
    spec: Any, what: str, layer_keys: tuple[str, ...] = (), budget: list[int] | None = None
) -> int:
    """Every integer of a stored description is at most :data:`MAX_SIZE` and every float
    finite and at most :data:`MAX_NUMBER` in size; returns the
    number of layers the description asks for (the counts under ``layer_keys`` times list
    lengths, summed over nested descriptions), which a reader compares with the tensors
    stored. The walk visits at most :data:`MAX_NODES` values (a shared list nested in itself
    would otherwise take exponential time).

    Example:
        >>> check_sizes({"width": 8, "depth": 3}, "network", ("depth",))
        3
        >>> check_sizes({"width": 2**30}, "network")
        Traceback (most recent call last):
        ...
        ValueError: stored network holds the size 1073741824, above 16777216
    """
    left = [MAX_NODES] if budget is None else budget
    left[0] -= 1
    if left[0] < 0:
        raise ValueError(f"stored {what} holds more than {MAX_NODES} values")
    if isinstance(spec, (list, tuple)):
        return sum(check_sizes(v, what, layer_keys, left) for v in spec)
    if isinstance(spec, int) and not isinstance(spec, bool) and abs(spec) > MAX_SIZE:
        raise ValueError(f"stored {what} holds the size {spec}, above {MAX_SIZE}")
    if isinstance(spec, float) and not abs(spec) <= MAX_NUMBER:  # NaN fails too
        raise ValueError(
            f"stored {what} holds the number {spec}, not finite or above {MAX_NUMBER:g}"
        )
    if not isinstance(spec, dict):
        return 0
    layers, nested = 1, 0
    for key, value in spec.items():
        nested += check_sizes(value, what, layer_keys, left)
        if key in layer_keys and isinstance(value, int):
            layers *= max(value, 1)
        elif isinstance(value, (list, tuple)):
            layers *= max(len(value), 1)
    return layers + nested
