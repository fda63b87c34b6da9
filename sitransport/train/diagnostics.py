r"""The Sinkhorn diagnostic of a training run: how far the current flow's samples are from
held-out targets, logged in ``history["sinkhorn"]`` every ``sinkhorn_every`` steps (and at
the last step) at a few percent of the training time.

At each of its steps, held-out sources are pushed from ``t = 0`` to ``t = 1`` through the
current model (the EMA model when the run keeps one: the weights the run returns) with the
fixed-step ODE solve of :meth:`~sitransport.ode.ODEOptions.budget` (``sinkhorn_nfe``
velocity evaluations; default ``rk4`` with 8 steps), and compared with held-out targets by
geomloss's debiased Sinkhorn divergence (:func:`~sitransport.metrics.sinkhorn_divergence`:
tensorized, float64, ε-scaling ratio :data:`SCALING`)

.. math::

    S_\varepsilon(\mu, \nu) = \mathrm{OT}_\varepsilon(\mu, \nu)
    - \tfrac12 \mathrm{OT}_\varepsilon(\mu, \mu) - \tfrac12 \mathrm{OT}_\varepsilon(\nu, \nu),
    \qquad c(x, y) = \tfrac12 \|x - y\|^2, \quad \varepsilon = \mathrm{blur}^2,

which is 0 only for equal laws and tends to :math:`W_2^2 / 2` as the blur goes to 0. With
``n`` samples a perfect flow does not score 0: it scores about the **noise floor**, the same
divergence between other held-out targets and the same ones, logged (computed once) as
``history.attrs["sinkhorn_floor"]``, the mean over up to :data:`FLOOR_DRAWS` disjoint sets,
with ``attrs["sinkhorn_floor_sd"]``, their standard deviation: the spread of a perfect
flow's single value. Read a value relative to them: at ``n = 256`` in two dimensions that
spread is a large fraction of the floor, so the diagnostic shows the course of training and
gross failures (a missing mode, a wrong scale), not the last percent of quality (for that,
:func:`~sitransport.metrics.sample_quality` on thousands of samples after training).

Samples: with ``m`` held-out pairs ``(v0, v1)`` and ``n = min(sinkhorn_n, m // 2)``, the
sources ``v0[n:2n]`` are pushed forward and compared with the targets ``A = v1[:n]``; the
floor compares ``B_k = v1[k n:(k + 1) n]``, ``k = 1, 2, ...``, with ``A``. The flow's
samples are thus independent of ``A`` even when held-out pairs are coupled (reflow), and a
perfect flow and each ``B_k`` score alike in expectation. No random number is drawn (the
held-out rows were split at random already), gradients are off and the model is put back in
training mode: the run's numbers are those of a run without the diagnostic, bit for bit.

Units: the caller's. A fit learns in coordinates ``u = (x - m) / s`` with a scalar ``s``
(:class:`~sitransport.interpolants.Normalized`); the blur is ``sinkhorn_blur`` in ``u``
(relative to the data scale), ``s * sinkhorn_blur`` in data units, and the divergence,
computed in ``u``, is multiplied by ``s**2`` (exact: ``S`` scales as the squared units when
the blur scales with them). A latent fit (``latent=``) measures in its principal
coordinates.

A conditional run pushes each source with its held-out row's condition, so the samples
follow the target's marginal over conditions: the divergence measures that marginal, not
each conditional law.

Skipped, with the reason in ``history.attrs["sinkhorn_skipped"]``: ``sinkhorn_n = 0``;
no validation data; fewer than ``2 * 8`` held-out pairs; images (samples not of shape
``(n, d)``: an ODE solve of ``n`` images through a U-Net costs far more than 5 % of
training; measure image flows after training with :func:`~sitransport.metrics.sample_quality`
or bits/dim). A solve that fails (a diverging early model) logs NaN.

Cost: the seconds of each diagnostic are logged (``history["sinkhorn_seconds"]``), and
``history.attrs["sinkhorn_cost"]`` is their sum over the training seconds (the rest of the
run's wall time).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor, nn

from sitransport.config.training import MIN_SINKHORN_N, TrainSettings
from sitransport.errors import TransportError
from sitransport.interpolants import Interpolant, Normalized
from sitransport.metrics import sinkhorn_divergence
from sitransport.ode import ODEOptions, integrate
from sitransport.train.record import Record

__all__ = ["FLOOR_DRAWS", "SCALING", "SinkhornMonitor"]

#: Most disjoint held-out target sets whose divergence to the compared targets makes the
#: noise floor (as many as the held-out data hold, at least one).
FLOOR_DRAWS = 4

#: The ε-scaling ratio of geomloss for the diagnostic. The annealing from the data's diameter
#: down to the blur stops about 2 % below the converged divergence (measured at n = 256,
#: blur 0.05 on Gaussians), for a third of the time of 0.95; the floor has the same bias.
SCALING = 0.8


class SinkhornMonitor:
    """The Sinkhorn diagnostic of one run (see the module's docstring): built from the
    settings and the held-out pairs, it records ``S_eps`` when :meth:`due`.

    Args:
        settings: the run's settings (``sinkhorn_n``, ``sinkhorn_every``, ``sinkhorn_blur``,
            ``sinkhorn_nfe``).
        validation: the run's held-out ``(x0, x1, ...)`` in the network's coordinates, or
            ``None``.
        codes: a conditional run's held-out codes, one per held-out pair, or ``None``.
        interpolant: the run's path; a :class:`~sitransport.interpolants.Normalized` one gives
            the scale ``s`` of the caller's units.

    Attributes:
        skipped: why the run has no diagnostic, or ``None``.

    Example:
        >>> import torch
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.train import TrainSettings
        >>> from sitransport.train.record import Record
        >>> g = torch.Generator().manual_seed(0)
        >>> held = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 3
        >>> settings = TrainSettings(steps=10, sinkhorn_n=32, sinkhorn_every=5)
        >>> monitor = SinkhornMonitor(settings, held, None, Linear())
        >>> monitor.due(5, 10), monitor.due(7, 10), monitor.skipped
        (True, False, None)
        >>> record = Record()
        >>> monitor.record(lambda x, t: torch.full_like(x, 3.0), 5, record)  # the exact map
        >>> record.sinkhorn[0] < 2 * monitor.floor[0] < 9.0  # 9: S_eps of the identity, 3**2
        True
    """

    def __init__(
        self,
        settings: TrainSettings,
        validation: tuple[Tensor, ...] | None,
        codes: Tensor | None,
        interpolant: Interpolant,
    ) -> None:
        self.settings = settings
        self.scale = interpolant.scale if isinstance(interpolant, Normalized) else 1.0
        self.options = ODEOptions.budget(settings.sinkhorn_nfe)
        self.skipped = _skip_reason(settings, validation)
        self._floor: tuple[float, float] | None = None
        self.n = 0
        if self.skipped is not None or validation is None:
            return
        m = min(validation[0].shape[0], validation[1].shape[0])
        self.n = n = min(settings.sinkhorn_n, m // 2)
        self.x0 = validation[0][n : 2 * n]
        self.target = validation[1][:n]
        draws = min(FLOOR_DRAWS, validation[1].shape[0] // n - 1)
        self.others = [validation[1][k * n : (k + 1) * n] for k in range(1, draws + 1)]
        self.codes = codes[n : 2 * n] if codes is not None else None

    def due(self, done: int, steps: int) -> bool:
        """Whether the step count ``done`` (of ``steps``) has a diagnostic: every
        ``sinkhorn_every`` steps and the last, unless skipped.

        Args:
            done: the number of steps done.
            steps: the number of steps of the run.
        """
        if self.skipped is not None:
            return False
        return done % self.settings.sinkhorn_every == 0 or done == steps

    @property
    def blur(self) -> float:
        """The blur in the caller's units, ``s * sinkhorn_blur``."""
        return self.scale * self.settings.sinkhorn_blur

    def _divergence(self, x: Tensor, y: Tensor) -> float:
        """``S_eps(x, y)`` in the caller's units (``x``, ``y`` in the network's)."""
        value = sinkhorn_divergence(x, y, blur=self.settings.sinkhorn_blur, scaling=SCALING)
        return self.scale**2 * value

    @property
    def floor(self) -> tuple[float, float]:
        """Mean and standard deviation (NaN for one draw) of ``S_eps``, the noise floor,
        between the other held-out target sets and the compared ones (computed once)."""
        if self._floor is None:
            values = [self._divergence(other, self.target) for other in self.others]
            mean = sum(values) / len(values)
            sd = math.nan
            if len(values) > 1:
                sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            self._floor = (mean, sd)
        return self._floor

    def measure(self, model: nn.Module | Any) -> float:
        """``S_eps`` between ``model``'s samples of the held-out sources and the held-out
        targets, in the caller's units; NaN when the ODE solve fails.

        Args:
            model: the velocity ``model(x, t)`` (``model(x, t, codes)`` when conditional).
        """
        times = torch.tensor([0.0, 1.0])
        try:
            with torch.no_grad():
                res = integrate(model, self.x0, times, self.options, condition=self.codes)
        except TransportError:
            return math.nan
        return self._divergence(res.states[-1], self.target)

    def record(self, model: nn.Module | Any, done: int, record: Record) -> None:
        """Measure ``model`` (in eval mode, then back in training mode) after ``done`` steps
        and append the value and its seconds (the floor's too, the first time) to ``record``.

        Args:
            model: the velocity the run returns (the EMA model when kept).
            done: the number of steps done.
            record: the run's record.
        """
        start = time.perf_counter()
        training = getattr(model, "training", False)
        if isinstance(model, nn.Module):
            model.eval()
        value = self.measure(model)
        _ = self.floor
        if isinstance(model, nn.Module):
            model.train(training)
        record.sinkhorn_step.append(done)
        record.sinkhorn.append(value)
        record.sinkhorn_seconds.append(time.perf_counter() - start)

    def attrs(self, record: Record, total_seconds: float) -> dict[str, Any]:
        """The ``history.attrs`` of the diagnostic: its settings, the noise floor and the
        cost, or why it was skipped.

        Args:
            record: the run's record.
            total_seconds: the run's wall time (training and diagnostics).
        """
        if self.skipped is not None:
            return {"sinkhorn_skipped": self.skipped}
        seconds = float(sum(record.sinkhorn_seconds))
        training = total_seconds - seconds
        return {
            "sinkhorn_n": self.n,
            "sinkhorn_blur": self.blur,
            "sinkhorn_blur_relative": self.settings.sinkhorn_blur,
            "sinkhorn_scaling": SCALING,
            "sinkhorn_solver": (
                f"{self.options.method}, {self.options.steps} fixed step(s), "
                f"{self.options.nfe} velocity evaluations"
            ),
            "sinkhorn_floor": self.floor[0],
            "sinkhorn_floor_sd": self.floor[1],
            "sinkhorn_floor_draws": len(self.others),
            "sinkhorn_seconds": seconds,
            "sinkhorn_cost": seconds / training if training > 0 else math.nan,
        }


def _skip_reason(settings: TrainSettings, validation: tuple[Tensor, ...] | None) -> str | None:
    """Why a run has no Sinkhorn diagnostic, or ``None`` when it has one."""
    if settings.sinkhorn_n == 0:
        return "sinkhorn_n=0 (off)"
    if validation is None:
        return "no validation data (held-out pairs are its samples)"
    if validation[0].ndim != 2:
        return (
            f"images (samples of shape {tuple(validation[0].shape[1:])}, not vectors): an "
            "ODE solve of held-out images costs far more than 5 % of training"
        )
    m = min(validation[0].shape[0], validation[1].shape[0])
    if m // 2 < MIN_SINKHORN_N:
        return f"{m} held-out pairs, fewer than 2 x {MIN_SINKHORN_N} (two halves of targets)"
    return None
