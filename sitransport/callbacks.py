"""Training callbacks: code of the caller's run at fixed points of a training run.

:class:`Callback` is the base class: subclass it and override the hooks needed (each does
nothing by default), then pass instances as ``TrainSettings(callbacks=[...])``:

- :meth:`~Callback.on_step` after each optimisation step (its losses, learning rate and
  gradient norm);
- :meth:`~Callback.on_eval` at each step with a validation or a Sinkhorn diagnostic (the
  validation losses, the diagnostic's value, and :class:`EvalSamples`, the current flow's
  samples of held-out sources, computed only when asked for);
- :meth:`~Callback.on_checkpoint` after each checkpoint file is written;
- :meth:`~Callback.on_end` with the run's :class:`~sitransport.train.TrainResult`.

:class:`TensorBoard` is a callback that writes these to TensorBoard event files (the
optional ``tensorboard`` extra: ``pip install sitransport[tensorboard]``).

Hooks run on rank 0 only under ``torch.distributed``, in the order the callbacks are given.
They read the run, never change it: a run with callbacks returns the same model and history
as without, bit for bit (the trainer's batches come from its own generators and dropout is
reseeded at every step, so a hook may even draw from torch's global generator). Callbacks are
objects of the running process, not settings: ``spec()``, ``flow.config`` and saved files
leave them out, and a resumed run may have other callbacks than the run it continues.

This module imports nothing from the package at run time (the settings check their
``callbacks`` with :class:`Callback`), and tensorboard and matplotlib only when a
:class:`TensorBoard` first writes.

Example:
    >>> import sitransport as st
    >>> class Last(st.callbacks.Callback):
    ...     def on_end(self, result):
    ...         print("steps:", result.history.sizes["step"])
    >>> x1 = st.datasets.sample("moons", 200, seed=0)
    >>> training = st.TrainSettings(callbacks=[Last()])
    >>> flow = st.fit("gaussian", x1, steps=20, progress=False, training=training)
    steps: 20
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

    from sitransport.train.trainer import TrainResult

__all__ = ["Callback", "EvalSamples", "TensorBoard"]


class EvalSamples:
    """The current flow's samples at an evaluation, computed on the first call (then kept):
    held-out sources carried from ``t = 0`` to ``t = 1`` by the model the run returns (the
    EMA model when it keeps one) with the Sinkhorn diagnostic's fixed-step solve
    (``sinkhorn_nfe`` velocity evaluations), next to held-out targets, both in the caller's
    units (a latent fit's: in its principal coordinates). Calling it changes nothing in the
    run (no random number is drawn).

    Args:
        compute: returns ``(samples, targets)``, tensors of shape ``(n, *shape)``.
        shape: the shape of one sample, e.g. ``(2,)``.

    Attributes:
        shape: the shape of one sample.

    Example:
        >>> import torch
        >>> from sitransport.callbacks import EvalSamples
        >>> samples = EvalSamples(lambda: (torch.zeros(3, 2), torch.ones(3, 2)), (2,))
        >>> flow, targets = samples()
        >>> samples.shape, tuple(flow.shape), samples()[0] is flow
        ((2,), (3, 2), True)
    """

    def __init__(self, compute: Callable[[], tuple[Tensor, Tensor]], shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self._compute: Callable[[], tuple[Tensor, Tensor]] | None = compute
        self._value: tuple[Tensor, Tensor] | None = None

    def __call__(self) -> tuple[Tensor, Tensor]:
        """``(samples, targets)``: the flow's samples of the held-out sources and the held-out
        targets, each of shape ``(n, *shape)``, in the caller's units."""
        if self._value is None:
            assert self._compute is not None  # cleared only once the value is kept
            self._value, self._compute = self._compute(), None
        return self._value


class Callback:
    """Base class of training callbacks: override the hooks needed; each does nothing.

    Hooks receive numbers and paths, not the trainer: they watch the run and must not change
    the model they are shown (see the module's docstring). Under ``torch.distributed`` they
    run on rank 0 only.

    Example:
        >>> import torch
        >>> from sitransport.callbacks import Callback
        >>> from sitransport.interpolants import Linear
        >>> from sitransport.nn import MLPVelocity
        >>> from sitransport.train import TrainSettings, train
        >>> class Losses(Callback):
        ...     def __init__(self):
        ...         self.losses = []
        ...     def on_step(self, step, *, loss, fm_loss, kinetic, lr, grad_norm):
        ...         self.losses.append(loss)
        >>> def draw(n, g):
        ...     return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2
        >>> seen = Losses()
        >>> settings = TrainSettings(steps=3, batch_size=8, progress=False, callbacks=[seen])
        >>> result = train(MLPVelocity(1, width=8, depth=1), Linear(), draw, settings=settings)
        >>> seen.losses == result.history["loss"].values.tolist()
        True
    """

    def on_step(
        self, step: int, *, loss: float, fm_loss: float, kinetic: float, lr: float, grad_norm: float
    ) -> None:
        """After optimisation step ``step``: what ``history`` records for it.

        Args:
            step: the number of steps done (1 after the first step).
            loss: the batch's quadratic loss ``G``.
            fm_loss: the batch's flow-matching loss.
            kinetic: the batch's ``E|v|^2``.
            lr: the learning rate the step used.
            grad_norm: the gradient norm before clipping.
        """

    def on_eval(
        self,
        step: int,
        *,
        val_loss: float | None,
        val_fm_loss: float | None,
        sinkhorn: float | None,
        samples: EvalSamples | None,
    ) -> None:
        """At each step with a validation (every ``eval_every`` steps and the last) or a
        Sinkhorn diagnostic (every ``sinkhorn_every`` and the last), after both.

        Args:
            step: the number of steps done.
            val_loss: the validation quadratic loss of this step; ``None``: no validation
                data, or no validation at this step.
            val_fm_loss: the validation flow-matching loss; ``None`` as ``val_loss``.
            sinkhorn: the Sinkhorn diagnostic's value (``history["sinkhorn"]``) of this step;
                ``None``: none at this step (off, skipped, or not due).
            samples: the current flow's samples of held-out sources with held-out targets
                (computed only when called); ``None``: no validation data, or images.
        """

    def on_checkpoint(self, step: int, path: Path) -> None:
        """After the checkpoint of step ``step`` is written to ``path``.

        Args:
            step: the number of steps done.
            path: the checkpoint file just written.
        """

    def on_end(self, result: TrainResult) -> None:
        """At the end of the run, with what it returns.

        Args:
            result: the trained model and the history of the run.
        """


class TensorBoard(Callback):
    """Write a run to TensorBoard event files in ``log_dir``: per step ``train/loss``,
    ``train/fm_loss``, ``train/lr`` and ``train/grad_norm`` (every ``every`` steps); at
    evaluations ``val/loss``, ``val/fm_loss`` and ``quality/sinkhorn`` (the Sinkhorn
    diagnostic, a sample-quality estimate, whenever the run computes it; read it against
    ``history.attrs["sinkhorn_floor"]``), and for 2-D data an image ``samples``: a figure of
    the current flow's samples of held-out sources over held-out targets, every
    ``figure_every`` steps (at the first evaluation that many steps after the last figure)
    and at the end. A figure costs about a tenth of a second (matplotlib), the scalars of a
    step a fraction of a millisecond (tensorboard's writer).

    Needs the ``tensorboard`` package (``pip install sitransport[tensorboard]``); the writer
    opens at the first hook (on rank 0 only: other ranks never write) and closes at the end
    of the run. View with ``tensorboard --logdir <log_dir>``.

    Args:
        log_dir: the folder of the event files (made if missing).
        every: steps between two writes of the per-step scalars, an integer >= 1. Default
            ``10``.
        figure_every: steps between two figures of samples of 2-D data, an integer >= 1, or
            ``None``: no figures. Default ``1000``.

    Raises:
        TypeError: ``log_dir`` is not a str or path.
        ValueError: ``every`` or ``figure_every`` is not an integer >= 1.
        ImportError: at the first write, tensorboard is not installed.

    Example:
        >>> import sitransport as st
        >>> logger = st.callbacks.TensorBoard("runs/moons", every=50)
        >>> logger.log_dir.name, logger.every, logger.figure_every
        ('moons', 50, 1000)
    """

    def __init__(
        self, log_dir: str | os.PathLike, *, every: int = 10, figure_every: int | None = 1000
    ) -> None:
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a str or path, got {type(log_dir).__name__}")
        for name, value in (("every", every), ("figure_every", figure_every)):
            if value is None and name == "figure_every":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.log_dir = Path(log_dir)
        self.every, self.figure_every = every, figure_every
        self._writer: Any = None
        self._scatter: _Scatter | None = None
        self._drawn: int | None = None  # the step of the last figure
        self._pending: tuple[EvalSamples, int] | None = None  # an evaluation not drawn

    @property
    def writer(self) -> Any:
        """The ``torch.utils.tensorboard.SummaryWriter`` (opened on first use)."""
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:  # torch's module needs the tensorboard package
                raise ImportError(
                    "st.callbacks.TensorBoard needs the tensorboard package: "
                    "pip install 'sitransport[tensorboard]' (or pip install tensorboard)"
                ) from error
            self._writer = SummaryWriter(log_dir=str(self.log_dir), max_queue=1000)
        return self._writer

    def on_step(
        self, step: int, *, loss: float, fm_loss: float, kinetic: float, lr: float, grad_norm: float
    ) -> None:
        if step % self.every and step != 1:
            return
        for name, value in (
            ("loss", loss),
            ("fm_loss", fm_loss),
            ("lr", lr),
            ("grad_norm", grad_norm),
        ):
            self.writer.add_scalar(f"train/{name}", value, step)

    def on_eval(
        self,
        step: int,
        *,
        val_loss: float | None,
        val_fm_loss: float | None,
        sinkhorn: float | None,
        samples: EvalSamples | None,
    ) -> None:
        for name, value in (
            ("val/loss", val_loss),
            ("val/fm_loss", val_fm_loss),
            ("quality/sinkhorn", sinkhorn),
        ):
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(name, value, step)
        if self.figure_every is None or samples is None or samples.shape != (2,):
            return
        if self._drawn is None or step - self._drawn >= self.figure_every:
            self._figure(samples, step)
        else:
            self._pending = (samples, step)

    def _figure(self, samples: EvalSamples, step: int) -> None:
        """Write the figure of ``samples`` at ``step``."""
        if self._scatter is None:
            self._scatter = _Scatter()
        figure = self._scatter(*samples(), step)
        self.writer.add_figure("samples", figure, step, close=False)
        self._drawn, self._pending = step, None

    def on_end(self, result: TrainResult) -> None:
        if self._pending is not None:  # the last evaluation's figure
            self._figure(*self._pending)
        if self._writer is not None:
            self._writer.close()
        self._writer = self._scatter = self._drawn = None


class _Scatter:
    """A figure of 2-D flow samples over held-out targets, built once and redrawn with new
    points (building the axes costs about as much as drawing them); no pyplot state."""

    def __init__(self) -> None:
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 4), dpi=72)
        self.ax = self.figure.add_subplot()
        self.targets = self.ax.scatter([], [], s=4, alpha=0.5, label="held-out targets")
        self.samples = self.ax.scatter([], [], s=4, alpha=0.5, label="flow samples")
        self.ax.legend(loc="upper right", fontsize="small")

    def __call__(self, samples: Tensor, targets: Tensor, step: int) -> Any:
        """The figure of ``samples`` and ``targets`` (shape ``(n, 2)``) after ``step`` steps."""
        s = samples.detach().cpu().double().numpy()
        t = targets.detach().cpu().double().numpy()
        s = s[np.isfinite(s).all(1)]  # a diverging flow's samples are drawn where finite
        self.samples.set_offsets(s)
        self.targets.set_offsets(t)
        both = np.concatenate([s, t])
        low, high = both.min(0), both.max(0)
        pad = 0.05 * (high - low) + 1e-9 * (1 + np.abs(both).max())
        self.ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
        self.ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
        self.ax.set_title(f"step {step}: {len(s)} flow samples")
        return self.figure
