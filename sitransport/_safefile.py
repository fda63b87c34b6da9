"""Files with no pickle in them: a tree of plain data and tensors as one safetensors file.

A file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file (an 8-byte header
length, a JSON header giving each tensor's dtype, shape and byte offsets, then the bytes):
its tensors are the tree's tensors, and its ``__metadata__`` holds

- ``format``: ``"sitransport-file"``, ``version``: ``"2"`` (version 1 was a checked torch
  record, read by :func:`sitransport._io.read_checked`);
- ``content``: the tree as JSON, each tensor replaced by ``{"$tensor": name}`` and each
  non-finite float by ``{"$float": "nan" | "inf" | "-inf"}``;
- ``sha256``: the SHA-256 of the content and of every tensor's name, dtype, shape and bytes.

Reading never runs code and never allocates more than the file holds: the safetensors reader
checks every tensor's offsets against the file's size (tensors are contiguous by
construction), the JSON is at most :data:`MAX_HEADER` bytes, nests at most
:data:`~sitransport._tree.MAX_DEPTH` deep and has no shared references, and each tensor is
used once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from sitransport._io import atomic_write
from sitransport._tree import Budget, TreeError, bounded_copy
from sitransport.errors import CorruptFileError

__all__ = [
    "FILE_FORMAT",
    "FILE_VERSION",
    "MAX_HEADER",
    "MAX_NODES",
    "is_safe_file",
    "read_tree",
    "write_tree",
]

FILE_FORMAT = "sitransport-file"
FILE_VERSION = 2
#: The most bytes a file's JSON header may have (a flow's: a few kB, a U-Net's tensor table
#: about 50 kB; safetensors itself allows 100 MB).
MAX_HEADER = 4 * 2**20
#: The most values a written tree may hold, counted each time a shared part is reached.
MAX_NODES = 2**17
_TENSOR, _FLOAT = "$tensor", "$float"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


# ------------------------------------------------------------------------------ writing
def write_tree(tree: Any, path: str | os.PathLike) -> None:
    """Write ``tree`` (dicts with string keys, lists, plain leaves and tensors) atomically to
    ``path`` as a checksummed safetensors file (tuples are written as lists).

    Raises:
        TypeError, ValueError, FileNotFoundError: a bad ``path``
            (:func:`sitransport._io.check_save_path`).
        ValueError: ``tree`` holds another type, a non-string key, a dict that could be read
            as a marker (a single key ``"$tensor"`` or ``"$float"``), contains itself, nests
            deeper than :data:`~sitransport._tree.MAX_DEPTH` or holds more than
            :data:`MAX_NODES` values.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     write_tree({"w": torch.ones(2), "n": [1, float("nan")]}, Path(tmp) / "x.sit")
        ...     read_tree(Path(tmp) / "x.sit")
        {'w': tensor([1., 1.]), 'n': [1, nan]}
    """
    _check_writable(tree)
    tensors: dict[str, torch.Tensor] = {}
    content = json.dumps(_encode(tree, "", tensors), allow_nan=False)
    metadata = {
        "format": FILE_FORMAT,
        "version": str(FILE_VERSION),
        "content": content,
        "sha256": _digest(content, tensors),
    }

    def write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())

    atomic_write(path, write)


def _check_writable(tree: Any) -> None:
    """Refuse (``ValueError``) what a reader would refuse: a structure that contains itself,
    nests too deep, or holds more than :data:`MAX_NODES` values or another type."""
    bounded_copy(tree, Budget(nodes=MAX_NODES, tensor_bytes=2**62))


def _encode(value: Any, where: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` (checked by :func:`_check_writable`) as JSON data, its tensors moved to
    ``tensors``."""
    if isinstance(value, torch.Tensor):
        name = where.lstrip("/") or "tensor"
        if name in tensors:
            name = f"{name}#{len(tensors)}"
        tensors[name] = _owned(value)
        return {_TENSOR: name}
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT: repr(value)}
    if not isinstance(value, (dict, list, tuple)):
        return value
    if not isinstance(value, dict):
        return [_encode(v, f"{where}/{i}", tensors) for i, v in enumerate(value)]
    if not all(isinstance(k, str) for k in value):
        raise ValueError(f"cannot write a dict with keys other than strings at {where}")
    if len(value) == 1 and next(iter(value)) in (_TENSOR, _FLOAT):
        raise ValueError(f"cannot write a dict whose only key is {next(iter(value))!r} ({where})")
    return {k: _encode(v, f"{where}/{k}", tensors) for k, v in value.items()}


