"""fit: settings recorded, history, validation split, bad input, resume, non-finite stop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport._io import load_checkpoint
from sitransport.flow import TransportFlow
from sitransport.interpolants import Linear
from sitransport.train import TrainSettings, train
from tests.helpers import TINY, tiny_mlp


@pytest.fixture(scope="module")
def data():
    return st.datasets.sample("moons", 400, seed=0), st.datasets.sample("8gaussians", 400, seed=0)


def test_history_and_config(data):
    x0, x1 = data
    flow = st.fit(x0, x1, **TINY, interpolant="linear", seed=3)
    h = flow.history
    assert h.sizes["step"] == 20 and h.sizes["eval_step"] == 2
    assert set(h.data_vars) >= {"loss", "fm_loss", "lr", "grad_norm", "wall_time", "val_loss"}
    # the flow-matching and quadratic losses differ by E|dI/dt|^2 > 0 on every batch
    assert bool((h["fm_loss"] > h["loss"]).all())
    assert flow.config.interpolant == {"name": "linear"} and flow.config.seed == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        flow.config.seed = 4  # read-only


def test_seed_reproducible(data):
    x0, x1 = data
    a = st.fit(x0, x1, **TINY, seed=1).push_forward(x0[:5])
    b = st.fit(x0, x1, **TINY, seed=1).push_forward(x0[:5])
    c = st.fit(x0, x1, **TINY, seed=2).push_forward(x0[:5])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_global_rng_untouched(data):
    x0, x1 = data
    state_t, state_np = torch.get_rng_state(), np.random.get_state()
    st.fit(x0, x1, **TINY)
    assert torch.equal(state_t, torch.get_rng_state())
    assert np.array_equal(state_np[1], np.random.get_state()[1])


def test_distribution_ends(data):
    """The laws of the ends are the ones given, whatever the training quality.

    A torch Distribution base N(0, 2 I): ``log_prob`` uses its density (against the same
    velocity with a standard normal base the gap is exactly ``|x0|^2 / 4 - log 2`` at the
    pulled-back point) and ``sample`` draws from it (pulled back, the samples have its mean
    and covariance within 5 c / sqrt(n)). A mixture target: training draws from it (the
    normalisation's pooled mean and scale are those of N(0, I) and the mixture, within
    c / sqrt(4096)). Data -> noise: samples start from the data; the target is N(0, I).
    """
    _, x1 = data
    base = torch.distributions.MultivariateNormal(torch.zeros(2), 2.0 * torch.eye(2))
    flow = st.fit(base, x1, **TINY)
    twin = TransportFlow(
        flow.network,
        flow.interpolant,
        base="gaussian",
        shape=flow.shape,
        normalization=flow.normalization,
        ode=flow.ode,
    )
    y = x1[:20]
    x0 = flow.pull_back(y)
    gap = flow.log_prob(y, progress=False) - twin.log_prob(y, progress=False)
    np.testing.assert_allclose(gap, (x0**2).sum(1) / 4 - np.log(2.0), rtol=0, atol=1e-4)
    n = 2000
    z = flow.pull_back(flow.sample(n, seed=0))
    assert np.abs(z.mean(0)).max() < 5 * np.sqrt(2.0 / n)
    assert np.abs(np.cov(z.T) - 2.0 * np.eye(2)).max() < 5 * np.sqrt(8.0 / n)  # Var s^2 = 2s^4/n

    mix = st.datasets.GaussianMixture(
        [0.3, 0.7], [[2.0, 1.0], [4.0, -1.0]], [0.5 * np.eye(2), np.diag([0.3, 1.0])]
    )
    flow = st.fit("gaussian", mix, **TINY)
    pooled_var = (1.0 + np.diag(mix.cov)) / 2 + mix.mean**2 / 4  # N(0, I) and mix, 1:1
    tol = 5 * np.sqrt(pooled_var.max() / 4096)
    np.testing.assert_allclose(flow.normalization.shift.numpy(), mix.mean / 2, atol=tol)
    assert flow.normalization.scale == pytest.approx(np.sqrt(pooled_var.mean()), abs=tol)
    assert flow.sample(4, seed=0).shape == (4, 2)

    flow = st.fit(x1, "gaussian", **TINY)  # data -> noise
    assert flow.push_forward(x1[:4]).shape == (4, 2)
    starts = flow.pull_back(flow.sample(50, seed=0))
    nearest = np.sqrt(((starts[:, None, :] - x1[None, :, :]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 1e-3  # every sample is a data point pushed forward
    z = np.random.default_rng(0).standard_normal((5, 2))
    np.testing.assert_allclose(
        flow.target.log_prob(torch.from_numpy(z)).numpy(),
        -0.5 * (z**2).sum(1) - np.log(2 * np.pi),
        rtol=1e-6,
    )


def test_resume_continues_exactly(data, tmp_path, killed_after_checkpoint):
    """A run killed right after its step-15 checkpoint, resumed, equals the uninterrupted run."""

    x0, x1 = data
    kw = dict(TINY, steps=30, seed=0)
    full = st.fit(x0, x1, **kw)
    with killed_after_checkpoint():
        st.fit(x0, x1, **kw, checkpoint=st.Checkpointing(tmp_path, every=15))
    assert load_checkpoint(tmp_path / "checkpoint.pt", "cpu")["step"] == 15
    resumed = st.fit(x0, x1, **kw, checkpoint=st.Checkpointing(tmp_path, every=15, resume=True))
    x = x0[:10]
    np.testing.assert_array_equal(resumed.push_forward(x), full.push_forward(x))
    np.testing.assert_array_equal(resumed.history["loss"].values, full.history["loss"].values)
    np.testing.assert_array_equal(
        resumed.history["val_loss"].values, full.history["val_loss"].values
    )


def test_non_finite_loss_stops_with_step():
    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))
            self.calls = 0

        def forward(self, x, t):
            self.calls += 1
            return x * self.w * (float("nan") if self.calls > 3 else 1.0)

    def draw(n, gen):
        return torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen)

    settings = TrainSettings(steps=10, progress=False, ema=None)
    with pytest.raises(FloatingPointError, match="at step 3"):
        train(Exploding(), Linear(), draw, settings=settings)


def _setting(**settings):
    """A fit of the test data with one bad setting on top of TINY."""
    return lambda x0, x1: st.fit(x0, x1, **dict(TINY, **settings))


BAD = [
    (lambda x0, x1: st.fit(x0, x1[:, :1], **TINY), ValueError, "same dimension"),
    (
        lambda x0, x1: st.fit(x0, np.where(x1 > 3, np.nan, x1), **TINY),
        ValueError,
        "rho1 must be finite",
    ),
    (lambda x0, x1: st.fit(x0, np.inf * x1, **TINY), ValueError, "rho1 must be finite"),
    (lambda x0, x1: st.fit(x0[:, 0], x1, **TINY), ValueError, r"rho0 must have shape \(n, d\)"),
    (lambda x0, x1: st.fit(x0[:1], x1, **TINY), ValueError, "at least 2 samples"),
    (lambda x0, x1: st.fit(x0.astype(int), x1, **TINY), TypeError, "floating dtype"),
    (lambda x0, x1: st.fit(x0.astype(complex), x1, **TINY), TypeError, "floating dtype"),
    (
        lambda x0, x1: st.fit(np.array([[1.0, "a"]], dtype=object), x1, **TINY),
        TypeError,
        "floating dtype",
    ),
    (lambda x0, x1: st.fit(x0.tolist(), x1, **TINY), TypeError, "rho0 must be a numpy.ndarray"),
    (lambda x0, x1: st.fit("gausian", x1, **TINY), ValueError, "got the string 'gausian'"),
    (
        lambda x0, x1: st.fit("gaussian", "gaussian", **TINY),
        ValueError,
        "needs samples at the other end",
    ),
    (
        _setting(interpolant="cos"),
        ValueError,
        "unknown interpolant 'cos'",
    ),
    (
        _setting(steps=0),
        ValueError,
        "steps must be an integer >= 1, got 0",
    ),
    (
        _setting(steps=-5),
        ValueError,
        "steps must be an integer >= 1",
    ),
    (
        _setting(steps=10.5),
        TypeError,
        "steps must be an integer",
    ),
    (
        _setting(batch_size=1),
        ValueError,
        "batch_size must be an integer >= 2",
    ),
    (_setting(lr=-1.0), ValueError, "lr must be finite and > 0"),
    (
        _setting(validation=1.5),
        ValueError,
        r"validation must be in \[0.0, 0.9\)",
    ),
    (
        lambda x0, x1: st.fit(x0[:3], x1, **dict(TINY, validation=0.1)),
        ValueError,
        "validation=0.1 leaves",
    ),
    (
        _setting(network=st.MLPSpec(activation="swish")),
        ValueError,
        "unknown activation 'swish'",
    ),
    (_setting(seed="0"), TypeError, "seed must be an int"),
    (_setting(dtype=torch.float16), TypeError, "dtype must be"),
    (
        lambda x0, x1: st.MLPSpec(space_frequencies=-1),
        ValueError,
        "space_frequencies must be an integer >= 0, got -1",
    ),
    (
        lambda x0, x1: st.MLPSpec(space_frequencies=2.5),
        TypeError,
        "space_frequencies must be an integer",
    ),
    (
        _setting(time_sampler="normal"),
        ValueError,
        "unknown time_sampler",
    ),
    # settings given in two places that disagree, or that do not apply to this fit
    (
        _setting(training=TrainSettings(checkpoint_every=5)),
        ValueError,
        r"training.checkpoint_every=5 does not apply: no checkpoint= was given",
    ),
    (
        _setting(training=TrainSettings(restore_best=True), validation=0.0),
        ValueError,
        "restore_best=True keeps the weights of the lowest validation loss, but validation=0",
    ),
    (_setting(num_workers=2), ValueError, "num_workers=2 does not apply"),
    (_setting(network=st.UNetSpec()), ValueError, "is a U-Net, which needs images"),
    (_setting(network={"width": 8}), TypeError, "network must be 'auto', a network name"),
    (_setting(training={"ema": None}), TypeError, "training must be a TrainSettings or None"),
    (_setting(optimize_path="yes"), TypeError, "optimize_path must be True, False or a Path"),
    (_setting(checkpoint=5), TypeError, "checkpoint must be a directory"),
    (_setting(latent="ica"), ValueError, "latent"),
    (
        lambda x0, x1: st.fit(np.zeros_like(x0), np.zeros_like(x1), **TINY),
        ValueError,
        "zero variance",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD)
def test_bad_input(data, call, exc, match):
    with pytest.raises(exc, match=match):
        call(*data)


def test_restore_best_returns_the_lowest_validation_weights():
    """On 24 samples a long, fast run overfits: the best evaluation is not the last one."""
    x1 = st.datasets.sample("8gaussians", 24, seed=0)
    training = TrainSettings(steps=400, lr=1e-2, eval_every=20, ema=None, progress=False)
    kw = dict(network=st.MLPSpec(width=64, depth=3), validation=0.25, seed=0)
    last = st.fit("gaussian", x1, training=training, **kw)
    best = st.fit("gaussian", x1, training=dataclasses.replace(training, restore_best=True), **kw)
    val = best.history["val_loss"].values
    np.testing.assert_array_equal(val, last.history["val_loss"].values)  # same run
    assert best.history.attrs["best_val_loss"] == pytest.approx(val.min())
    assert val.argmin() < len(val) - 1
    x = np.random.default_rng(0).standard_normal((5, 2))
    assert not np.allclose(best.push_forward(x), last.push_forward(x))


def test_restore_best_weights_reproduce_the_best_validation_loss():
    from sitransport.losses import UniformTime, quadratic_loss
    from sitransport.nn import MLPVelocity

    g = torch.Generator().manual_seed(0)
    pool0, pool1 = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g) * 2 + 1
    v0, v1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) * 2 + 1

    def draw(n, gen):
        return pool0[torch.randint(0, 16, (n,), generator=gen)], pool1[
            torch.randint(0, 16, (n,), generator=gen)
        ]

    settings = TrainSettings(
        steps=300, lr=1e-2, eval_every=10, ema=None, progress=False, restore_best=True
    )
    result = train(
        MLPVelocity(2, 64, 3), Linear(), draw, settings=settings, validation=(v0, v1), seed=0
    )
    vt = UniformTime().sample(64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        again = float(quadratic_loss(result.model, Linear(), v0, v1, vt).quadratic)
    assert again == pytest.approx(result.history.attrs["best_val_loss"], rel=1e-6)
    assert again == pytest.approx(float(result.history["val_loss"].min()), rel=1e-6)


def test_reflow_rebuilds_the_flows_own_network_architecture():
    """reflow rebuilds the flow's own MLP (activation, time features) freshly initialised,
    with the flow's normalisation."""
    x1 = st.datasets.sample("moons", 500, seed=0)
    flow = st.fit(
        "gaussian",
        x1,
        steps=5,
        network=st.MLPSpec(width=16, depth=2, activation="tanh", time_frequencies=3),
        progress=False,
        seed=0,
    )
    straight = st.reflow(flow, 200, steps=3, progress=False, seed=1)
    assert straight.network.config == flow.network.config
    before = dict(flow.network.named_parameters())
    after = dict(straight.network.named_parameters())
    assert not all(torch.equal(before[k], after[k]) for k in before)  # a new network
    assert straight.config.reflow_generation == 1
    assert straight.normalization is flow.normalization


