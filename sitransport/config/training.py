"""The training settings of a fit as frozen records: the optimisation settings
:class:`TrainSettings`, checkpointing (:class:`Checkpointing`), latent coordinates
(:class:`LatentSpec`), the step :func:`freeze_step` a max–min path stops at, and the dtypes a
fit trains in (``DTYPES``). Settings only: the trainer that reads them imports this module,
never the other way round."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from sitransport._spec import FieldsSpec
from sitransport._validation import (
    check_bool,
    check_choice,
    check_fraction,
    check_positive,
    check_positive_int,
)
from sitransport.callbacks import Callback

__all__ = ["Checkpointing", "LatentSpec", "TrainSettings", "freeze_step"]

#: The dtypes a fit trains in, by the name their spec uses.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}

#: Fewest held-out samples per side of the Sinkhorn diagnostic (``sinkhorn_n``, unless 0).
MIN_SINKHORN_N = 8
#: Most velocity evaluations of the diagnostic's ODE solve (``sinkhorn_nfe``).
MAX_SINKHORN_NFE = 4096


@dataclass(frozen=True)
class TrainSettings(FieldsSpec):
    """Optimisation settings of :func:`train` and of :func:`~sitransport.fit`'s
    ``training=``.

    Args:
        steps: optimisation steps (default 20,000).
        batch_size: pairs per step, the global batch under ``torch.distributed``
            (default 512).
        lr: peak AdamW learning rate (default ``2e-3``).
        weight_decay: AdamW weight decay (default 0).
        warmup: steps of linear warm-up from 0 to ``lr`` (default 200); then cosine decay.
        min_lr_ratio: where the cosine decay ends, as a fraction of ``lr`` (default 0.01).
        ema: decay of the exponential moving average of the weights that the returned
            model holds (default 0.999, ramped up as :func:`ema_decay`); ``None``: the
            trained weights themselves.
        clip_grad: largest gradient norm, larger ones are scaled down to it (default 1.0);
            ``None``: no clipping.
        antithetic: variance reduction (default on): times in pairs ``u, 1 - u``, or, for
            stochastic interpolants, each noise ``z`` with ``-z``.
        eval_every: steps between validation losses (default 500).
        checkpoint_every: steps between checkpoints when checkpointing (default 1000).
        progress: show a tqdm progress bar (default on).
        restore_best: end with the weights of the lowest validation loss (default off;
            needs held-out data).
        accumulate: micro-batches per step, gradients accumulated (default 1): the same
            step in less memory.
        mixed_precision: ``"bf16"``: the network runs under bfloat16 autocast, the loss,
            optimiser and EMA stay in float32 (default ``None``: off).
        condition_dropout: in a conditional fit, the probability with which a pair's
            condition is replaced by the null condition, so that one network learns the
            conditional and the unconditional velocity at once (classifier-free guidance:
            ``flow.sample(..., guidance=w)``); in ``[0, 1)``, typically 0.1. Default 0: off.
        sinkhorn_n: held-out samples per side of the training diagnostic
            ``history["sinkhorn"]`` (default 256), the debiased Sinkhorn divergence between
            the flow's samples of ``sinkhorn_n`` held-out sources and ``sinkhorn_n`` held-out
            targets (fewer when less is held out), next to its noise floor, the divergence
            between two disjoint held-out target halves
            (:mod:`sitransport.train.diagnostics`); 0 turns it off, else at least 8. It needs
            validation data, and is skipped for images.
        sinkhorn_every: steps between two diagnostics (default 1000); the last step always
            has one. Its share of the training time is recorded
            (``history.attrs["sinkhorn_cost"]``).
        sinkhorn_blur: the diagnostic's entropic length scale, relative to the data scale
            (in the fit's normalised coordinates, of unit root-mean-square spread per
            coordinate), ``> 0`` (default 0.05).
        sinkhorn_nfe: velocity evaluations of the diagnostic's ODE solve from 0 to 1,
            the fixed-step scheme of :meth:`~sitransport.ode.ODEOptions.budget`
            (default 32: ``rk4``, 8 steps).
        callbacks: :class:`~sitransport.callbacks.Callback` objects whose hooks the run
            calls (on rank 0) after each step, evaluation and checkpoint and at the end, in
            order, e.g. ``[st.callbacks.TensorBoard("runs/a")]``; a list or tuple, kept as a
            tuple. Default ``()``: none. Objects of the running process, not settings: they
            never change the run's numbers, compare equal whatever they are, and are left out
            of :meth:`spec`, ``flow.config``, saved files and resume checks.
        compile: compile the training loss (network, interpolation and loss, with its
            backward pass) with :func:`torch.compile` (default off). The first steps pay the
            compilation; the losses agree with an eager run's to float rounding. Runs that
            cannot be compiled (several processes, ``optimize_path``, the potential network,
            no compiler backend) train eagerly with one warning naming why
            (:mod:`sitransport.train.compiled`).

    Example:
        >>> from sitransport import TrainSettings
        >>> settings = TrainSettings(steps=2000, batch_size=256, ema=None, progress=False)
        >>> settings.steps, settings.lr, settings.ema
        (2000, 0.002, None)
    """

    steps: int = 20_000
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup: int = 200
    min_lr_ratio: float = 0.01
    ema: float | None = 0.999
    clip_grad: float | None = 1.0
    antithetic: bool = True
    eval_every: int = 500
    checkpoint_every: int = 1000
    progress: bool = True
    restore_best: bool = False
    accumulate: int = 1
    mixed_precision: str | None = None
    condition_dropout: float = 0.0
    sinkhorn_n: int = 256
    sinkhorn_every: int = 1000
    sinkhorn_blur: float = 0.05
    sinkhorn_nfe: int = 32
    callbacks: tuple[Callback, ...] = field(default=(), compare=False)
    compile: bool = False

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size", minimum=2)
        check_positive(self.lr, "lr")
        check_positive(self.weight_decay, "weight_decay", allow_zero=True)
        check_positive_int(self.warmup, "warmup", minimum=0)
        check_fraction(self.min_lr_ratio, "min_lr_ratio", high=1.0 + 1e-12)
        if self.ema is not None:
            check_fraction(self.ema, "ema")
        if self.clip_grad is not None:
            check_positive(self.clip_grad, "clip_grad")
        check_positive_int(self.eval_every, "eval_every")
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        check_positive_int(self.accumulate, "accumulate")
        if self.mixed_precision is not None:
            check_choice(self.mixed_precision, "mixed_precision", ("bf16",))
        for name in ("antithetic", "progress", "restore_best", "compile"):
            check_bool(getattr(self, name), name)
        check_fraction(self.condition_dropout, "condition_dropout", high=1.0)
        if self.condition_dropout >= 1.0:
            raise ValueError(
                f"condition_dropout must be in [0, 1): 1 would never show the network a "
                f"condition, got {self.condition_dropout!r}"
            )
        self._check_sinkhorn()
        self._check_callbacks()

    def _check_callbacks(self) -> None:
        """``callbacks``: a list or tuple of :class:`~sitransport.callbacks.Callback`, kept as a
        tuple."""
        given = self.callbacks
        if not isinstance(given, (list, tuple)):
            raise TypeError(
                "callbacks must be a list or tuple of sitransport.callbacks.Callback, got "
                f"{type(given).__name__} {given!r:.60}"
            )
        for i, callback in enumerate(given):
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"callbacks[{i}] must be a sitransport.callbacks.Callback (subclass it and "
                    f"override its hooks), got {type(callback).__name__} {callback!r:.60}"
                )
        object.__setattr__(self, "callbacks", tuple(given))

    def spec(self) -> dict[str, Any]:
        """Plain data: the fields by name without ``callbacks`` (objects of the running
        process, not settings; :meth:`from_spec` rebuilds settings without callbacks).

        Example:
            >>> from sitransport.callbacks import Callback
            >>> settings = TrainSettings(steps=10, callbacks=[Callback()])
            >>> spec = settings.spec()
            >>> spec["steps"], "callbacks" in spec, TrainSettings.from_spec(spec) == settings
            (10, False, True)
        """
        plain = dataclasses.asdict(dataclasses.replace(self, callbacks=()))
        del plain["callbacks"]
        return plain

    def without_callbacks(self) -> TrainSettings:
        """These settings with no callbacks (what ``flow.config`` records).

        Example:
            >>> from sitransport.callbacks import Callback
            >>> TrainSettings(callbacks=[Callback()]).without_callbacks().callbacks
            ()
        """
        return dataclasses.replace(self, callbacks=()) if self.callbacks else self

    def _check_sinkhorn(self) -> None:
        """The diagnostic's fields (see :mod:`sitransport.train.diagnostics`)."""
        n = check_positive_int(self.sinkhorn_n, "sinkhorn_n", minimum=0)
        if 0 < n < MIN_SINKHORN_N:
            raise ValueError(
                f"sinkhorn_n must be 0 (off) or an integer >= {MIN_SINKHORN_N} held-out "
                f"samples per side, got {n}"
            )
        check_positive_int(self.sinkhorn_every, "sinkhorn_every")
        check_positive(self.sinkhorn_blur, "sinkhorn_blur")
        check_positive_int(self.sinkhorn_nfe, "sinkhorn_nfe", maximum=MAX_SINKHORN_NFE)


