"""The entry point :func:`fit` (:func:`~sitransport.fitting.reflow.reflow` is beside it): it
validates its arguments, resolves
its settings (:mod:`~sitransport.fitting.settings`), its ends (:mod:`~sitransport.fitting.ends`),
its pair source (:mod:`~sitransport.fitting.pairs`) and its network
(:mod:`~sitransport.nn.builder`), and hands the run to :func:`~sitransport.train.train`."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from sitransport._validation import check_device, check_fraction, check_seed
from sitransport.callbacks import Callback
from sitransport.config import (
    Checkpointing,
    CouplingSpec,
    FitConfig,
    LatentSpec,
    MLPSpec,
    UNetSpec,
)
from sitransport.couplings import Coupling, get_coupling
from sitransport.distributed import ShardedDataset
from sitransport.ends.densities import Density, EmpiricalDensity, StandardNormal
from sitransport.fitting.conditions import (
    check_condition_settings,
    condition_record,
    conditional_draw,
    conditional_source,
    held_out_rows,
    resolve_conditions,
    split_conditions,
    training_conditions,
)
from sitransport.fitting.ends import (
    check_ranks,
    check_remedy,
    normalization,
    resolve_ends,
    validation_pairs,
)
from sitransport.fitting.fingerprint import fit_fingerprint
from sitransport.fitting.ot_choice import choose_ot, is_ot
from sitransport.fitting.pairs import pair_source
from sitransport.fitting.settings import (
    CHECKPOINT_FILE,
    check_fit_arguments,
    checkpointing,
    interpolant_record,
    latent_spec,
    merge_settings,
    path_settings,
    with_checkpointing,
)
from sitransport.flow import TransportFlow
from sitransport.flow.latent import LatentFlow, PCAEncoder
from sitransport.images import DequantizedImages
from sitransport.interpolants import Interpolant, Normalized, get_interpolant
from sitransport.losses import TimeSampler, get_time_sampler
from sitransport.nn.builder import network_spec, seeded_network
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings
from sitransport.protocols import Flow
from sitransport.train import TrainSettings, run_generator, train

__all__ = ["fit"]


def fit(
    rho0: Any,
    rho1: Any,
    *,
    interpolant: str | Interpolant | None = None,
    coupling: str | dict | Coupling = "independent",
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    validation: float = 0.1,
    progress: bool | None = None,
    callbacks: Sequence[Callback] | None = None,
    network: str | MLPSpec | UNetSpec = "auto",
    training: TrainSettings | None = None,
    optimize_path: bool | PathSettings = False,
    checkpoint: str | os.PathLike | Checkpointing | None = None,
    time_sampler: str | dict | TimeSampler = "uniform",
    normalize: bool = True,
    remedy: str | None = None,
    latent: int | str | LatentSpec | None = None,
    ode: ODEOptions | None = None,
    num_workers: int = 0,
    condition: Any = None,
    condition_weight: float | None = None,
) -> Flow:
    r"""Learn a transport map from ``rho0`` to ``rho1`` by minimising the quadratic loss.

    .. math::

        \min_v\; \mathbb{E}_{t, x_0, x_1}\big[|v_t(x_t)|^2 - 2\,\partial_t x_t\cdot v_t(x_t)\big],
        \qquad x_t = \alpha(t) x_0 + \beta(t) x_1,

    with ``x0 ~ rho0`` and ``x1 ~ rho1`` drawn independently. Simulation-free: no ODE is
    solved during training.

    The common settings are keywords; the rest come grouped in typed objects:
    ``training=`` (:class:`~sitransport.train.TrainSettings`: EMA, warm-up, clipping,
    weight decay, evaluation, accumulation, mixed precision), ``network=``
    (:class:`~sitransport.config.MLPSpec` or :class:`~sitransport.config.UNetSpec`),
    ``optimize_path=`` (:class:`~sitransport.paths.PathSettings`) and ``checkpoint=``
    (:class:`~sitransport.config.Checkpointing`). A setting that does not apply to this fit
    (an MLP for images, ``restore_best`` without validation, ``num_workers`` without a
    dataset, ...) raises a ``ValueError`` that names it.

    Args:
        rho0: source at ``t = 0``: samples ``(n, d)`` or images ``(n, c, h, w)`` (numpy,
            torch or xarray), integer images as :class:`~sitransport.images.ImageData`
            (dequantised afresh each batch, in ``[0, 1]``), ``"gaussian"`` (``N(0, I)``) or a
            torch Distribution.
        rho1: target at ``t = 1``, same kinds, or a map-style torch ``Dataset`` of images
            (read through :class:`~sitransport.distributed.ShardedDataset`: one shard per rank
            under ``torch.distributed``; integer images are dequantised with 256 levels), or a
            ``DataLoader`` over one (its dataset and ``num_workers`` are used; batches and
            shuffling are fit's own, so runs are reproducible and resumable).
        interpolant: ``"trig"``, ``"linear"`` or an :class:`Interpolant`. Default ``None``:
            ``"trig"``, or the one ``coupling="ot"`` picks.
        coupling: pairing of each batch: ``"ot"`` (I want the optimal-transport map: the
            coupling, network and interpolant are picked from the data's shape, size and
            ``device`` by :func:`~sitransport.fitting.choose_ot`, e.g. 8,192-point
            ``global_ot`` plans, ``network="potential"``, ``"linear"`` and 4,000 steps
            (8,000 above d = 16) for vectors; ``network=``, ``interpolant=`` and ``steps=``
            (or ``training``'s steps, when not the default) given by the caller win; the
            choice and its reason are in ``flow.config.ot_choice``), ``"independent"``
            (the paper's), ``"exact_ot"`` (exact minibatch OT, in blocks of 256),
            ``"global_ot"`` (batches drawn from the exact OT plan of 4096-point subsamples of
            the training sets, re-solved periodically: OT pairs at about the cost of
            independent ones; the solve times are in
            ``flow.history.attrs["ot_plan_solve_s"]``) or ``"sinkhorn"`` (entropic); see
            :mod:`sitransport.couplings`.
        steps: optimisation steps (default: ``training.steps``, 20,000, or what
            ``coupling="ot"`` picks).
        batch_size: pairs per step (default: ``training.batch_size``, 512).
        lr: peak AdamW learning rate (default: ``training.lr``, ``2e-3``): linear warm-up
            over ``training.warmup`` steps, then cosine decay to 1% of it.
        seed: seeds the whole run (splits, batches, times, initial weights); an integer in
            ``[0, 2**63 - 1]``. Default ``0``.
        device: torch device for training and the returned flow: ``"cpu"``, an available
            ``"cuda[:index]"`` or ``"mps"``.
        dtype: network dtype (``torch.float32`` or ``torch.float64``). Default ``torch.float32``.
        validation: fraction of each sample set held out for the validation loss and the
            Sinkhorn diagnostic (``training.sinkhorn_n``). Default ``0.1``.
        progress: show a tqdm progress bar (default: ``training.progress``, on).
        callbacks: :class:`~sitransport.callbacks.Callback` objects called during training,
            e.g. ``[st.callbacks.TensorBoard("runs/a")]`` (default: ``training.callbacks``,
            none); never recorded in ``flow.config``.
        network: ``"auto"`` (an MLP for vectors, a U-Net for images; with ``coupling="ot"``
            its pick), ``"mlp"``,
            ``"potential"`` (vectors: the velocity is the gradient of an MLP potential,
            :class:`~sitransport.nn.PotentialVelocity`, a curl-free field like the
            optimal-transport velocity; about 2-2.5 times the cost per step), ``"unet"``
            (the ``"tiny"`` preset up to 16x16 images, ``"small"`` above), a U-Net preset
            name (:data:`~sitransport.nn.UNET_PRESETS`, e.g. ``"cifar10"``), or a spec:
            :class:`~sitransport.config.MLPSpec` (width, depth, activation, time and space
            frequencies; a ``width`` of ``None`` picks 128 for ``d <= 16`` and 256 above) or
            :class:`~sitransport.config.UNetSpec` (a preset and arguments overriding it).
        training: the optimisation settings (:class:`~sitransport.train.TrainSettings`;
            default: its defaults). The keywords ``steps``, ``batch_size``, ``lr``,
            ``progress`` and ``callbacks``, when given, take precedence over its fields of the
            same name, so one settings object serves runs of different lengths.
            ``training.checkpoint_every`` is set by ``checkpoint=``.
        optimize_path: max–min training: ascend on the interpolant's parameters (needs a
            learnable interpolant, e.g. ``"fourier"``); see :mod:`sitransport.paths`.
            ``True`` is ``PathSettings(stop=steps // 2)``: the path is frozen after half
            of the steps and the velocity finishes on it. A
            :class:`~sitransport.paths.PathSettings` sets the ascent's learning rate,
            step ratio, start, mode and last step. Default ``False``.
        checkpoint: a directory (or :class:`~sitransport.config.Checkpointing` with
            ``every`` and ``resume``) for ``checkpoint.pt``, written every ``every`` steps
            (default 1000). The file also stores a fingerprint of the call: these settings
            and, for each end, its kind, shape, size and the SHA-256 of a fixed subsample
            (evenly spread rows of samples; a fixed-seed draw of a distribution). With
            ``resume=True`` the fit continues from the checkpoint if present: every setting
            and both ends must be the checkpoint's, except ``steps``, ``progress``, how often
            and where it checkpoints, ``device``, ``num_workers`` and ``ode``. A larger
            ``steps`` extends the run on the original learning-rate schedule (the extra
            steps run at its floor, 1% of ``lr``; see :func:`~sitransport.train.train`);
            with ``optimize_path=True`` it would also move the step the path freezes at,
            which is refused.
        time_sampler: distribution of training times: ``"uniform"``, ``"beta"`` or
            ``{"name": "beta", "a": .., "b": ..}`` (``a`` and ``b`` in ``[1e-3, 1e3]``;
            ``a=1, b=0.5`` with
            ``MLPSpec(space_frequencies=5)`` sharpens the edges of densities with jumps; see
            the failure-modes guide).
        normalize: learn in coordinates ``(x - m) / s`` (pooled mean ``m`` and scalar scale
            ``s`` of both ends); a similarity, so optimal-transport couplings are kept. A
            change of coordinates only: the network learns the named path
            :math:`\alpha x_0 + \beta x_1` itself, written in those coordinates
            (:class:`~sitransport.interpolants.Normalized`), so velocities, scores and
            marginals are the same as with ``normalize=False``. Default ``True``.
        remedy: ``None`` (default) or ``"auto"`` (vector ends only). ``fit`` compares the
            effective ranks (covariance spectrum) of the two sample sets and warns, naming
            both, when ``rho0``'s is lower: a deterministic flow maps a lower-dimensional
            source onto a lower-dimensional set and cannot fill ``rho1``. With ``"auto"`` it
            then trains a stochastic interpolant
            (:class:`~sitransport.interpolants.Stochastic` on the chosen base path, with a
            denoiser; its noise amplitude ``a`` is the data's scale, that of the
            normalisation, so the remedy does not depend on the data's units) and the flow
            samples with the SDE by default.
        latent: fit in principal coordinates of the sample sets (vectors only): a number of
            axes, ``"pca"`` (as many as keep 99.9% of the variance) or a
            :class:`~sitransport.config.LatentSpec`; returns a
            :class:`~sitransport.latent.LatentFlow`. Default ``None``.
        ode: default ODE settings of the returned flow.
        num_workers: ``DataLoader`` workers when ``rho1`` is a torch ``Dataset``. Default ``0``.
        condition: fit a family of densities :math:`\rho_1(x | c)`, one map per condition
            ``c`` (see the guide "Conditional transport"): ``c`` with one row per sample of
            ``rho1`` (samples, :class:`~sitransport.images.ImageData`, or one per item of a
            torch ``Dataset``, e.g. ``dataset.targets``), either labels ``(n,)`` (integers
            or strings: a learned embedding per label) or float features
            ``(n,)`` / ``(n, k)`` (standardised, then an MLP embedding), as numpy, torch,
            xarray or pandas; ``rho0`` is shared by all conditions. Or a pair ``(c0, c1)``
            when both ends are samples with conditions of their own (control and treated
            cells per drug): pairs are then drawn within equal condition values. Couplings
            pair within conditions (blocks per label; see ``condition_weight``);
            ``"global_ot"`` solves its plans within conditions (one per condition value, or
            one between points augmented with their features; see
            :mod:`sitransport.couplings.conditional_plan`). Every method
            of the flow then takes ``condition=``. Default ``None``: one map.
        condition_weight: the weight :math:`\lambda` of continuous features in the pairing
            cost :math:`|x_0 - x_1|^2 + \lambda |c_0 - c_1|^2` of OT couplings under
            ``condition=c`` with float features (normalised coordinates, standardised
            features; ``"global_ot"`` plans included); default ``None``: see
            :mod:`sitransport.couplings.conditional`.

    Returns:
        The fitted flow, a :class:`TransportFlow` (with ``latent=``, a
        :class:`~sitransport.latent.LatentFlow`); ``flow.config`` records these settings (a
        :class:`~sitransport.config.FitConfig`) and ``flow.history`` the training record.

    Raises:
        ValueError, TypeError: bad input (the message names the argument), e.g. ``seed``
            outside ``[0, 2**63 - 1]``, an unsupported ``device``, or a setting that does
            not apply to this fit.
        ValueError: ``checkpoint`` is not a folder ``fit`` can write ``checkpoint.pt`` to
            (an existing file, a path through a file, or a folder that cannot be written);
            checked before any data is read.
        ValueError: the normalisation of the data overflows float64, or ``dtype`` cannot
            resolve an end in it (the message names the end, and ``dtype=torch.float64``
            when that resolves it).
        TrainingDivergedError: the loss or gradient became non-finite, or the loss grew by
            orders of magnitude (a ``FloatingPointError``; the message names the step).
        CheckpointMismatchError: resuming a checkpoint of another run (every differing
            field is listed) or with ``steps`` below the checkpoint's step.

    Notes:
        Under ``torch.distributed`` (launch with ``torchrun``, call
        :func:`sitransport.distributed.setup`), ``batch_size`` is the global batch: see
        :func:`~sitransport.train.train`.

        Training that diverges stops with an error rather than return a broken flow: a
        non-finite loss or gradient norm, or a flow-matching loss whose 5-step running
        median grew to ``1e4`` times its lowest, or one batch loss ``1e8`` times it (see
        :func:`~sitransport.train.train`).

    Example:
        >>> import sitransport as st
        >>> x1 = st.datasets.sample("moons", 2000, seed=0)
        >>> flow = st.fit("gaussian", x1, steps=200, progress=False,
        ...               network=st.MLPSpec(width=64), training=st.TrainSettings(ema=None))
        >>> flow.sample(5, seed=0).shape
        (5, 2)
    """
    # the keywords as given (locals() holds only the arguments here), for a latent fit's
    # second call of fit
    call = {k: v for k, v in locals().items() if k not in ("rho0", "rho1", "latent")}
    seed = check_seed(seed)  # before the config records it
    check_fit_arguments(device, dtype, normalize, ode, num_workers)
    validation = check_fraction(validation, "validation", high=0.9)
    ckpt = checkpointing(checkpoint)
    settings = merge_settings(
        training,
        TrainSettings(),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        progress=progress,
        callbacks=callbacks,
    )
    settings = with_checkpointing(settings, ckpt, training)
    if settings.restore_best and validation == 0:
        raise ValueError(
            "training.restore_best=True keeps the weights of the lowest validation loss, but "
            "validation=0 holds nothing out: set validation > 0 or restore_best=False"
        )
    path = path_settings(optimize_path, settings.steps)
    interp = get_interpolant(interpolant if interpolant is not None else "trig")
    if path is not None:  # trained in place: never mutate the caller's object
        interp = copy.deepcopy(interp)
    sampler = get_time_sampler(time_sampler)
    pairing = None if is_ot(coupling) else get_coupling(coupling)
    d0, d1, source = resolve_ends(rho0, rho1, seed, num_workers)
    conds = resolve_conditions(condition, d0, source if source is not None else d1)
    if pairing is None and latent is None:  # with latent=, "ot" chooses in latent coordinates
        return _fit_ot(rho0, rho1, d0, source if source is not None else d1, call)
    check_condition_settings(conds, settings, pairing, condition_weight)
    if latent is not None:
        if len(d0.shape) == 3 or d1 is None:  # d1 is None: a dataset at rho1
            raise ValueError("latent= works on vectors (n, d); flatten images first")
        return _fit_latent(d0, d1, latent_spec(latent), call)
    assert pairing is not None  # "ot" is resolved by _fit_ot
    net_spec = network_spec(network, d0.shape)
    check_remedy(d0, d1, remedy)

    gen = run_generator(seed, 2)
    c0 = conds.c0 if conds is not None else None
    c1 = conds.c1 if conds is not None else None
    train0, held0, c0_train, _ = split_conditions(d0, c0, validation, gen, "rho0")
    train1, held1, c1_train, c1_held = split_conditions(
        source if source is not None else d1, c1, validation, gen, "rho1"
    )
    norm = normalization(train0, train1, normalize, dtype, gen)
    interp, ranks, sde = check_ranks(d0, d1, interp, remedy, norm.scale)
    encoder = conds.encoder if conds is not None else None
    net = seeded_network(net_spec, d0.shape, interp.stochastic, seed, encoder)
    val: tuple[Tensor, ...] | None = None
    if conds is None:
        if validation > 0:
            val = validation_pairs(train0, held0, train1, held1, norm, gen)
        pairs = pair_source(train0, train1, norm, pairing, seed)
    else:
        assert c1_train is not None  # conditions are split with their samples
        draw = conditional_draw(train0, train1, (c0_train, c1_train), conds.encoder, norm, dtype)
        if validation > 0 and c1_held is not None:
            val = held_out_rows(draw, held1, c1_held, gen)
        pairs = conditional_source(draw, pairing, condition_weight, seed)
    config = FitConfig(
        training=settings,
        network=net_spec,
        coupling=CouplingSpec.of(pairing),
        interpolant=interpolant_record(interp),
        time_sampler=sampler.spec(),
        path=path,
        ode=ode or ODEOptions(),
        checkpoint=ckpt,
        seed=seed,
        device=str(check_device(device)),
        dtype=dtype,
        validation=validation,
        normalize=normalize,
        remedy=remedy,
        num_workers=num_workers,
        rank0=ranks[0] if ranks else None,
        rank1=ranks[1] if ranks else None,
        sample_method="sde" if sde else "ode",
        condition=conds.kind if conds is not None else None,
        condition_weight=condition_weight,
    )
    file = None
    if ckpt is not None:
        file = Path(ckpt.dir) / CHECKPOINT_FILE
        file.parent.mkdir(parents=True, exist_ok=True)
    end1 = source if source is not None else d1
    assert end1 is not None  # resolve_ends gives rho1 as a dataset or as a density
    trained = train(
        net,
        Normalized(interp, norm.shift, norm.scale),  # the caller's path, in the network's u
        pairs,
        settings=settings,
        time_sampler=sampler,
        path=path,
        seed=seed,
        validation=val,
        checkpoint=file,
        resume=ckpt is not None and ckpt.resume,
        device=device,
        dtype=dtype,
        fingerprint=fit_fingerprint(config, d0, end1, conds) if ckpt else None,
        conditions=training_conditions(conds, condition_weight, settings.condition_dropout),
    )
    if conds is not None:
        trained.history.attrs.update(condition_record(conds, c1_train))
    return TransportFlow(
        trained.model,
        interp,
        base=d0,
        target=d1 if not isinstance(d1, DequantizedImages) else None,  # not kept in the flow
        normalization=norm,
        ode=ode,
        config=config,
        history=trained.history,
        condition=encoder,
    )


def _fit_ot(rho0: Any, rho1: Any, d0: Density, end1: Any, call: dict[str, Any]) -> Flow:
    """``fit`` with ``coupling="ot"``: the concrete coupling, network and interpolant of
    :func:`~sitransport.fitting.choose_ot` (the caller's ``network``, ``interpolant`` and
    steps win), recorded in ``config.ot_choice``. ``call``: fit's other keywords."""
    sizes = [e.samples.shape[0] for e in (d0, end1) if isinstance(e, EmpiricalDensity)]
    sizes += [len(e.dataset) for e in (end1,) if isinstance(e, ShardedDataset)]
    choice = choose_ot(tuple(d0.shape), max(sizes) if sizes else None, call["device"])
    training = call["training"]
    mine = {
        "interpolant": call["interpolant"] is not None,
        "network": call["network"] != "auto",
        # a TrainSettings whose steps differ from the default names the caller's length
        "steps": call["steps"] is not None
        or (training is not None and training.steps != TrainSettings().steps),
    }
    kw = {
        **call,
        "coupling": choice.coupling,
        "interpolant": call["interpolant"] if mine["interpolant"] else choice.interpolant,
        "network": call["network"] if mine["network"] else choice.network,
        "steps": call["steps"] if mine["steps"] else choice.steps,
    }
    overridden = tuple(name for name, given in mine.items() if given)
    inner = cast(TransportFlow, fit(rho0, rho1, **kw))
    assert inner.config is not None  # fit records one
    choice = dataclasses.replace(choice, overridden=overridden)
    return _with_config(inner, dataclasses.replace(inner.config, ot_choice=choice))


def _fit_latent(d0: Density, d1: Density, spec: LatentSpec, call: dict[str, Any]) -> LatentFlow:
    """``fit`` in the principal coordinates of the empirical ends (see ``latent=``), with
    ``fit``'s other keywords ``call``."""
    pool = [d.samples for d in (d0, d1) if isinstance(d, EmpiricalDensity)]
    if not pool:
        raise ValueError("latent= needs samples at one end at least to find principal axes")
    enc = PCAEncoder.fit(torch.cat(pool), spec.components, spec.variance)

    def to_latent(d: Density, name: str) -> Any:
        if isinstance(d, EmpiricalDensity):
            return enc.encode(d.samples).numpy()
        if isinstance(d, StandardNormal):
            return "gaussian"
        raise ValueError(f"latent= supports samples or 'gaussian' for {name}, got a {d.kind}")

    # without latent= fit returns a TransportFlow
    inner = cast(TransportFlow, fit(to_latent(d0, "rho0"), to_latent(d1, "rho1"), **call))
    assert inner.config is not None  # fit records one
    config = dataclasses.replace(inner.config, latent=spec)
    return LatentFlow(
        _with_config(inner, config), enc, source_is_latent=not isinstance(d0, EmpiricalDensity)
    )


def _with_config(flow: TransportFlow, config: FitConfig) -> TransportFlow:
    """``flow`` with another ``config`` (the same network, path, ends, record and
    conditions)."""
    return TransportFlow(
        flow.network,
        flow.interpolant,
        base=flow.base,
        target=flow.target,
        shape=flow.shape,
        normalization=flow.normalization,
        ode=flow.ode,
        config=config,
        history=flow.history,
        condition=flow.condition,
    )