def test_space_frequencies_feed_positional_features_and_survive_save_load(tmp_path):
    x1 = st.datasets.sample("checkerboard", 500, seed=0)
    flow = st.fit("gaussian", x1, **dict(TINY, network=tiny_mlp(space_frequencies=3)), seed=0)
    net = flow.network
    assert net.config["space_frequencies"] == 3 and flow.config.network.space_frequencies == 3
    assert net.net[0].in_features == 2 * (2 * 3 + 1) + net.time_embedding.dim
    flow.save(tmp_path / "f.sit")
    again = st.load(tmp_path / "f.sit")
    x = np.random.default_rng(0).standard_normal((20, 2))
    np.testing.assert_array_equal(again.push_forward(x), flow.push_forward(x))


def test_mlp_configs_saved_before_space_frequencies_still_build():
    from sitransport.nn import MLPVelocity, build_network

    old = {
        "kind": "mlp",
        "dim": 2,
        "width": 8,
        "depth": 1,
        "activation": "silu",
        "time_frequencies": 4,
    }  # the config of flows saved before the option existed
    net = build_network(old)
    assert net.config == {**old, "space_frequencies": 0}
    assert net.net[0].in_features == 2 + 9
    assert net.state_dict().keys() == MLPVelocity(2, 8, 1, "silu", 4).state_dict().keys()


