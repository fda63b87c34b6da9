"""The condition input of velocity networks: codes (see
:mod:`sitransport.ends.conditions`) embedded as a vector, and fused into an MLP trunk by
FiLM (a scale and shift of every hidden layer) or by concatenation with the input.

A network's description records its condition as ``{"kind", "size", "fusion"}``: ``kind``
``"labels"`` (a learned embedding table of ``size`` rows, the last one the null condition) or
``"features"`` (an MLP on ``size`` columns: the standardised features and a presence column).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sitransport._validation import check_choice, check_positive_int

__all__ = ["FUSIONS", "ConditionEmbedding", "check_condition_config"]

#: The ways a condition enters an MLP trunk, ``"film"`` (each hidden layer ``h`` becomes
#: ``h (1 + g(e)) + b(e)``, ``g`` and ``b`` linear in the embedding ``e`` and zero at
#: initialisation) or ``"concat"`` (``e`` appended to the input features).
FUSIONS = ("film", "concat")


def check_condition_config(condition: Any, *, fusion: bool = True) -> dict[str, Any]:
    """A network's condition description, checked (``ValueError``/``TypeError`` naming it).

    Args:
        condition: ``{"kind", "size", "fusion"}`` (see the module).
        fusion: whether the description has a ``"fusion"`` key (``False`` for a U-Net's,
            whose condition always joins the time embedding). Default ``True``.

    Example:
        >>> check_condition_config({"kind": "labels", "size": 3, "fusion": "film"})["size"]
        3
    """
    if not isinstance(condition, dict):
        raise TypeError(f"condition must be a dict or None, got {type(condition).__name__}")
    keys = {"kind", "size", "fusion"} if fusion else {"kind", "size"}
    if set(condition) != keys:
        raise ValueError(f"condition has keys {sorted(keys)}, got {sorted(condition)}")
    check_choice(condition["kind"], "condition kind", ("labels", "features"))
    check_positive_int(condition["size"], "condition size", minimum=2)
    if fusion:
        check_choice(condition["fusion"], "condition fusion", FUSIONS)
    return dict(condition)


class ConditionEmbedding(nn.Module):
    """Codes of a condition to vectors of ``out`` features: a learned table for labels (one
    row per label and one for the null condition), a two-layer SiLU MLP for features.

    Args:
        kind: ``"labels"`` or ``"features"``.
        size: number of labels plus one, or feature columns plus one.
        out: embedding width.

    Example:
        >>> emb = ConditionEmbedding("labels", 4, 8)
        >>> emb(torch.tensor([0, 3])).shape
        torch.Size([2, 8])
        >>> ConditionEmbedding("features", 3, 8)(torch.zeros(5, 3)).shape
        torch.Size([5, 8])
    """

    def __init__(self, kind: str, size: int, out: int) -> None:
        super().__init__()
        self.kind = check_choice(kind, "condition kind", ("labels", "features"))
        self.size = check_positive_int(size, "condition size", minimum=2)
        self.table: nn.Module
        if kind == "labels":
            self.table = nn.Embedding(size, out)
        else:
            self.table = nn.Sequential(nn.Linear(size, out), nn.SiLU(), nn.Linear(out, out))

    def forward(self, codes: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """The embedding of ``codes``: ``(n,)`` label indices or ``(n, size)`` features.

        Args:
            codes: label indices ``(n,)`` (int64) or features ``(n, size)``.
            dtype: the dtype of the features' embedding. Default ``None``: the
                embedding's own.

        Raises:
            ValueError: codes of the other kind, or of another width.

        Example:
            >>> ConditionEmbedding("labels", 3, 4)(torch.tensor([2])).shape
            torch.Size([1, 4])
        """
        if self.kind == "labels":
            if codes.ndim != 1 or codes.dtype != torch.int64:
                raise ValueError(
                    f"condition codes of labels are int64 (n,), got {codes.dtype} "
                    f"{tuple(codes.shape)}"
                )
            return self.table(codes)
        if codes.ndim != 2 or codes.shape[1] != self.size or not codes.is_floating_point():
            raise ValueError(
                f"condition codes of features are float (n, {self.size}), got {codes.dtype} "
                f"{tuple(codes.shape)}"
            )
        first = next(self.table.parameters())
        return self.table(codes.to(first.dtype if dtype is None else dtype))
