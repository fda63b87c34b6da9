"""``TrainSettings(compile=True)``: the training loss compiled with :func:`torch.compile`
(:func:`compiled_objective`), or, where compilation is not supported, the eager loss with one
warning that names why.

Compiled are the network's forward pass and the loss together (the
:class:`~sitransport.train.step.Objective` module), so the interpolation, the network and the
loss are fused into one graph, and its backward pass with them. The network itself stays the
eager module: checkpoints, the EMA copy and the returned model are those of an eager run.
Not compiled (trained eagerly, with the warning): several processes
(``DistributedDataParallel``), the ascent on a learnable path (``optimize_path``), the potential
network (its velocity is a gradient: training it is a double backward pass), and setups
without a compiler backend (no C++ compiler for inductor on CPU, no Triton on CUDA); a
compilation that fails on the first batch for another reason falls back the same way.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__: list[str] = []

_WHAT = "TrainSettings(compile=True)"


def _has_backend(device: torch.device) -> str | None:
    """Why inductor cannot compile on ``device`` here, or ``None`` when it can."""
    if device.type == "cpu":
        compilers = (os.environ.get("CXX"), "g++", "c++", "clang++")
        if not any(c and shutil.which(c) for c in compilers):
            return "no C++ compiler found (inductor compiles CPU kernels with one; set CXX)"
        return None
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "Triton is not installed (inductor's CUDA kernels need it)"
        return None
    return f"device {device.type!r} is not supported by the inductor backend here"


def unsupported(net: nn.Module, device: torch.device, world: int, path: bool) -> str | None:
    """Why a run cannot be compiled, or ``None`` when it can.

    Args:
        net: the velocity network.
        device: the run's device.
        world: the number of processes.
        path: whether the run ascends on a learnable path.

    Example:
        >>> from sitransport.nn import MLPVelocity, PotentialVelocity
        >>> unsupported(PotentialVelocity(2, width=8, depth=1), torch.device("cpu"), 1, False)
        "the potential network (its velocity is a gradient: training it is a double backward pass, which torch.compile's autograd does not support)"
        >>> unsupported(MLPVelocity(2, width=8, depth=1), torch.device("cpu"), 2, False)
        'several processes (DistributedDataParallel is trained eagerly)'
    """  # noqa: E501
    from sitransport.nn.potential import PotentialVelocity

    if world > 1:
        return "several processes (DistributedDataParallel is trained eagerly)"
    if path:
        return "optimize_path (the path's ascent differentiates through the interpolant)"
    if any(isinstance(m, PotentialVelocity) for m in net.modules()):
        return (
            "the potential network (its velocity is a gradient: training it is a double "
            "backward pass, which torch.compile's autograd does not support)"
        )
    return _has_backend(device)


class _CompiledOrEager:
    """The compiled loss, falling back to the eager one (with one warning) if compiling it
    fails on the first batch."""

    def __init__(self, objective: nn.Module) -> None:
        self.eager = objective
        self.compiled: Callable[..., Any] | None = torch.compile(objective)
        self.tried = False

    def __call__(self, *batch: torch.Tensor) -> Any:
        if self.compiled is None:
            return self.eager(*batch)
        if self.tried:
            return self.compiled(*batch)
        try:
            out = self.compiled(*batch)
        except Exception as err:  # noqa: BLE001  (any failure of the compiler: train eagerly)
            self.compiled = None
            warnings.warn(
                f"{_WHAT}: training eagerly: compiling the loss failed "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
                RuntimeWarning,
                stacklevel=3,
            )
            return self.eager(*batch)
        self.tried = True
        return out


def compiled_objective(
    objective: nn.Module, net: nn.Module, device: torch.device, world: int, path: bool
) -> Callable[..., Any]:
    """``objective`` compiled with :func:`torch.compile`, or ``objective`` itself with one
    :class:`RuntimeWarning` naming why the run cannot be compiled (:func:`unsupported`).

    Args:
        objective: the loss module.
        net: the velocity network inside it.
        device: the run's device.
        world: the number of processes.
        path: whether the run ascends on a learnable path.

    Returns:
        A callable with the loss module's signature.

    Example:
        >>> import warnings
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.nn import PotentialVelocity
        >>> from sitransport.train.step import Objective
        >>> net = PotentialVelocity(2, width=8, depth=1)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     loss = compiled_objective(Objective(net, Linear(), False), net,
        ...                               torch.device("cpu"), 1, False)
        >>> type(loss).__name__, len(caught)
        ('Objective', 1)
    """
    reason = unsupported(net, device, world, path)
    if reason is not None:
        warnings.warn(f"{_WHAT}: training eagerly: {reason}", RuntimeWarning, stacklevel=3)
        return objective
    return _CompiledOrEager(objective)