def test_space_features_let_an_mlp_fit_a_step_that_raw_coordinates_blur():
    """The point of the option: with the same width, depth and budget, positional features
    fit a jump (a step of a checkerboard edge) far better than raw coordinates."""
    from sitransport.nn import MLPVelocity

    x = torch.linspace(-1, 1, 512).unsqueeze(1)
    y = torch.sign(torch.sin(3 * torch.pi * x))  # six jumps on [-1, 1]
    errors = {}
    for k in (0, 5):
        torch.manual_seed(0)
        net = MLPVelocity(1, width=32, depth=2, space_frequencies=k)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        t = torch.zeros(512)
        for _ in range(400):
            opt.zero_grad()
            loss = (net(x, t) - y).pow(2).mean()
            loss.backward()
            opt.step()
        errors[k] = loss.item()
    assert errors[5] < 0.2 * errors[0], errors


def test_flat_keywords_fill_in_the_training_settings():
    """steps/batch_size/lr/progress given flat take precedence over the TrainSettings
    fields of the same name; the rest of the settings are the object's."""
    x1 = st.datasets.sample("moons", 300, seed=0)
    training = TrainSettings(steps=500, ema=None, warmup=3, eval_every=5)
    flow = st.fit("gaussian", x1, **dict(TINY, steps=7, batch_size=64, training=training))
    assert flow.config.training == dataclasses.replace(
        training, steps=7, batch_size=64, progress=False
    )
    assert flow.history["step"].values[-1] == 7


