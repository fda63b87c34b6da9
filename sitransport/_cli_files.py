"""The files the ``sitransport`` command reads (see :mod:`sitransport.cli` for their rules):
samples from ``.npy`` and ``.csv`` files, and the conditions of ``--condition`` as labels or
features. Nothing is unpickled; every error names the flag or file."""

from __future__ import annotations

import array
import re
import sys
from pathlib import Path

import numpy as np

from sitransport._validation import as_tensor
from sitransport.ends.conditions import condition_array

__all__: list[str] = []


def read_csv(path: Path, role: str) -> np.ndarray:
    """The numbers of a ``.csv`` file in the forms of the module docstring; errors name
    ``role``, the file and the line."""
    name = f"{role} {str(path)!r}"
    try:
        with path.open(encoding="utf-8-sig") as f:
            values, width = _csv_values(f, path, name)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{name} cannot be read as UTF-8 text: {err}") from None
    if not values:
        raise ValueError(f"{name} holds no numbers")
    return np.frombuffer(values, dtype=np.float64).reshape(-1, width)


def _csv_values(lines, path: Path, name: str) -> tuple[array.array, int]:
    """All numbers of ``lines`` in one flat array, and the number of columns."""
    values = array.array("d")
    sep, width, first = None, 0, 0  # set by the first line of numbers (first: its number)
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not first and _is_header(text):
            print(
                f"sitransport: skipped the header row of {str(path)!r}: {line.strip()!r}",
                file=sys.stderr,
            )
            first = -1  # only the first line may be a header
            continue
        if first <= 0:
            first, sep = number, ";" if ";" in text else "," if "," in text else None
        fields = text.split(sep)
        if width and len(fields) != width:
            raise ValueError(
                f"{name} line {number} has {_numbers(len(fields))}, line {first} has {width} "
                f"({_separated(sep, first)})"
            )
        width = len(fields)
        try:  # the common case, fast: plain numbers
            if '"' in text or "_" in text:
                raise ValueError
            row = [float(field) for field in fields]
        except ValueError:
            row = _csv_row(fields, f"{name} line {number}", sep, first)
        values.extend(row)
    return values, width


def _csv_row(fields: list[str], where: str, sep: str | None, first: int) -> list[float]:
    """The numbers of one line, quotes dropped; an error names the column."""
    row = []
    for column, field in enumerate(fields, 1):
        text = _unquote(field.strip())
        if not _is_number(text):
            raise ValueError(f"{where}, column {column}: {_not_a_number(text, sep, first)}")
        row.append(float(text))
    return row


def _is_header(text: str) -> bool:
    """A line of names: no word of it, split at ``;``, ``,`` and spaces, is a number."""
    return not any(_is_number(_unquote(word)) for word in re.split(r"[,;\s]+", text))


def _unquote(text: str) -> str:
    """``"1.5"`` -> ``1.5``: one pair of double quotes around a whole field is dropped."""
    return text[1:-1].strip() if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _numbers(k: int) -> str:
    return f"{k} number" + "s" * (k != 1)


def _not_a_number(field: str, sep: str | None, first: int) -> str:
    """Why ``field`` was not read: the separator in use, and a decimal comma if it is one."""
    why = f"could not convert string {field!r} to a number ({_separated(sep, first)})"
    if re.fullmatch(r"[+-]?\d*,\d+", field):
        why += "; write numbers with a decimal point, not a comma"
    return why


def _separated(sep: str | None, first: int) -> str:
    seps = {";": "';'", ",": "','", None: "spaces or tabs"}
    return f"numbers are separated by {seps[sep]}, as on line {first}"


def _is_number(text: str) -> bool:
    """Whether ``float`` reads ``text``, without the underscores it allows (``1_000``)."""
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text


def read_file(path: Path, role: str) -> np.ndarray:
    """The array in a ``.npy`` or ``.csv`` file; errors name ``role`` and the file."""
    if not path.is_file():
        raise ValueError(f"{role}: no such file: {str(path)!r}")
    name = f"{role} {str(path)!r}"
    x = read_csv(path, role) if path.suffix == ".csv" else load_npy(path, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must hold an array of shape (n, d), got {x.shape}")
    if x.dtype not in (np.float32, np.float64):  # the hint names no file: no code from a name
        raise TypeError(
            f"{name} must have a floating dtype (float32 or float64), got dtype {x.dtype}; "
            "save the array as floats, e.g. np.save(path, x.astype(np.float64))"
        )
    as_tensor(x, name, min_samples=2)  # a clear error for NaN, too few rows
    return x


#: The flag whose files :func:`read_condition` reads, named in its errors.
CONDITION_FLAG = "--condition"


def load_npy(path: Path, name: str) -> np.ndarray:
    """The array of a ``.npy`` file, never unpickled; errors name the argument ``name``."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(
            f"{name} is not a readable .npy array: {type(err).__name__}: {err}"
        ) from None


def read_condition(path: Path, role: str = CONDITION_FLAG) -> np.ndarray:
    """Conditions from a ``.npy`` or ``.csv`` file (see the module docstring): labels
    ``(n,)`` or float features ``(n, k)``; errors name ``role`` and the file."""
    name = f"{role} {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{role}: no such file: {str(path)!r}")
    if path.suffix == ".csv":
        c = read_condition_csv(path, role)
    elif path.suffix == ".npy":
        c = load_npy(path, name)
    else:
        raise ValueError(f"{name} must be a .npy or .csv file")
    if getattr(c, "ndim", 0) not in (1, 2):
        raise ValueError(
            f"{name} must hold labels (n,) or features (n, k), got shape {np.shape(c)}"
        )
    try:
        return condition_array(c, name)
    except (TypeError, ValueError) as err:
        raise ValueError(str(err)) from None


def read_condition_csv(path: Path, role: str) -> np.ndarray:
    """A ``.csv`` of conditions: one column of integers or words (labels), else numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{role} {str(path)!r} cannot be read as UTF-8 text: {err}") from None
    rows = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    rows = [r for r in rows if r]
    if rows and not any(re.search(r"[,;\s]", r) for r in rows):  # one column
        fields = [_unquote(r) for r in rows]
        if all(re.fullmatch(r"[+-]?\d+", f) for f in fields[1:]):
            if not re.fullmatch(r"[+-]?\d+", fields[0]):  # a header, as for numbers
                fields = fields[1:]
            if all(re.fullmatch(r"[+-]?\d+", f) for f in fields):
                return np.array([int(f) for f in fields], dtype=np.int64)
        if not all(_is_number(f) for f in fields[1:]):
            return np.array(fields)
    return read_csv(path, role)


def condition_value(text: str) -> object:
    """``--condition`` of ``sample``: a file of rows, a label (an integer or a word) or a
    feature vector (comma-separated numbers)."""
    if Path(text).suffix in (".npy", ".csv"):
        return read_condition(Path(text))
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(text)
    parts = [p.strip() for p in text.split(",")]
    if all(_is_number(p) for p in parts):
        return np.array([float(p) for p in parts])
    return text
