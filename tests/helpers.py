"""Shared test settings and closed-form flows, defined once for every test file.

- Quick-fit settings: keyword dicts for :func:`sitransport.fit` that train a tiny network
  for a few steps (``dict(TINY, steps=30)`` for a variant). A change of ``fit``'s keywords
  is made here, not in each test file.
- Closed-form flows: velocity fields whose transport map is known exactly (a rotation, the
  Gaussian optimal-transport displacement, the exact Gaussian -> Gaussian interpolant
  velocity), to test solvers, densities and metrics against the answer.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from sitransport.config import MLPSpec
from sitransport.exact import GaussianMixtureInterpolation
from sitransport.flow import TransportFlow
from sitransport.ode import ODEOptions
from sitransport.train import TrainSettings

__all__ = [
    "J",
    "TIGHT",
    "TINY",
    "TINY_MLP",
    "TINY_TRAINING",
    "displacement_velocity",
    "gaussian_flow",
    "own_methods",
    "rotate",
    "rotation",
    "rotation_flow",
    "tiny_mlp",
    "tiny_training",
]

#: The tiny fit's network: a width-8, depth-1 MLP.
TINY_MLP = MLPSpec(width=8, depth=1)

#: The tiny fit's training settings (validated every 10 steps).
TINY_TRAINING = TrainSettings(eval_every=10)

#: A tiny fit: 20 steps of a width-8, depth-1 MLP, validated twice, no progress bar. A
#: variant of its training settings: ``dict(TINY, training=tiny_training(ema=None))``.
TINY: dict[str, Any] = {
    "steps": 20,
    "network": TINY_MLP,
    "progress": False,
    "training": TINY_TRAINING,
}


def tiny_training(**changes: Any) -> TrainSettings:
    """The tiny fit's training settings with ``changes`` (TrainSettings fields)."""
    return dataclasses.replace(TINY_TRAINING, **changes)


def tiny_mlp(**changes: Any) -> MLPSpec:
    """The tiny fit's MLP with ``changes`` (MLPSpec fields, e.g. ``kind="potential"``)."""
    return dataclasses.replace(TINY_MLP, **changes)


#: Adaptive ODE tolerances tight enough for closed-form comparisons at ~1e-5.
TIGHT = ODEOptions(atol=1e-7, rtol=1e-7)

#: The generator of plane rotations: ``v(x) = J x`` turns by one radian per unit time.
J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)


def rotation(angle: float) -> np.ndarray:
    """The 2x2 matrix of the rotation by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def rotate(x: np.ndarray, angle: float) -> np.ndarray:
    """Points ``x`` of shape ``(n, 2)`` rotated by ``angle`` radians."""
    return x @ rotation(angle).T


def rotation_flow(**kwargs: Any) -> TransportFlow:
    """``v(x) = J x`` on the linear path: push_forward rotates by exactly one radian.

    Keyword arguments go to :class:`~sitransport.flow.TransportFlow` (``normalization=``,
    ``base=``, ``ode=``).
    """
    return TransportFlow(lambda x, t: x @ J.T.to(x), "linear", shape=(2,), **kwargs)


def displacement_velocity(A: np.ndarray, b: np.ndarray) -> Callable:
    """Velocity of ``X_t = (1 - t) X + t (A X + b)``: ``v_t(y) = (A - I) M_t^{-1} (y - t b) + b``.

    With ``A, b`` the Gaussian OT map (:func:`~sitransport.metrics.gaussian_ot_map`) this is
    the displacement interpolation between two Gaussians: straight paths at constant speed.
    """
    A_t, b_t = torch.from_numpy(A), torch.from_numpy(b)
    eye = torch.eye(A.shape[0], dtype=torch.float64)

    def v(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.to(y).expand(y.shape[0])[:, None]  # scalar or per-sample times
        M = (1 - t[:, :, None]) * eye + t[:, :, None] * A_t  # (n, d, d)
        z = torch.linalg.solve(M, (y - t * b_t)[:, :, None])[:, :, 0]
        return z @ (A_t - eye).T + b_t

    return v


def gaussian_flow(
    m0: np.ndarray,
    S0: np.ndarray,
    m1: np.ndarray,
    S1: np.ndarray,
    interpolant: str,
    *,
    base: Any = "exact",
    ode: ODEOptions = TIGHT,
) -> TransportFlow:
    """The exact interpolant velocity from ``N(m0, S0)`` to ``N(m1, S1)`` as a TransportFlow.

    Args:
        m0, S0, m1, S1: means ``(d,)`` and covariances ``(d, d)`` of the two ends.
        interpolant: the path (``"linear"``, ``"trig"``, ...).
        base: ``"exact"`` (``N(m0, S0)`` as a torch distribution, so ``log_prob`` is exact),
            or anything :class:`~sitransport.flow.TransportFlow` takes as ``base``.
        ode: ODE settings (default :data:`TIGHT`).
    """
    gmi = GaussianMixtureInterpolation.from_gaussians(m0, S0, m1, S1, interpolant)
    if isinstance(base, str) and base == "exact":
        base = torch.distributions.MultivariateNormal(torch.from_numpy(m0), torch.from_numpy(S0))
    return TransportFlow(gmi, interpolant, base=base, shape=(len(m0),), ode=ode)


def own_methods(cls: type) -> Iterator[tuple[str, type, Callable]]:
    """``(name, defining class, function)`` of the public methods of ``cls`` that a
    sitransport class defines (inherited ones where a sitransport base defines them; those
    of torch, ``object`` or ``tuple`` are documented there). Properties are attributes,
    without parameters, and are left out."""
    for attr in sorted(dir(cls)):
        if attr.startswith("_"):
            continue
        owner = next(k for k in cls.__mro__ if attr in vars(k))
        if not owner.__module__.startswith("sitransport"):
            continue
        raw = vars(owner)[attr]
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        if inspect.isfunction(raw):
            yield attr, owner, raw


def load_script(name: str, path: Path) -> ModuleType:
    """The module of a file outside the package (a benchmark script, the docs' extension),
    loaded once by path under ``name`` (registered first: its dataclasses look it up)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


#: The repository's root (``tests/`` is directly under it).
ROOT = Path(__file__).resolve().parents[1]


def run_in_fresh_python(code: str, *args: str) -> list[str]:
    """The lines ``code`` prints when run with ``args`` in a new interpreter on one thread
    (for what a process does only once: its first warnings, its peak memory), importing
    this checkout. A failure of the script fails the test with its output."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    return out.stdout.strip().splitlines()
