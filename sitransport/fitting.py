r"""The entry point: learn a transport flow between two densities.

:func:`fit` resolves both ends (samples, images, ``"gaussian"``, a torch Distribution or a
torch ``Dataset``), holds out a validation fraction, normalises, builds the network and hands
the run to :func:`~sitransport.train.train`; :func:`reflow` retrains a fitted flow on the
coupling of its own map. ``latent=`` fits in principal coordinates. No ODE is solved during
training.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from sitransport._bases import Density, EmpiricalDensity, as_density
from sitransport._validation import (
    check_bool,
    check_choice,
    check_device,
    check_fraction,
    check_pixels,
    check_positive_int,
    check_seed,
)
from sitransport.config import (
    Checkpointing,
    CouplingSpec,
    FitConfig,
    LatentSpec,
    MLPSpec,
    NetworkSpec,
    UNetSpec,
    freeze_step,
)
from sitransport.couplings import Coupling, GlobalOT, PlanSampler, get_coupling
from sitransport.distributed import ShardedDataset
from sitransport.flow import Normalization, TransportFlow
from sitransport.images import DequantizedImages, ImageData
from sitransport.interpolants import (
    Interpolant,
    Linear,
    Normalized,
    Stochastic,
    Trig,
    get_interpolant,
)
from sitransport.losses import TimeSampler, get_time_sampler
from sitransport.nn import (
    UNET_PRESETS,
    MLPVelocity,
    PotentialVelocity,
    UNetVelocity,
    VelocityDenoiser,
    unet_config,
)
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings
from sitransport.protocols import Flow
from sitransport.train import TrainSettings, run_generator, train

if TYPE_CHECKING:
    from sitransport.latent import LatentFlow

__all__ = [
    "DatasetDraw",
    "effective_rank",
    "fit",
    "reflow",
]

# held-out pairs of the validation loss: at most this many (of each end) are kept
MAX_HELD_OUT = 4096


def fit(
    rho0: Any,
    rho1: Any,
    *,
    interpolant: str | Interpolant = "trig",
    coupling: str | dict | Coupling = "independent",
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    validation: float = 0.1,
    progress: bool | None = None,
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
        interpolant: ``"trig"`` (default), ``"linear"`` or an :class:`Interpolant`.
        coupling: pairing of each batch: ``"independent"`` (the paper's), ``"exact_ot"``
            (exact minibatch OT, in blocks of 256), ``"global_ot"`` (batches drawn from the
            exact OT plan of 4096-point subsamples of the training sets, re-solved
            periodically: OT pairs at about the cost of independent ones; the solve times are
            in ``flow.history.attrs["ot_plan_solve_s"]``) or ``"sinkhorn"`` (entropic); see
            :mod:`sitransport.couplings`.
        steps: optimisation steps (default: ``training.steps``, 20,000).
        batch_size: pairs per step (default: ``training.batch_size``, 512).
        lr: peak AdamW learning rate (default: ``training.lr``, ``2e-3``): linear warm-up
            over ``training.warmup`` steps, then cosine decay to 1% of it.
        seed: seeds the whole run (splits, batches, times, initial weights); an integer in
            ``[0, 2**63 - 1]``. Default ``0``.
        device: torch device for training and the returned flow: ``"cpu"``, an available
            ``"cuda[:index]"`` or ``"mps"``.
        dtype: network dtype (``torch.float32`` or ``torch.float64``). Default ``torch.float32``.
        validation: fraction of each sample set held out for the validation loss. Default ``0.1``.
        progress: show a tqdm progress bar (default: ``training.progress``, on).
        network: ``"auto"`` (an MLP for vectors, a U-Net for images), ``"mlp"``,
            ``"potential"`` (vectors: the velocity is the gradient of an MLP potential,
            :class:`~sitransport.nn.PotentialVelocity`, a curl-free field like the
            optimal-transport velocity; about 2-2.5 times the cost per step), ``"unet"``
            (the ``"tiny"`` preset up to 16x16 images, ``"small"`` above), a U-Net preset
            name (:data:`~sitransport.nn.UNET_PRESETS`, e.g. ``"cifar10"``), or a spec:
            :class:`~sitransport.config.MLPSpec` (width, depth, activation, time and space
            frequencies; a ``width`` of ``None`` picks 128 for ``d <= 16`` and 256 above) or
            :class:`~sitransport.config.UNetSpec` (a preset and arguments overriding it).
        training: the optimisation settings (:class:`~sitransport.train.TrainSettings`;
            default: its defaults). The keywords ``steps``, ``batch_size``, ``lr`` and
            ``progress``, when given, take precedence over its fields of the same name, so
            one settings object serves runs of different lengths.
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
            ``{"name": "beta", "a": .., "b": ..}`` (``a=1, b=0.5`` with
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
            denoiser) and the flow samples with the SDE by default.
        latent: fit in principal coordinates of the sample sets (vectors only): a number of
            axes, ``"pca"`` (as many as keep 99.9% of the variance) or a
            :class:`~sitransport.config.LatentSpec`; returns a
            :class:`~sitransport.latent.LatentFlow`. Default ``None``.
        ode: default ODE settings of the returned flow.
        num_workers: ``DataLoader`` workers when ``rho1`` is a torch ``Dataset``. Default ``0``.

    Returns:
        The fitted flow, a :class:`TransportFlow` (with ``latent=``, a
        :class:`~sitransport.latent.LatentFlow`); ``flow.config`` records these settings (a
        :class:`~sitransport.config.FitConfig`) and ``flow.history`` the training record.

    Raises:
        ValueError, TypeError: bad input (the message names the argument), e.g. ``seed``
            outside ``[0, 2**63 - 1]``, an unsupported ``device``, or a setting that does
            not apply to this fit.
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
    _check_fit_arguments(device, dtype, normalize, ode, num_workers)
    validation = check_fraction(validation, "validation", high=0.9)
    ckpt = _checkpointing(checkpoint)
    settings = _merge_settings(
        training, TrainSettings(), steps=steps, batch_size=batch_size, lr=lr, progress=progress
    )
    settings = _with_checkpointing(settings, ckpt, training)
    if settings.restore_best and validation == 0:
        raise ValueError(
            "training.restore_best=True keeps the weights of the lowest validation loss, but "
            "validation=0 holds nothing out: set validation > 0 or restore_best=False"
        )
    path = _path_settings(optimize_path, settings.steps)
    interp = get_interpolant(interpolant)
    if path is not None:  # trained in place: never mutate the caller's object
        interp = copy.deepcopy(interp)
    sampler = get_time_sampler(time_sampler)
    pairing = get_coupling(coupling)
    d0, d1, source = _ends(rho0, rho1, seed, num_workers)
    if latent is not None:
        if len(d0.shape) == 3 or d1 is None:  # d1 is None: a dataset at rho1
            raise ValueError("latent= works on vectors (n, d); flatten images first")
        return _fit_latent(d0, d1, _latent_spec(latent), call)
    net_spec = _network_spec(network, d0.shape)
    interp, ranks, sde = _check_ranks(d0, d1, interp, remedy)

    gen = run_generator(seed, 2)
    train0, held0 = _split(d0, validation, gen, "rho0")
    train1, held1 = _split(source if source is not None else d1, validation, gen, "rho1")
    norm = _normalization(train0, train1, normalize, dtype, gen)
    val = None
    if validation > 0:
        val = _validation_pairs(train0, held0, train1, held1, norm, gen)
    net = _network(net_spec, d0.shape, interp.stochastic, seed)
    draw = _pair_draw(train0, train1, norm, pairing, seed)
    config = FitConfig(
        training=settings,
        network=net_spec,
        coupling=CouplingSpec.of(pairing),
        interpolant=_interpolant_record(interp),
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
    )
    file = None
    if ckpt is not None:
        file = Path(ckpt.dir) / "checkpoint.pt"
        file.parent.mkdir(parents=True, exist_ok=True)
    end1 = source if source is not None else d1
    assert end1 is not None  # _ends gives rho1 as a dataset or as a density
    trained = train(
        net,
        Normalized(interp, norm.shift, norm.scale),  # the caller's path, in the network's u
        draw,
        settings=settings,
        time_sampler=sampler,
        coupling=pairing,
        path=path,
        seed=seed,
        validation=val,
        checkpoint=file,
        resume=ckpt is not None and ckpt.resume,
        device=device,
        dtype=dtype,
        fingerprint=_fit_fingerprint(config, d0, end1) if ckpt else None,
    )
    return TransportFlow(
        trained.model,
        interp,
        base=d0,
        target=d1 if not isinstance(d1, DequantizedImages) else None,  # not kept in the flow
        normalization=norm,
        ode=ode,
        config=config,
        history=trained.history,
    )


def _merge_settings(given: TrainSettings | None, base: TrainSettings, **flat: Any) -> TrainSettings:
    """The training settings of a call: ``given`` (else ``base``) with the flat keywords
    ``flat`` that are not ``None``, which take precedence over its fields.

    Raises:
        TypeError: ``given`` is not a :class:`~sitransport.train.TrainSettings`.

    Example:
        >>> from sitransport.train import TrainSettings
        >>> settings = _merge_settings(TrainSettings(steps=5, ema=None), TrainSettings(),
        ...                            steps=10, lr=None)
        >>> settings.steps, settings.ema, settings.lr
        (10, None, 0.002)
    """
    if given is not None and not isinstance(given, TrainSettings):
        raise TypeError(
            f"training must be a TrainSettings or None, got {type(given).__name__} {given!r:.60}"
        )
    settings = given if given is not None else base
    return dataclasses.replace(
        settings, **{name: value for name, value in flat.items() if value is not None}
    )


def _with_checkpointing(
    settings: TrainSettings, ckpt: Checkpointing | None, given: TrainSettings | None
) -> TrainSettings:
    """``settings`` with ``checkpoint_every`` from ``ckpt``, which owns it.

    Raises:
        ValueError: ``training.checkpoint_every`` set with no checkpoint, or differing from
            ``checkpoint.every``.
    """
    default = TrainSettings().checkpoint_every
    own = given.checkpoint_every if given is not None else default
    if ckpt is None:
        if own != default:
            raise ValueError(
                f"training.checkpoint_every={own} does not apply: no checkpoint= was given "
                "(pass checkpoint=Checkpointing(dir, every=...))"
            )
        return settings
    if own not in (default, ckpt.every):
        raise ValueError(
            f"training.checkpoint_every={own} and checkpoint.every={ckpt.every} disagree: "
            "set it in checkpoint= only"
        )
    return dataclasses.replace(settings, checkpoint_every=ckpt.every)


def _checkpointing(checkpoint: Any) -> Checkpointing | None:
    """``fit``'s ``checkpoint``: a directory or a :class:`Checkpointing` (``None``: none)."""
    if checkpoint is None or isinstance(checkpoint, Checkpointing):
        return checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        return Checkpointing(os.fspath(checkpoint))
    raise TypeError(
        "checkpoint must be a directory (str or path), a Checkpointing or None, got "
        f"{type(checkpoint).__name__} {checkpoint!r:.60}"
    )


