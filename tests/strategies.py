"""Hypothesis strategies that build a problem together with its exact answer and tolerance."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from sitransport.interpolants import Custom, Fourier, Interpolant, Linear, Trig


def _custom_quadratic() -> Interpolant:
    return Custom(lambda t: (1 - t) ** 2, lambda t: 1 - (1 - t) ** 2)


def _fourier() -> Interpolant:
    return Fourier.from_spec("trig", K=3, a=[0.3, -0.2, 0.1], b=[-0.25, 0.1, 0.05])


#: every deterministic interpolant family, with one user-callable example
INTERPOLANTS = {
    "linear": Linear,
    "trig": Trig,
    "custom": _custom_quadratic,
    "fourier": _fourier,
}

interpolant_names = st.sampled_from(sorted(INTERPOLANTS))
times = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def spd_matrices(draw, d: int, cond: float = 20.0) -> np.ndarray:
    """A symmetric positive definite matrix with condition number at most ``cond``."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.exp(rng.uniform(0.0, np.log(cond), d)) / np.sqrt(cond)
    return (q * eig) @ q.T


@st.composite
def batches(draw, n: int = 16, max_d: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, x1, t) float64 tensors with t uniform on [0, 1]."""
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**32 - 1))
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = 3 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1
    t = torch.rand(n, generator=g, dtype=torch.float64)
    return x0, x1, t


# ------------------------------------------------------------------------------ FitConfig
def _training_settings(draw) -> Any:
    from sitransport.train import TrainSettings

    return TrainSettings(
        steps=draw(st.integers(1, 10**7)),
        batch_size=draw(st.integers(2, 65536)),
        lr=draw(st.floats(1e-8, 10.0)),
        weight_decay=draw(st.floats(0.0, 1.0)),
        warmup=draw(st.integers(0, 10**4)),
        min_lr_ratio=draw(st.floats(0.0, 1.0)),
        ema=draw(st.none() | st.floats(0.0, 0.9999)),
        clip_grad=draw(st.none() | st.floats(1e-3, 100.0)),
        antithetic=draw(st.booleans()),
        eval_every=draw(st.integers(1, 10**4)),
        checkpoint_every=draw(st.integers(1, 10**4)),
        progress=draw(st.booleans()),
        restore_best=draw(st.booleans()),
        accumulate=draw(st.integers(1, 16)),
        mixed_precision=draw(st.sampled_from([None, "bf16"])),
    )


def _network_specs() -> Any:
    from sitransport.config import MLPSpec, UNetSpec

    mlp = st.builds(
        MLPSpec,
        kind=st.sampled_from(["mlp", "potential"]),
        width=st.none() | st.integers(1, 4096),
        depth=st.integers(1, 32),
        activation=st.sampled_from(["elu", "gelu", "relu", "selu", "silu", "tanh"]),
        time_frequencies=st.integers(1, 64),
        space_frequencies=st.integers(0, 8),
    )
    unet_options = st.fixed_dictionaries(
        {},
        optional={
            "dropout": st.floats(0.0, 0.9),
            "channel_mult": st.lists(st.integers(1, 4), min_size=1, max_size=4),
            "heads": st.integers(1, 8),
        },
    )
    unet = st.builds(
        UNetSpec, preset=st.sampled_from([None, "tiny", "small", "cifar10"]), options=unet_options
    )
    return mlp | unet


def _coupling_specs() -> Any:
    from sitransport.config import CouplingSpec
    from sitransport.couplings import ExactOT, GlobalOT, Sinkhorn

    return st.one_of(
        st.just(CouplingSpec()),
        st.just(CouplingSpec(CouplingSpec.PAIRED)),
        st.builds(
            lambda p, b: CouplingSpec.of(ExactOT(processes=p, block=b)),
            st.integers(0, 1),
            st.none() | st.integers(2, 4096),
        ),
        st.builds(
            lambda r, rep: CouplingSpec.of(Sinkhorn(reg=r, replace=rep)),
            st.floats(1e-4, 10.0),
            st.booleans(),
        ),
        st.builds(
            lambda n, reuse: CouplingSpec.of(GlobalOT(n=n, reuse=reuse, processes=0)),
            st.integers(2, 8192),
            st.none() | st.integers(1, 100),
        ),
    )


@st.composite
def fit_configs(draw) -> Any:
    """Valid :class:`~sitransport.config.FitConfig` objects: every part drawn from its valid
    values (the checkpoint's ``every`` is the training's ``checkpoint_every``)."""
    from sitransport.config import Checkpointing, FitConfig, LatentSpec
    from sitransport.ode import SOLVERS, ODEOptions
    from sitransport.paths import PathSettings

    training = _training_settings(draw)
    interpolants = [
        None,
        {"name": "trig"},
        {"name": "linear"},
        {"name": "stochastic", "base": "trig", "gamma": "sqrt", "a": 0.5},
        {
            "name": "fourier",
            "base": "linear",
            "K": 2,
            "dim": None,
            "a": [0.1, 0.0],
            "b": [0.0, 0.2],
        },
    ]
    samplers = st.just({"name": "uniform"}) | st.builds(
        lambda a, b: {"name": "beta", "a": a, "b": b}, st.floats(0.1, 10.0), st.floats(0.1, 10.0)
    )
    paths = st.none() | st.builds(
        PathSettings,
        lr=st.floats(1e-6, 1.0),
        every=st.integers(1, 10),
        start=st.integers(0, 10**4),
        mode=st.sampled_from(["alternating", "simultaneous"]),
        stop=st.none() | st.integers(0, 10**6),
    )
    odes = st.builds(
        ODEOptions,
        method=st.sampled_from(sorted(SOLVERS)),
        atol=st.floats(1e-12, 1e-1),
        rtol=st.floats(1e-12, 1e-1),
        steps=st.integers(1, 10**4),
        batch_size=st.integers(1, 10**6),
        max_steps=st.integers(1, 10**6),
    )
    folder = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1)
    checkpoints = st.none() | st.builds(
        lambda d, r: Checkpointing(d, training.checkpoint_every, r), folder, st.booleans()
    )
    latents = st.none() | st.builds(
        LatentSpec, st.none() | st.integers(1, 512), st.floats(0.5, 1.0, exclude_min=True)
    )
    counts = st.none() | st.integers(0, 10**6)
    return FitConfig(
        training=training,
        network=draw(_network_specs()),
        coupling=draw(_coupling_specs()),
        interpolant=draw(st.sampled_from(interpolants)),
        time_sampler=draw(samplers),
        path=draw(paths),
        ode=draw(odes),
        checkpoint=draw(checkpoints),
        seed=draw(st.integers(0, 2**63 - 1)),
        device=draw(st.sampled_from(["cpu", "cuda", "cuda:1", "mps"])),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        validation=draw(st.floats(0.0, 0.9)),
        normalize=draw(st.booleans()),
        remedy=draw(st.sampled_from([None, "auto"])),
        num_workers=draw(st.integers(0, 64)),
        latent=draw(latents),
        rank0=draw(counts),
        rank1=draw(counts),
        sample_method=draw(st.sampled_from(["ode", "sde"])),
        reflow_generation=draw(st.integers(0, 10)),
        reflow_pairs=draw(counts),
    )