def test_checkpoint_takes_a_directory_and_owns_checkpoint_every(tmp_path):
    x1 = st.datasets.sample("moons", 300, seed=0)
    flow = st.fit("gaussian", x1, **TINY, checkpoint=tmp_path / "run")
    assert flow.config.checkpoint == st.Checkpointing(str(tmp_path / "run"))
    flow = st.fit("gaussian", x1, **TINY, checkpoint=st.Checkpointing(tmp_path / "b", every=10))
    assert flow.config.training.checkpoint_every == 10 == flow.config.checkpoint.every
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt", "cpu")["step"] == 20


def test_fit_lists_no_training_setting_twice():
    """fit's keywords: the eleven common ones flat (callbacks among them, as a TensorBoard
    logger is passed to most long runs), every other TrainSettings field only in training=
    (so fit cannot drift from TrainSettings again), and a few fit-level ones."""
    import inspect

    params = set(inspect.signature(st.fit).parameters) - {"rho0", "rho1"}
    flat_training = {"steps", "batch_size", "lr", "progress", "callbacks"}
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    assert params & fields == flat_training
    assert {"training", "network", "optimize_path", "checkpoint"} <= params
    common = {"interpolant", "coupling", "seed", "device", "dtype", "validation"}
    fit_level = {"time_sampler", "normalize", "remedy", "latent", "ode", "num_workers"}
    fit_level |= {"condition", "condition_weight"}
    grouped = {"training", "network", "optimize_path", "checkpoint"}
    assert params == flat_training | common | fit_level | grouped