def _path_settings(optimize_path: Any, steps: int) -> PathSettings | None:
    """``fit``'s ``optimize_path`` as settings: ``True`` freezes the path after half the
    steps; ``False`` is none."""
    if isinstance(optimize_path, PathSettings):
        return optimize_path
    if optimize_path is True:
        return PathSettings(stop=freeze_step(0.5, steps))
    if optimize_path is False:
        return None
    raise TypeError(
        "optimize_path must be True, False or a PathSettings, got "
        f"{type(optimize_path).__name__} {optimize_path!r:.60}"
    )


def _latent_spec(latent: Any) -> LatentSpec:
    """``fit``'s ``latent``: a number of axes, ``"pca"`` or a :class:`LatentSpec`."""
    if isinstance(latent, LatentSpec):
        return latent
    if isinstance(latent, str):
        check_choice(latent, "latent", ("pca",))
        return LatentSpec(None)
    return LatentSpec(check_positive_int(latent, "latent"))


def _check_fit_arguments(
    device: Any, dtype: Any, normalize: Any, ode: Any, num_workers: Any
) -> None:
    """Checks of ``fit``'s arguments that nothing downstream names as the caller did."""
    check_device(device)
    _check_dtype(dtype)
    check_bool(normalize, "normalize")
    check_positive_int(num_workers, "num_workers", minimum=0)
    if ode is not None and not isinstance(ode, ODEOptions):
        raise TypeError(f"ode must be an ODEOptions or None, got {type(ode).__name__} {ode!r}")