def freeze_step(freeze: Any, steps: int) -> int | None:
    """The last path step of a max–min fit frozen after a fraction ``freeze`` of ``steps``
    (``None``: ascend to the end, ``freeze == 1``).

    Args:
        freeze: the fraction of the run after which the path stops ascending, a number in
            ``[0, 1]``.
        steps: the number of training steps of the run.

    Raises:
        ValueError: ``freeze`` is not a number in ``[0, 1]``.

    Example:
        >>> freeze_step(0.5, 1000), freeze_step(1, 1000)
        (500, None)
    """
    if isinstance(freeze, bool) or not isinstance(freeze, (int, float)) or not 0 <= freeze <= 1:
        raise ValueError(f"path_freeze must be a number in [0, 1], got {freeze!r}")
    return None if freeze == 1 else int(freeze * steps)


@dataclass(frozen=True)
class Checkpointing(FieldsSpec):
    """Where and how often a fit checkpoints, and whether it resumes: ``fit``'s
    ``checkpoint=`` (a directory alone is ``Checkpointing(dir)``).

    Args:
        dir: the folder of ``checkpoint.pt`` (a str or path; kept as a str).
        every: steps between checkpoints. Default ``1000``.
        resume: continue from the checkpoint found in ``dir``, if there is one (it must
            belong to the same settings and data: see :func:`~sitransport.fit`). Default ``False``.

    Example:
        >>> from sitransport import Checkpointing
        >>> Checkpointing("runs/a", every=500).spec()
        {'dir': 'runs/a', 'every': 500, 'resume': False}
    """

    dir: str
    every: int = 1000
    resume: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.dir, os.PathLike):
            object.__setattr__(self, "dir", os.fspath(self.dir))
        if not isinstance(self.dir, str) or not self.dir:
            raise TypeError(f"checkpoint dir must be a non-empty str or path, got {self.dir!r}")
        check_positive_int(self.every, "checkpoint every")
        check_bool(self.resume, "resume")


@dataclass(frozen=True)
class LatentSpec(FieldsSpec):
    """A fit in principal coordinates (``fit(..., latent=..)``): ``components`` axes, or
    ``None`` for as many as keep ``variance`` of the variance (``latent="pca"``).

    Args:
        components: principal axes kept (default ``None``: chosen by ``variance``).
        variance: fraction of the variance, in ``(0, 1]``, that the axes kept must explain
            when ``components`` is ``None`` (default 0.999).

    Example:
        >>> from sitransport import LatentSpec
        >>> LatentSpec(None, 0.99).spec()
        {'components': None, 'variance': 0.99}
    """

    components: int | None = None
    variance: float = 0.999

    def __post_init__(self) -> None:
        if self.components is not None:
            check_positive_int(self.components, "latent components")
        check_positive(self.variance, "LatentSpec.variance")  # a finite number > 0
        if self.variance > 1:
            raise ValueError(f"LatentSpec.variance must be in (0, 1], got {self.variance!r}")