def test_checkpoint_folder_is_checked_before_any_data_work(tmp_path, monkeypatch):
    """A checkpoint= fit cannot write is refused first, naming checkpoint (before: a raw
    FileExistsError / NotADirectoryError / FileNotFoundError after the data was prepared)."""
    import sitransport.fitting.api as api

    def no_data_work(*args, **kwargs):
        raise AssertionError("the data was read before checkpoint= was checked")

    monkeypatch.setattr(api, "resolve_ends", no_data_work)
    x1 = st.datasets.sample("moons", 50, seed=0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    cases = [
        (run / "checkpoint.pt", r"checkpoint must be a folder .*existing file.*resume=True"),
        (run / "checkpoint.pt" / "sub", r"checkpoint folder .*cannot be made: .* is a file"),
        (tmp_path / "odd", r"checkpoint folder .* holds a checkpoint.pt that is not a file"),
        ("a\x00b", r"checkpoint folder .*cannot be used"),
    ]
    (tmp_path / "odd" / "checkpoint.pt").mkdir(parents=True)
    if Path("/proc/self").is_dir():  # no file can be made in /proc, even by root
        cases.append(("/proc/sitransport-run", r"checkpoint folder .* cannot be written"))
    for folder, message in cases:
        for checkpoint in (folder, st.Checkpointing(folder, resume=True)):
            with pytest.raises(ValueError, match=message):
                st.fit("gaussian", x1, **TINY, checkpoint=checkpoint)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # no probe left behind