def _check_dtype(dtype: Any) -> None:
    if not isinstance(dtype, torch.dtype) or dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def _end(rho: Any, name: str, shape: tuple[int, ...] | None = None) -> Density:
    """An end of ``fit``: integer images dequantised per draw, anything else as_density."""
    if isinstance(rho, ImageData):
        return DequantizedImages(rho.pixels, rho.levels)
    if isinstance(rho, Tensor):  # data is data: no gradient flows into the caller's tensor
        rho = rho.detach()
    return as_density(rho, name, shape=shape)


def _ends(
    rho0: Any, rho1: Any, seed: int, num_workers: int
) -> tuple[Density, Density | None, ShardedDataset | None]:
    """``(rho0, rho1, source)`` of ``fit``: both ends as densities, except a torch ``Dataset``
    (or a ``DataLoader`` over one) at ``rho1``, which is read through ``source`` (``rho1`` is
    then ``None``); the two are checked to have the same sample shape."""
    source = None
    if isinstance(rho1, torch.utils.data.DataLoader):  # its dataset and workers; fit batches
        rho1, num_workers = rho1.dataset, max(num_workers, rho1.num_workers)
    if isinstance(rho0, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        raise TypeError("rho0 cannot be a torch Dataset; pass it as rho1 (data at t = 1)")
    if not isinstance(rho1, torch.utils.data.Dataset) and num_workers:
        raise ValueError(
            f"num_workers={num_workers} does not apply: rho1 is not a torch Dataset or "
            "DataLoader, so no DataLoader workers are started (leave num_workers=0)"
        )
    if isinstance(rho1, torch.utils.data.Dataset):
        source = ShardedDataset(rho1, seed=seed, num_workers=num_workers)
        d1 = None
        d0 = _end(rho0, "rho0", source.shape)
        shape1 = source.shape
    elif isinstance(rho1, str):  # "gaussian" takes its dimension from the other end
        d0 = _end(rho0, "rho0")
        d1 = _end(rho1, "rho1", d0.shape)
        shape1 = d1.shape
    else:
        d1 = _end(rho1, "rho1")
        d0 = _end(rho0, "rho0", d1.shape)
        shape1 = d1.shape
    if d0.shape != shape1:
        raise ValueError(
            f"rho0 and rho1 must have the same dimension, got samples of shape {d0.shape} "
            f"and {shape1}"
        )
    if len(d0.shape) not in (1, 3):
        raise ValueError(
            f"fit takes vectors (n, d) or images (n, c, h, w), got sample shape {d0.shape}"
        )
    return d0, d1, source


def _check_ranks(
    d0: Density, d1: Density | None, interp: Interpolant, remedy: Any
) -> tuple[Interpolant, tuple[int, int] | None, bool]:
    """``(interpolant to train, (rank0, rank1) or None for images, sample by the SDE)``,
    after comparing the effective ranks of two vector ends: with ``rho0`` of lower rank, a
    warning, or with ``remedy="auto"`` a stochastic interpolant sampled by the SDE.

    Raises:
        ValueError: ``remedy`` is not ``None`` or ``"auto"``, or is set for images or a
            dataset, whose ranks are not computed.
    """
    if remedy is not None:
        check_choice(remedy, "remedy", ("auto",))
    if len(d0.shape) == 3 or d1 is None:  # images, datasets: no d x d covariance computed
        if remedy is not None:
            raise ValueError(
                f"remedy={remedy!r} does not apply to images or datasets: it compares the "
                "covariance ranks of vector ends; pass a Stochastic interpolant instead"
            )
        return interp, None, False
    rank0, rank1 = _rank_of(d0), _rank_of(d1)
    if rank0 >= rank1:
        return interp, (rank0, rank1), False
    if remedy == "auto" and not interp.stochastic:
        base_name = interp.spec().get("name") if isinstance(interp, (Linear, Trig)) else None
        interp = Stochastic(base_name or "linear", "sin2", 1.0)
        return interp, (rank0, rank1), True
    warnings.warn(
        f"rho0 has effective rank {rank0} but rho1 has {rank1}: a deterministic flow "
        "maps rho0's support onto a set of dimension at most "
        f"{rank0} and cannot fill rho1. Remedies: fit(..., remedy='auto') (stochastic "
        "interpolant + SDE sampling), a stochastic interpolant, or a latent flow",
        stacklevel=3,
    )
    return interp, (rank0, rank1), False


def _split(end: Any, fraction: float, gen: torch.Generator, name: str) -> tuple[Any, Any]:
    """Hold out ``fraction`` of a finite end: ``(training end, held-out samples or None)``.

    Sample sets, integer images (dequantised with ``gen``) and datasets (items loaded and
    dequantised) are split by one random permutation from ``gen``; at most
    :data:`MAX_HELD_OUT` held-out samples are kept. Other ends (distributions) are returned
    whole, with ``None``.
    """
    if fraction == 0.0:
        return end, None
    if isinstance(end, ShardedDataset):
        perm, n_val = _hold_out(len(end.dataset), fraction, gen, f"items of the {name} dataset")
        held = torch.utils.data.Subset(end.dataset, perm[:n_val].tolist())
        train_set = ShardedDataset(
            torch.utils.data.Subset(end.dataset, perm[n_val:].tolist()),
            levels=end.levels,
            seed=end.seed,
            num_workers=end.num_workers,
        )
        held_source = ShardedDataset(held, levels=end.levels)
        return train_set, _dataset_items(held_source, MAX_HELD_OUT, gen)
    if isinstance(end, DequantizedImages):
        perm, n_val = _hold_out(len(end), fraction, gen, f"images of {name}")
        return end.subset(perm[n_val:]), end.take(perm[:n_val][:MAX_HELD_OUT], gen)
    if isinstance(end, EmpiricalDensity):
        x = end.samples
        perm, n_val = _hold_out(x.shape[0], fraction, gen, f"samples of {name}")
        return EmpiricalDensity(x[perm[n_val:]]), x[perm[:n_val][:MAX_HELD_OUT]]
    return end, None


def _hold_out(n: int, fraction: float, gen: torch.Generator, what: str) -> tuple[Tensor, int]:
    """A random permutation of ``range(n)`` (from ``gen``) whose first ``n_val`` entries,
    ``fraction`` of ``n``, are held out; ``(permutation, n_val)``.

    Raises:
        ValueError: fewer than 1 held-out or 2 training items would be left.
    """
    n_val = int(round(fraction * n))
    if n_val < 1 or n - n_val < 2:
        raise ValueError(
            f"validation={fraction} leaves {n - n_val} training and {n_val} held-out {what} "
            f"(n={n}); need at least 2 and 1: use more data or validation=0"
        )
    return torch.randperm(n, generator=gen), n_val


def _normalization(
    train0: Any, train1: Any, normalize: bool, dtype: torch.dtype, gen: torch.Generator
) -> Normalization:
    """The coordinates ``(x - m) / s`` of ``fit``, from the training ends (sample sets as
    they are; other ends, and images, through a bounded draw from ``gen``)."""
    if not normalize:
        return Normalization.identity(train0.shape)
    images = len(train0.shape) == 3
    n_stat = 20_000 if not images else 2048  # images: a bounded pool for the statistics
    pool = [
        train.samples
        if isinstance(train, EmpiricalDensity) and not images
        else train.sample(n_stat, gen)
        if isinstance(train, Density)
        else _dataset_items(train, n_stat, gen)
        for train in (train0, train1)
    ]
    return Normalization.from_samples(*pool, names=("rho0", "rho1"), dtype=dtype)


def _validation_pairs(
    train0: Density,
    held0: Tensor | None,
    train1: Any,
    held1: Tensor | None,
    norm: Normalization,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Held-out ``(x0, x1)`` in normalised coordinates, as many of each: the held-out
    samples of an end, or :data:`MAX_HELD_OUT` fresh draws from ``gen`` of a distribution."""
    v0 = held0 if held0 is not None else train0.sample(MAX_HELD_OUT, gen)
    v1 = held1 if held1 is not None else train1.sample(MAX_HELD_OUT, gen)
    m = min(v0.shape[0], v1.shape[0])
    return norm.encode(v0[:m]), norm.encode(v1[:m])


def _network_spec(network: Any, shape: tuple[int, ...]) -> NetworkSpec:
    """The network of ``fit`` from its ``network`` argument, checked against the data: an
    :class:`MLPSpec` of resolved width for vectors, a :class:`UNetSpec` for images.

    Raises:
        TypeError: ``network`` is neither a name nor a spec.
        ValueError: an unknown name, a network that does not apply to the data (an MLP for
            images, a U-Net for vectors) or U-Net options the preset refuses.
    """
    images = len(shape) == 3
    spec: NetworkSpec
    if isinstance(network, str):
        check_choice(network, "network", ("auto", "mlp", "potential", "unet", *UNET_PRESETS))
        name = ("unet" if images else "mlp") if network == "auto" else network
        auto_preset = "tiny" if images and max(shape[1:]) <= 16 else "small"
        spec = (
            MLPSpec(name)
            if name in ("mlp", "potential")
            else UNetSpec(name if name in UNET_PRESETS else auto_preset, {})
        )
    elif isinstance(network, (MLPSpec, UNetSpec)):
        spec = network
    else:
        raise TypeError(
            "network must be 'auto', a network name, an MLPSpec or a UNetSpec, got "
            f"{type(network).__name__} {network!r:.60}"
        )
    if isinstance(spec, UNetSpec) != images:
        what, needs = (
            ("a U-Net", "images (n, c, h, w)") if images is False else ("an MLP", "vectors (n, d)")
        )
        raise ValueError(
            f"network={network!r} is {what}, which needs {needs}, got sample shape {shape}; "
            "network='auto' picks an MLP for vectors and a U-Net for images"
        )
    if isinstance(spec, UNetSpec):
        _unet_arguments(spec, shape)  # checks the preset and its arguments
        return spec
    return (
        spec
        if spec.width is not None
        else dataclasses.replace(spec, width=_default_width(shape[0]))
    )


def _build_network(spec: NetworkSpec, shape: tuple[int, ...]) -> nn.Module:
    """A freshly initialised network of ``spec`` for samples of ``shape``."""
    if isinstance(spec, UNetSpec):
        return UNetVelocity(**_unet_arguments(spec, shape))
    d = shape[0]
    return (PotentialVelocity if spec.kind == "potential" else MLPVelocity)(
        d,
        spec.width if spec.width is not None else _default_width(d),
        spec.depth,
        spec.activation,
        spec.time_frequencies,
        spec.space_frequencies,
    )


def _network(spec: NetworkSpec, shape: tuple[int, ...], stochastic: bool, seed: int) -> nn.Module:
    """The velocity network of ``fit``, initialised from ``seed`` (the global RNG is left as
    it was), with a second one for the denoiser of a stochastic interpolant."""
    with torch.random.fork_rng(devices=[]):  # seeded weight init, global RNG untouched
        torch.manual_seed(seed)
        net = _build_network(spec, shape)
        if stochastic:  # a second network for the denoiser eta_z (score = -eta_z / gamma)
            net = VelocityDenoiser(net, _build_network(spec, shape))
    return net


def _interpolant_record(interp: Interpolant) -> dict[str, Any] | None:
    """The spec of a built-in interpolant that rebuilds as itself (``None`` for a user's)."""
    try:
        spec = interp.spec()
        same = type(get_interpolant(spec)) is type(interp)
    except (TypeError, ValueError, KeyError):
        return None
    return spec if same else None


def _pair_draw(
    train0: Density, train1: Any, norm: Normalization, coupling: Coupling, seed: int
) -> Any:
    """``draw(n, generator)`` of normalised training pairs for
    :func:`~sitransport.train.train`: independent draws, a dataset's items (stateful), or the
    plans of a :class:`GlobalOT` coupling."""
    if isinstance(coupling, GlobalOT):  # batches from OT plans of the training sets
        return _plan_sampler(coupling, train0, train1, norm, seed)
    if isinstance(train1, ShardedDataset):  # its position in the epoch is checkpointed too
        return DatasetDraw(train0, train1, norm)

    def draw(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        return norm.encode(train0.sample(n, g)), norm.encode(train1.sample(n, g))

    return draw


def _plan_sampler(
    coupling: GlobalOT, train0: Density, train1: Any, norm: Normalization, seed: int
) -> PlanSampler:
    """The :class:`PlanSampler` of ``fit``'s training ends in normalised coordinates: sample
    sets as finite ends, other densities as streams."""
    if isinstance(train1, ShardedDataset):
        raise ValueError(
            "coupling='global_ot' needs rho1 as samples, ImageData or a distribution, not a "
            "torch Dataset; use coupling='exact_ot' for datasets"
        )

    def end(density: Density) -> Any:
        if isinstance(density, EmpiricalDensity):
            return norm.encode(density.samples)
        return lambda m, g: norm.encode(density.sample(m, g))

    return coupling.sampler(end(train0), end(train1), seed=seed + 4)


def _unet_arguments(spec: UNetSpec, shape: tuple[int, ...]) -> dict[str, Any]:
    """The :class:`UNetVelocity` arguments of ``spec`` for images of ``shape``."""
    c, h, w = shape
    if spec.preset is None:
        return {"channels": c, "image_size": [h, w], **spec.options}
    return unet_config(spec.preset, c, (h, w), **spec.options)


class DatasetDraw:
    """``draw(n, g)`` for :func:`~sitransport.train.train`: ``n`` base samples and the next
    ``n`` items of a :class:`~sitransport.distributed.ShardedDataset`, both normalised. It is
    stateful (the dataset's position), and its ``state_dict`` goes into checkpoints.

    Args:
        base: the source density ``rho0``; its samples have the images' shape.
        source: the target data set, read in shuffled order (this rank's shard).
        norm: the normalisation applied to both ends before they reach the trainer.

    Example:
        >>> import torch
        >>> from sitransport._bases import StandardNormal
        >>> from sitransport.distributed import ShardedDataset
        >>> from sitransport.flow import Normalization
        >>> from sitransport.fitting import DatasetDraw
        >>> data = torch.utils.data.TensorDataset(torch.rand(8, 1, 2, 2))
        >>> draw = DatasetDraw(StandardNormal((1, 2, 2)), ShardedDataset(data, seed=0),
        ...                    Normalization.identity((1, 2, 2)))
        >>> [x.shape for x in draw(4, torch.Generator().manual_seed(0))]
        [torch.Size([4, 1, 2, 2]), torch.Size([4, 1, 2, 2])]
    """

    def __init__(self, base: Density, source: ShardedDataset, norm: Normalization) -> None:
        self.base, self.source, self.norm = base, source, norm

    def __call__(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.norm.encode(self.base.sample(n, g)), self.norm.encode(self.source(n, g))

    def state_dict(self) -> dict[str, int]:
        """The dataset's position (see :meth:`ShardedDataset.state_dict`).

        Example:
            >>> import torch
            >>> from sitransport._bases import StandardNormal
            >>> from sitransport.distributed import ShardedDataset
            >>> from sitransport.flow import Normalization
            >>> data = torch.utils.data.TensorDataset(torch.rand(8, 2))
            >>> draw = DatasetDraw(StandardNormal((2,)), ShardedDataset(data, seed=0),
            ...                    Normalization.identity((2,)))
            >>> _ = draw(4, torch.Generator().manual_seed(0))
            >>> draw.state_dict()
            {'epoch': 0, 'position': 1}
        """
        return self.source.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position returned by :meth:`state_dict`.

        Args:
            state: ``{"epoch": ..., "position": ...}`` as :meth:`state_dict` returns it.

        Example:
            >>> import torch
            >>> from sitransport._bases import StandardNormal
            >>> from sitransport.distributed import ShardedDataset
            >>> from sitransport.flow import Normalization
            >>> data = torch.utils.data.TensorDataset(torch.rand(8, 2))
            >>> draw = DatasetDraw(StandardNormal((2,)), ShardedDataset(data, seed=0),
            ...                    Normalization.identity((2,)))
            >>> draw.load_state_dict({"epoch": 1, "position": 0})
            >>> draw.state_dict()
            {'epoch': 1, 'position': 0}
        """
        self.source.load_state_dict(state)


def _dataset_items(source: ShardedDataset, n: int, gen: torch.Generator) -> Tensor:
    """Up to ``n`` random items of a dataset, dequantised (float64)."""
    m = min(n, len(source.dataset))
    idx = torch.randperm(len(source.dataset), generator=gen)[:m].tolist()
    x = source.images(idx).detach()
    if torch.is_floating_point(x):
        return x.to(torch.float64)
    check_pixels(x, "dataset images", source.levels)
    return (x.to(torch.float64) + torch.rand(x.shape, generator=gen, dtype=torch.float64)) / (
        source.levels
    )


def effective_rank(x: Tensor, rtol: float = 1e-6) -> int:
    """Number of covariance eigenvalues above ``rtol`` times the largest: the dimension of
    the affine span the samples fill (a line in the plane has rank 1).

    Args:
        x: samples of shape ``(n, ...)``, flattened to ``(n, d)``; fewer than two samples give rank
            0.
        rtol: relative threshold on the eigenvalues of the sample covariance. Default ``1e-6``.

    Example:
        >>> import sitransport as st
        >>> effective_rank(torch.from_numpy(st.datasets.sample("line", 500, seed=0)))
        1
    """
    flat = x.flatten(1).to(torch.float64)
    if flat.shape[0] < 2:
        return 0
    eig = torch.linalg.eigvalsh(torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1]))
    top = float(eig.max())
    return int((eig > rtol * top).sum()) if top > 0 else 0


def _default_width(d: int) -> int:
    """MLP width when none is given: 128 up to 16 dimensions, 256 above."""
    return 128 if d <= 16 else 256


def _rank_of(density: Density) -> int:
    if isinstance(density, EmpiricalDensity):
        return effective_rank(density.samples)
    return math.prod(density.shape)  # Gaussian / distribution ends: full rank


def _digest(x: Tensor) -> str:
    """SHA-256 of a tensor's values (as float64) and shape."""
    x = x.detach().cpu().to(torch.float64).contiguous()
    return hashlib.sha256(repr(tuple(x.shape)).encode() + x.numpy().tobytes()).hexdigest()


def _spread(n: int, m: int) -> Tensor:
    """At most ``m`` indices spread evenly over ``range(n)`` (a fixed subsample)."""
    return torch.linspace(0, n - 1, min(n, m)).round().long()


def _data_fingerprint(end: Density | ShardedDataset) -> dict[str, Any]:
    """An end of ``fit`` as plain data: its spec and the SHA-256 of a fixed subsample (evenly
    spread rows of a sample set; a fixed-seed draw of a distribution, which tells its
    parameters apart)."""
    if isinstance(end, ShardedDataset):
        n = len(end.dataset)
        x = end.images(_spread(n, 64).tolist())
        return {"kind": "dataset", "n": n, "shape": list(end.shape), "sha256": _digest(x)}
    if isinstance(end, EmpiricalDensity):
        x = end.samples[_spread(end.samples.shape[0], 256)]
    elif isinstance(end, DequantizedImages):
        x = end.pixels[_spread(len(end), 64)]
    else:
        x = end.sample(64, run_generator(0))
    return {**end.spec(), "sha256": _digest(x)}


# what fit's fingerprint adds to train's (which has the training settings, seed, dtype,
# coupling, interpolant, time sampler, path settings and the network's architecture)
_FINGERPRINTED = ("validation", "normalize", "remedy", "rank0", "rank1", "sample_method")


def _fit_fingerprint(
    config: FitConfig, rho0: Density, rho1: Density | ShardedDataset
) -> dict[str, Any]:
    """What a resumed ``fit`` must share with the run that wrote the checkpoint, beyond what
    :func:`~sitransport.train.train` records: the network spec, the settings of ``fit``
    itself that change the model, and both ends of the data."""
    run: dict[str, Any] = {name: getattr(config, name) for name in _FINGERPRINTED}
    run.update(
        network=config.network.spec(),
        rho0=_data_fingerprint(rho0),
        rho1=_data_fingerprint(rho1),
    )
    return run


def _fit_latent(d0: Density, d1: Density, spec: LatentSpec, call: dict[str, Any]) -> LatentFlow:
    """``fit`` in the principal coordinates of the empirical ends (see ``latent=``), with
    ``fit``'s other keywords ``call``."""
    from sitransport._bases import StandardNormal
    from sitransport.latent import LatentFlow, PCAEncoder

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
    """``flow`` with another ``config`` (the same network, path, ends and record)."""
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
    )


def _fresh_network(network: Any, shape: tuple[int, ...], spec: NetworkSpec) -> nn.Module:
    """A newly initialised velocity network of the same architecture as ``network`` (the
    velocity part of a velocity-denoiser pair); one of ``spec`` when ``network`` is not one
    of ours."""
    network = getattr(network, "velocity", network)
    if isinstance(network, (MLPVelocity, PotentialVelocity, UNetVelocity)):
        kind = type(network)
        config_of = cast(dict[str, Any], network.config)  # ours all have one
        return kind(**{k: v for k, v in config_of.items() if k != "kind"})
    return _build_network(spec, shape)


def _network_spec_of(network: Any, shape: tuple[int, ...]) -> NetworkSpec:
    """The spec of a built-in velocity network (its velocity part), from its description;
    the default MLP for any other."""
    network = getattr(network, "velocity", network)
    description = cast("dict[str, Any]", getattr(network, "config", {}))
    if isinstance(network, UNetVelocity):
        skip = ("kind", "channels", "image_size")
        return UNetSpec(None, {k: v for k, v in description.items() if k not in skip})
    if isinstance(network, (MLPVelocity, PotentialVelocity)):
        fields = [f.name for f in dataclasses.fields(MLPSpec)]
        return MLPSpec(**{k: description[k] for k in fields})
    return MLPSpec(width=_default_width(math.prod(shape)))


def _device_of(network: Any) -> torch.device:
    """Where a network's parameters are (the CPU for a parameter-free callable)."""
    params = network.parameters() if isinstance(network, nn.Module) else iter(())
    first = next(iter(params), None)
    return first.device if first is not None else torch.device("cpu")


def reflow(
    flow: TransportFlow,
    n: int = 20_000,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    training: TrainSettings | None = None,
    interpolant: str | Interpolant = "linear",
    time_sampler: str | dict | TimeSampler | None = None,
    ode: ODEOptions | None = None,
) -> TransportFlow:
    r"""Rectify a flow: retrain on the coupling ``(x0, T(x0))`` of its own map ``T``.

    Pairs a fresh draw of ``rho0`` with its push-forward and fits a new velocity to them
    with the (default linear) interpolant. Pairs that come from a deterministic map do not
    cross, so the new flow's paths are straighter: lower kinetic energy and fewer ODE steps
    (Liu et al., Flow Straight and Fast, arXiv:2209.03003). Compare ``straightness`` and
    ``nfe`` of :func:`~sitransport.metrics.transport_report` before and after.

    The new network has the flow's architecture and trains as the flow did: with its
    ``flow.config.training`` settings (learning rate and schedule, EMA, clipping, batch
    size, ...), time sampler and dtype, on the device the flow's network is on. Each can be
    changed: the keywords as in :func:`~sitransport.fit`, the other settings by passing
    ``training=`` whole (e.g. ``dataclasses.replace(flow.config.training, ema=None)``). A
    flow built by hand (``flow.config is None``) trains with the defaults of
    :class:`~sitransport.train.TrainSettings` in its network's dtype.

    Args:
        flow: a fitted :class:`TransportFlow` with a base to draw ``rho0`` from.
        n: number of pairs generated. Default ``20000``.
        steps: training steps (default: ``training.steps``).
        batch_size: pairs per step (default: ``training.batch_size``).
        lr: peak learning rate (default: ``training.lr``).
        seed: seed of the pairs and the training run. Default ``0``.
        device: where to train (default: where the flow's network is).
        dtype: the new network's dtype (default: the flow's, ``flow.config.dtype``).
        progress: show progress bars (default: ``training.progress``).
        training: the training settings (default: the flow's, ``flow.config.training``);
            the four keywords above, when given, take precedence over its fields.
        interpolant: the new flow's interpolant (rectified flow uses ``"linear"``).
        time_sampler: distribution of training times (default: the flow's).
        ode: ODE settings for generating the pairs (default: the flow's).

    Returns:
        A new :class:`TransportFlow` with the same ends and normalisation; its ``config``
        is the flow's with the settings used, ``coupling.name == "paired"`` and
        ``reflow_generation`` one higher.

    Raises:
        ValueError: ``n < 2``, ``seed`` outside ``[0, 2**63 - 1]``, or no base to draw from.
        TypeError: ``training`` is not a ``TrainSettings``, or a bad ``dtype``.

    Example:
        >>> import sitransport as st
        >>> x1 = st.datasets.sample("moons", 1000, seed=0)
        >>> flow = st.fit("gaussian", x1, steps=50, network=st.MLPSpec(width=32),
        ...               progress=False, seed=0)
        >>> straight = st.reflow(flow, 1000, steps=50, progress=False)
        >>> straight.config.reflow_generation, straight.config.coupling.name
        (1, 'paired')
        >>> straight.sample(3, seed=0).shape
        (3, 2)
    """
    n = check_positive_int(n, "n", minimum=2)
    seed = check_seed(seed)
    if flow.base is None:
        raise ValueError("reflow needs rho0: the flow has no base to draw from")
    base = flow.config
    if base is None:  # built by hand: the defaults, in the network's dtype
        spec = _network_spec_of(flow.network, flow.shape)
        base = FitConfig(network=spec, interpolant=None, dtype=flow.dtype or torch.float32)
    training = _merge_settings(
        training, base.training, steps=steps, batch_size=batch_size, lr=lr, progress=progress
    )
    training = dataclasses.replace(training, checkpoint_every=TrainSettings().checkpoint_every)
    where = check_device(device) if device is not None else _device_of(flow.network)
    dtype = dtype if dtype is not None else base.dtype
    _check_dtype(dtype)
    sampler = get_time_sampler(time_sampler if time_sampler is not None else base.time_sampler)
    gen = run_generator(seed, 7)
    x0 = flow.base.sample(n, gen)
    x1 = torch.as_tensor(flow.push_forward(x0.numpy(), ode=ode))
    norm = flow.normalization
    z0, z1 = norm.encode(x0), norm.encode(x1)

    def draw(m: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, n, (m,), generator=g)
        return z0[idx], z1[idx]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _fresh_network(flow.network, flow.shape, base.network)
    interp = get_interpolant(interpolant)
    path = Normalized(interp, norm.shift, norm.scale)
    trained = train(
        net,
        path,
        draw,
        settings=training,
        time_sampler=sampler,
        seed=seed,
        device=where,
        dtype=dtype,
    )
    config = dataclasses.replace(
        base,
        training=training,
        coupling=CouplingSpec(CouplingSpec.PAIRED),
        interpolant=_interpolant_record(interp),
        time_sampler=sampler.spec(),
        path=None,
        checkpoint=None,
        seed=seed,
        device=str(where),
        dtype=dtype,
        reflow_generation=base.reflow_generation + 1,
        reflow_pairs=n,
    )
    return TransportFlow(
        trained.model,
        interp,
        base=flow.base,
        target=flow.target,
        normalization=norm,
        ode=flow.ode,
        config=config,
        history=trained.history,
    )
