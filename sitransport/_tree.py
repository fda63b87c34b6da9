"""Bounded trees of plain data and tensors: what a file hands to the library after loading.

A pickle (even one read with ``torch.load(weights_only=True)``) can rebuild structures that
are small on disk and huge in use: a list that holds itself, a list ``L = [L, L]`` nested 40
deep (2**40 elements when walked), a tensor viewed with stride 0 over a one-element storage
(``torch.zeros(1).expand(10**9)``). :func:`bounded_copy` walks such an object once, within a
budget of nodes and of tensor bytes, and returns a copy made of fresh dicts and lists that
shares nothing: every later walk over it is linear in its size, and no tensor in it reads
beyond its storage or overlaps another use of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["MAX_DEPTH", "Budget", "TreeError", "bounded_copy", "check_layout", "plain"]

#: Leaves a tree may hold besides tensors.
_LEAVES = (str, int, float, bool, type(None))


class TreeError(ValueError):
    """A tree that is not plain, bounded and acyclic; the message says what was found where."""


@dataclass
class Budget:
    """How much a walk may visit: ``nodes`` (containers and leaves, each visit counted, so a
    shared sub-tree counts each time it is reached) and ``tensor_bytes`` (the bytes of all
    tensors, each counted at its own size)."""

    nodes: int
    tensor_bytes: int
    _seen_nodes: int = field(default=0, init=False)
    _seen_bytes: int = field(default=0, init=False)

    def visit(self, where: str) -> None:
        self._seen_nodes += 1
        if self._seen_nodes > self.nodes:
            raise TreeError(
                f"it holds more than {self.nodes} values (reached at {where}): a structure "
                "this large, or shared references expanding to it, is not a sitransport file"
            )

    def take(self, tensor: torch.Tensor, where: str) -> None:
        self._seen_bytes += tensor.numel() * tensor.element_size()
        if self._seen_bytes > self.tensor_bytes:
            raise TreeError(
                f"its tensors hold more than {self.tensor_bytes} bytes (reached at {where}), "
                "more than the file stores"
            )


def bounded_copy(tree: Any, budget: Budget) -> Any:
    """A copy of ``tree`` (dicts, lists, tuples, plain leaves and tensors) within ``budget``,
    sharing no container: dicts become plain ``dict`` (insertion order kept), lists ``list``,
    tuples ``tuple``; tensors are checked by :func:`check_layout` and kept as they are.

    Raises:
        TreeError: a container that contains itself, more nodes or tensor bytes than the
            budget, a value of another type, or a tensor that reads beyond its storage.

    Example:
        >>> shared = [1, 2]
        >>> bounded_copy({"a": shared, "b": shared}, Budget(100, 0))
        {'a': [1, 2], 'b': [1, 2]}
        >>> loop = []
        >>> loop.append(loop)
        >>> bounded_copy(loop, Budget(100, 0))
        Traceback (most recent call last):
        ...
        sitransport._tree.TreeError: it contains itself at [0]
    """
    return _copy(tree, budget, "", set())


#: Containers nest at most this deep in a file (a flow's payload: about 6).
MAX_DEPTH = 64


def _copy(value: Any, budget: Budget, where: str, open_ids: set[int]) -> Any:
    budget.visit(where or "the top")
    if len(open_ids) > MAX_DEPTH:
        raise TreeError(f"it nests containers more than {MAX_DEPTH} deep (at {where})")
    if isinstance(value, torch.Tensor):
        check_layout(value, where or "the top")
        budget.take(value, where)
        return value
    if isinstance(value, _LEAVES):
        return value
    if not isinstance(value, (dict, list, tuple)):
        raise TreeError(f"it holds a {type(value).__name__} at {where or 'the top'}")
    if id(value) in open_ids:
        raise TreeError(f"it contains itself at {where or 'the top'}")
    open_ids.add(id(value))
    try:
        if isinstance(value, dict):
            return {k: _copy(v, budget, f"{where}[{k!r:.40}]", open_ids) for k, v in value.items()}
        items = [_copy(v, budget, f"{where}[{i}]", open_ids) for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    finally:
        open_ids.discard(id(value))


def check_layout(tensor: torch.Tensor, where: str) -> None:
    """``tensor`` reads only its own storage, each element once: every dimension of more
    than one element has a stride >= 1, the strides (sorted) nest without overlap, and the
    last element lies within the storage. Contiguous tensors pass; an expanded view
    (stride 0) or an ``as_strided`` view that revisits elements does not.

    Raises:
        TreeError: a tensor laid out otherwise (the message names ``where``).

    Example:
        >>> check_layout(torch.zeros(3, 2).t(), "x")  # a transposed view: fine
        >>> check_layout(torch.zeros(1).expand(10), "x")
        Traceback (most recent call last):
        ...
        sitransport._tree.TreeError: the tensor at x of shape (10,) is a view that repeats \
its elements (strides (0,)), not stored data
    """
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise TreeError(f"the tensor at {where} is not a plain dense tensor ({tensor.layout})")
    if tensor.numel() == 0:
        return
    dims = sorted(
        (stride, size)
        for size, stride in zip(tensor.shape, tensor.stride(), strict=True)
        if size > 1
    )
    span = 1  # elements covered by the dimensions with smaller strides
    for stride, size in dims:
        if stride < span:
            raise TreeError(
                f"the tensor at {where} of shape {tuple(tensor.shape)} is a view that repeats "
                f"its elements (strides {tuple(tensor.stride())}), not stored data"
            )
        span = stride * size
    last = tensor.storage_offset() + sum((size - 1) * stride for stride, size in dims)
    stored = tensor.untyped_storage().nbytes() // tensor.element_size()
    if last >= stored:
        raise TreeError(
            f"the tensor at {where} of shape {tuple(tensor.shape)} reads element {last} of a "
            f"storage of {stored}"
        )


def plain(value: Any, limit: int = 2**20) -> Any:
    """``value`` as plain data (numbers, strings, lists, dicts; other objects as their repr),
    for records such as a flow's history attributes and a fit's settings.

    Args:
        value: the record.
        limit: the most values it may hold, counted each time a shared part is reached.

    Raises:
        ValueError: ``value`` contains itself, nests more than :data:`MAX_DEPTH` deep or
            holds more than ``limit`` values.

    Example:
        >>> plain({"a": (1, 2), "b": object})
        {'a': [1, 2], 'b': "<class 'object'>"}
    """
    return _plain(value, frozenset(), [limit])


def _plain(value: Any, open_ids: frozenset[int], left: list[int]) -> Any:
    left[0] -= 1
    if left[0] < 0:
        raise ValueError("cannot record a value that holds more than its limit of values")
    if isinstance(value, _LEAVES):
        return value
    if not isinstance(value, (list, tuple, dict)):
        return repr(value)
    if id(value) in open_ids:
        raise ValueError(f"cannot record a {type(value).__name__} that contains itself")
    if len(open_ids) >= MAX_DEPTH:
        raise ValueError(f"cannot record a value nested more than {MAX_DEPTH} deep")
    inner = open_ids | {id(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v, inner, left) for k, v in value.items()}
    return [_plain(v, inner, left) for v in value]
