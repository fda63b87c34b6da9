"""Restricted unpickling: read a pickle file while refusing every global outside an allow-list.

A pickle names the functions it calls to rebuild its objects; :func:`restricted_load` lets
through only the ``(module, name)`` pairs a loader allows (numpy arrays for CIFAR-10
batches, a pandas DataFrame of numbers for the tabular sets), so loading a hostile file
never runs other code.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from collections.abc import Collection, Mapping
from typing import IO, Any

__all__ = ["restricted_load"]

Global = tuple[str, str]


def restricted_load(
    file: IO[bytes],
    allowed: Collection[Global],
    *,
    what: str,
    renames: Mapping[Global, Global] | None = None,
    unpickler: type[pickle.Unpickler] = pickle.Unpickler,
    encoding: str = "ASCII",
) -> Any:
    """Unpickle ``file`` with ``unpickler``, refusing every global not in ``allowed``.

    Python 2 names (``__builtin__``, ``copy_reg``, ...) are first mapped to Python 3 ones,
    then through ``renames`` (e.g. old pandas module paths), and only then checked.

    Args:
        file: a binary file object.
        allowed: the ``(module, name)`` globals the pickle may name.
        what: what the file should hold, for the refusal message (which also names the
            file, from ``file.name``).
        renames: ``(module, name) -> (module, name)`` applied before the check.
        unpickler: the ``pickle.Unpickler`` subclass to build on (pandas' compatibility
            unpickler for old DataFrames).
        encoding: how Python 2 ``str`` objects are decoded (``"bytes"`` keeps them bytes).

    Returns:
        The unpickled object.

    Raises:
        pickle.UnpicklingError: the pickle names a global outside ``allowed``; the message
            names it.

    Example:
        >>> import io
        >>> restricted_load(io.BytesIO(pickle.dumps({"a": [1, 2]})), set(), what="plain data")
        {'a': [1, 2]}
        >>> restricted_load(io.BytesIO(pickle.dumps(print)), set(), what="plain data")
        Traceback (most recent call last):
        ...
        _pickle.UnpicklingError: refusing to unpickle builtins.print: the file should hold only \
plain data, and loading never runs other code
    """
    renamed = renames or {}
    source = repr(str(file.name)) if hasattr(file, "name") else "the file"

    class Restricted(unpickler):  # type: ignore[misc, valid-type]  # a base chosen at run time
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            module, name = renamed.get((module, name), (module, name))
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(
                    f"refusing to unpickle {module}.{name}: {source} should hold only {what}, "
                    "and loading never runs other code"
                )
            return super().find_class(module, name)

    return Restricted(file, encoding=encoding).load()