def _owned(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on the CPU, contiguous and alone in its storage (what safetensors writes)."""
    out = tensor.detach().cpu().contiguous()
    if out.untyped_storage().nbytes() != out.numel() * out.element_size():
        out = out.clone()
    return out


def _digest(content: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(content.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"\0{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


# ------------------------------------------------------------------------------ reading
def is_safe_file(path: Path) -> bool:
    """Whether ``path`` starts like a file of :func:`write_tree` (not a torch zip record).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     torch.save({"a": 1}, Path(tmp) / "old.pt")
        ...     is_safe_file(Path(tmp) / "old.pt")
        False
    """
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and not head.startswith(b"PK") and head[8:9] == b"{"


def read_tree(path: Path, what: str = "sitransport file") -> Any:
    """The tree written by :func:`write_tree` at ``path``, verified (tensors on the CPU).

    Raises:
        CorruptFileError: not such a file, truncated, of another format version, failing its
            checksum, or holding a structure no writer makes. The message names the file.
        OSError: the file cannot be opened.
    """
    name = repr(str(path))
    metadata = _metadata(path, name, what)
    content = metadata.get("content")
    if not isinstance(content, str):
        raise CorruptFileError(f"{name} is a damaged {what}: it has no content")
    tensors = _tensors(path, name, what)
    digest = _digest(content, tensors)
    if digest != metadata.get("sha256"):
        raise CorruptFileError(
            f"{name} is a corrupted {what}: the SHA-256 of its content is {digest}, but the "
            f"file records {metadata.get('sha256')!r:.80} (a changed or damaged file)"
        )
    try:
        tree = bounded_copy(_parse(content), Budget(len(content) + 16, 0))
        return _decode(tree, tensors, set(), "")
    except (TreeError, ValueError, RecursionError) as err:
        raise CorruptFileError(f"{name} is a damaged {what}: {err}") from None


def _metadata(path: Path, name: str, what: str) -> dict[str, Any]:
    """The ``__metadata__`` of the file's header, read within :data:`MAX_HEADER` bytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 2 <= n <= min(MAX_HEADER, size - 8):
            raise CorruptFileError(
                f"{name} is not a readable {what}: its header claims {n} bytes, the file "
                f"has {size} (the limit is {MAX_HEADER})"
            )
        raw = f.read(n)
    try:
        header = _parse(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise CorruptFileError(f"{name} is not a readable {what}: {err}") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FILE_FORMAT:
        raise CorruptFileError(f"{name} is not a {what} (no {FILE_FORMAT!r} header)")
    if metadata.get("version") != str(FILE_VERSION):
        raise CorruptFileError(
            f"{name} is a {what} of file version {metadata.get('version')!r:.40}; this "
            f"sitransport reads file versions 1 and {FILE_VERSION}"
        )
    return metadata


def _tensors(path: Path, name: str, what: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, ValueError, TypeError, RuntimeError) as err:
        raise CorruptFileError(
            f"{name} is not a readable {what} (truncated or damaged): {err}"
        ) from None


def _parse(text: str) -> Any:
    """JSON without ``NaN``/``Infinity`` tokens or numbers that overflow a float."""

    def refuse(token: str) -> Any:
        raise ValueError(f"the JSON holds the non-standard number {token}")

    def finite(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):
            raise ValueError(f"the JSON holds a number out of range: {token[:40]}")
        return value

    return json.loads(text, parse_constant=refuse, parse_float=finite)


def _decode(value: Any, tensors: dict[str, torch.Tensor], used: set[str], where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, used, f"{where}/{i}") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and _TENSOR in value:
        return _tensor_of(value[_TENSOR], tensors, used, where)
    if len(value) == 1 and _FLOAT in value:
        if value[_FLOAT] not in _NONFINITE:
            raise ValueError(f"{where} holds the float marker {value[_FLOAT]!r:.40}")
        return _NONFINITE[value[_FLOAT]]
    out = {k: _decode(v, tensors, used, f"{where}/{k}") for k, v in value.items()}
    if not where and set(tensors) - used:
        raise ValueError(f"it stores tensors nothing refers to: {sorted(set(tensors) - used)[:3]}")
    return out


def _tensor_of(key: Any, tensors: dict[str, torch.Tensor], used: set[str], where: str) -> Any:
    if not isinstance(key, str) or key not in tensors:
        raise ValueError(f"{where} refers to a tensor the file does not store: {key!r:.60}")
    if key in used:
        raise ValueError(f"{where} refers to the tensor {key!r:.60} a second time")
    used.add(key)
    return tensors[key]
