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

if TYPE_CHECKING:
    from torch import Tensor

    from sitransport.train.trainer import TrainResult

__all__ = ["Callback", "EvalSamples", "TensorBoard"]


class EvalSamples:
    """The current flow's samples at an evaluation, computed on the first call (then kept):
    held-out sources carried from ``t = 0`` to ``t = 1`` by the model the run returns (the
    EMA model when it keeps one) with the Sinkhorn diagnostic's fixed-step solve
    (``sinkhorn_nfe`` velocity evaluations), next to held-out targets, both in the caller's
    units. Calling it changes nothing in the run (no random number is drawn).

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
    ``history.attrs["sinkhorn_floor"]``), and for 2-D data a figure ``samples``: the current
    flow's samples of held-out sources over held-out targets.

    Needs the ``tensorboard`` package (``pip install sitransport[tensorboard]``); the writer
    opens at the first hook (on rank 0 only: other ranks never write) and closes at the end
    of the run. View with ``tensorboard --logdir <log_dir>``.

    Args:
        log_dir: the folder of the event files (made if missing).
        every: steps between two writes of the per-step scalars, an integer >= 1. Default
            ``10``.
        figures: draw the samples figure of 2-D data at evaluations. Default ``True``.

    Raises:
        TypeError: ``log_dir`` is not a str or path, or ``figures`` not a bool.
        ValueError: ``every`` is not an integer >= 1.
        ImportError: at the first write, tensorboard is not installed.

    Example:
        >>> import sitransport as st
        >>> logger = st.callbacks.TensorBoard("runs/moons", every=50)
        >>> logger.log_dir.name, logger.every, logger.figures
        ('moons', 50, True)
    """

    def __init__(self, log_dir: str | os.PathLike, *, every: int = 10, figures: bool = True):
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a str or path, got {type(log_dir).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if not isinstance(figures, bool):
            raise TypeError(f"figures must be True or False, got {figures!r}")
        self.log_dir = Path(log_dir)
        self.every, self.figures = every, figures
        self._writer: Any = None

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
            self._writer = SummaryWriter(log_dir=str(self.log_dir))
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
        if self.figures and samples is not None and samples.shape == (2,):
            self.writer.add_figure("samples", _scatter(*samples(), step), step)

    def on_end(self, result: TrainResult) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _scatter(samples: Tensor, targets: Tensor, step: int) -> Any:
    """A small figure of 2-D flow samples over held-out targets (no pyplot state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 4), dpi=80)
    ax = figure.add_subplot()
    t, s = targets.detach().cpu().double().numpy(), samples.detach().cpu().double().numpy()
    ax.scatter(t[:, 0], t[:, 1], s=4, alpha=0.5, label="held-out targets")
    ax.scatter(s[:, 0], s[:, 1], s=4, alpha=0.5, label="flow samples")
    ax.set_title(f"step {step}")
    ax.legend(loc="upper right", fontsize="small")
    return figure
