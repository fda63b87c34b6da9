"""flow.config: a typed FitConfig that round-trips through spec() and files, converts the
flat dicts of older files, and fixes the three bugs of the untyped dict (issue 15)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import sitransport as st
from sitransport.config import (
    Checkpointing,
    CouplingSpec,
    FitConfig,
    LatentSpec,
    MLPSpec,
    UNetSpec,
    network_from_spec,
)
from sitransport.couplings import Coupling, ExactOT
from sitransport.errors import CorruptFileError
from sitransport.flow import TransportFlow
from sitransport.nn import MLPVelocity
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings
from sitransport.train import TrainSettings
from tests.helpers import TINY, tiny_training
from tests.strategies import fit_configs

#: ``dict(flow.config)`` of ``fit("gaussian", moons, coupling=ExactOT(processes=0), steps=12,
#: width=16, depth=2, dtype=torch.float64, ode=ODEOptions(method="rk4", steps=20),
#: time_sampler=BetaTime(1.0, 0.5), checkpoint_dir=Path(d), checkpoint_every=5, eval_every=5,
#: ema=None, warmup=2, clip_grad=None, seed=7)``, as written by sitransport before FitConfig.
LEGACY = {
    "interpolant": "trig",
    "steps": 12,
    "batch_size": 512,
    "lr": 0.002,
    "seed": 7,
    "progress": False,
    "device": "cpu",
    "dtype": "torch.float64",
    "validation": 0.1,
    "width": 16,
    "depth": 2,
    "activation": "silu",
    "time_frequencies": 8,
    "space_frequencies": 0,
    "time_sampler": "BetaTime(a=1.0, b=0.5)",
    "antithetic": True,
    "ema": None,
    "weight_decay": 0.0,
    "warmup": 2,
    "clip_grad": None,
    "normalize": True,
    "eval_every": 5,
    "checkpoint_dir": "PosixPath('/tmp/tmpeyjjygdo')",
    "checkpoint_every": 5,
    "resume": False,
    "ode": "ODEOptions(method='rk4', atol=1e-05, rtol=1e-05, steps=20, batch_size=10000, "
    "max_steps=10000)",
    "coupling": "ExactOT(processes=0, block=256)",
    "optimize_path": False,
    "path_lr": 0.005,
    "path_every": 1,
    "path_start": 1000,
    "path_mode": "alternating",
    "path_freeze": 0.5,
    "remedy": None,
    "latent": None,
    "latent_variance": 0.999,
    "restore_best": False,
    "network": "auto",
    "accumulate": 1,
    "mixed_precision": None,
    "num_workers": 0,
    "rank0": 2,
    "rank1": 2,
}
#: The same flow after ``reflow(flow, 100, steps=3)`` (the keys reflow added or changed).
LEGACY_REFLOW = {
    **LEGACY,
    "interpolant": "linear",
    "coupling": "paired",
    "reflow_generation": 1,
    "reflow_pairs": 100,
}


@pytest.fixture(scope="module")
def moons():
    return st.datasets.sample("moons", 400, seed=0)


def _hand_built(config: FitConfig | None) -> TransportFlow:
    return TransportFlow(MLPVelocity(2, width=4, depth=1), "trig", base="gaussian", config=config)


def _is_plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


# ------------------------------------------------------------------------ round trips
@given(fit_configs())
def test_spec_round_trips_exactly(config):
    spec = config.spec()
    assert _is_plain(spec)
    json.dumps(spec)  # plain data, nothing else
    again = FitConfig.from_spec(spec)
    assert again == config
    assert again.spec() == spec


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=fit_configs())
def test_save_load_round_trips(config, tmp_path):
    flow = _hand_built(config)
    flow.save(tmp_path / "f.sit")
    assert st.load(tmp_path / "f.sit").config == config


def test_parts_round_trip_on_their_own():
    for part in (
        MLPSpec("potential", 32, 2, "tanh", 4, 3),
        UNetSpec("small", {"dropout": 0.0, "channel_mult": (1, 2)}),
        Checkpointing("runs/a", 10, True),
        LatentSpec(3, 0.99),
        TrainSettings(steps=7, ema=None, clip_grad=None, mixed_precision="bf16"),
        PathSettings(lr=0.01, every=2, start=3, mode="simultaneous", stop=9),
        ODEOptions(method="rk4", steps=12, max_steps=50),
    ):
        assert type(part).from_spec(part.spec()) == part
        assert json.loads(json.dumps(part.spec())) == part.spec()  # plain data
    with pytest.raises(ValueError, match=r"TrainSettings has no field\(s\) \['widht'\]"):
        TrainSettings.from_spec({"steps": 3, "widht": 2})
    with pytest.raises(TypeError, match=r"a PathSettings spec must be a dict, got list"):
        PathSettings.from_spec([1, 2])
    assert network_from_spec(UNetSpec(None, {"heads": 2}).spec()) == UNetSpec(None, {"heads": 2})
    assert CouplingSpec.from_spec("exact_ot") == CouplingSpec.of(ExactOT())


def test_a_fitted_config_records_the_fit_and_survives_a_file(moons, tmp_path):
    flow = st.fit(
        "gaussian",
        moons,
        **dict(TINY, training=tiny_training(ema=None)),
        dtype=torch.float64,
        seed=5,
    )
    config = flow.config
    assert isinstance(config, FitConfig)
    assert config.training == TrainSettings(
        steps=20, batch_size=512, ema=None, eval_every=10, progress=False
    )
    assert config.network == MLPSpec("mlp", width=8, depth=1)
    assert (config.seed, config.dtype, config.device) == (5, torch.float64, "cpu")
    assert (config.rank0, config.rank1, config.latent, config.checkpoint) == (2, 2, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1
    flow.save(tmp_path / "f.sit")
    assert st.load(tmp_path / "f.sit").config == config


def test_a_path_checkpoint_and_latent_fit_are_recorded(moons, tmp_path):
    flow = st.fit(
        "gaussian",
        moons,
        **dict(TINY, steps=10),
        interpolant="fourier",
        optimize_path=PathSettings(start=0, stop=5),
        checkpoint=Checkpointing(tmp_path / "run", every=5),
    )
    assert flow.config.path == PathSettings(start=0, stop=5)
    assert flow.config.checkpoint == Checkpointing(str(tmp_path / "run"), 5, False)
    assert flow.config.interpolant["name"] == "fourier"
    x3 = np.random.default_rng(0).normal(size=(300, 2)) @ np.ones((2, 3))
    lat = st.fit("gaussian", x3, latent=LatentSpec(None, 0.99), **TINY)
    assert lat.config.latent == LatentSpec(None, 0.99)
    lat.save(tmp_path / "lat.sit")
    assert st.load(tmp_path / "lat.sit").config == lat.config


def test_hand_built_flows_have_no_config(tmp_path):
    flow = _hand_built(None)
    assert flow.config is None
    flow.save(tmp_path / "f.sit")
    assert st.load(tmp_path / "f.sit").config is None
    with pytest.raises(TypeError, match=r"config must be a sitransport.config.FitConfig.*dict"):
        _hand_built({"batch_size": 500})


def test_bad_specs_are_refused_naming_the_field(tmp_path):
    spec = FitConfig().spec()
    with pytest.raises(ValueError, match=r"unknown \['colour'\], missing \[\]"):
        FitConfig.from_spec({**spec, "colour": "red"})
    with pytest.raises(ValueError, match=r"version 2"):
        FitConfig.from_spec({**spec, "version": 2})
    with pytest.raises(ValueError, match=r"version True \(a bool, expected an integer\)"):
        FitConfig.from_spec({**spec, "version": True})  # True == 1, but no version
    with pytest.raises(ValueError, match=r"unknown coupling 'nearest'"):
        FitConfig.from_spec({**spec, "coupling": {"name": "nearest"}})
    with pytest.raises(ValueError, match=r"checkpoint.every=3 differs"):
        FitConfig(checkpoint=Checkpointing("a", 3))
    with pytest.raises(TypeError, match=r"FitConfig.training has the wrong type: dict"):
        FitConfig(training={"steps": 3})
    payload = _hand_built(FitConfig()).to_payload()
    payload["config"] = {**spec, "seed": -1}
    with pytest.raises(CorruptFileError, match=r"damaged.*seed"):
        TransportFlow.from_payload(payload)


# ------------------------------------------------------------------- legacy files
def test_a_legacy_dict_converts():
    config = FitConfig.from_legacy(LEGACY, shape=(2,))
    assert config.training == TrainSettings(
        steps=12, ema=None, warmup=2, clip_grad=None, eval_every=5, checkpoint_every=5,
        progress=False,
    )  # fmt: skip
    assert config.network == MLPSpec("mlp", 16, 2)
    assert config.coupling == CouplingSpec("exact_ot", {"processes": 0, "block": 256})
    assert config.time_sampler == {"name": "beta", "a": 1.0, "b": 0.5}
    assert config.ode == ODEOptions(method="rk4", steps=20)
    assert config.checkpoint == Checkpointing("/tmp/tmpeyjjygdo", 5, False)
    assert (config.seed, config.dtype, config.device, config.interpolant) == (
        7,
        torch.float64,
        "cpu",
        {"name": "trig"},
    )
    assert (config.rank0, config.rank1, config.path, config.reflow_generation) == (2, 2, None, 0)
    again = FitConfig.from_legacy(LEGACY_REFLOW, shape=(2,))
    assert again.coupling.name == "paired" and again.interpolant == {"name": "linear"}
    assert (again.reflow_generation, again.reflow_pairs) == (1, 100)


def test_legacy_auto_networks_resolve_with_the_shape():
    old = {"network": "auto", "width": None}
    assert FitConfig.from_legacy(old, shape=(20,)).network.width == 256
    assert FitConfig.from_legacy(old, shape=(3, 32, 32)).network == UNetSpec("small", {})
    unet = FitConfig.from_legacy({"network": {"preset": "tiny", "dropout": 0.0}}, shape=(1, 8, 8))
    assert unet.network == UNetSpec("tiny", {"dropout": 0.0})
    path = FitConfig.from_legacy({"optimize_path": True, "steps": 100, "path_freeze": 0.5})
    assert path.path == PathSettings(stop=50)


def test_a_legacy_file_loads_with_its_config_converted(tmp_path):
    payload = _hand_built(None).to_payload()
    payload["config"] = dict(LEGACY)
    torch.save(payload, tmp_path / "old.sit")  # a file as written before checksums too
    flow = st.load(tmp_path / "old.sit")
    assert flow.config == FitConfig.from_legacy(LEGACY, shape=(2,))
    payload["config"] = dict(LEGACY, coupling="Mine(k=3)")  # a user's coupling, as its repr
    torch.save(payload, tmp_path / "mine.sit")
    with pytest.warns(UserWarning, match=r"could not be converted.*coupling='Mine\(k=3\)'"):
        assert st.load(tmp_path / "mine.sit").config is None


# ------------------------------------------------- custom couplings and networks
class Reversed(Coupling):
    """A user's coupling: pairs x0[i] with x1[n - 1 - i]."""

    def pair(self, x0, x1, generator=None):
        return x0, x1.flip(0)


class QuietExactOT(ExactOT):
    """A subclass that its parent's spec would rebuild as a plain ExactOT."""


@pytest.mark.parametrize("coupling", [Reversed(), QuietExactOT(processes=0)])
def test_a_user_coupling_trains_reports_and_is_refused_at_save(moons, tmp_path, coupling):
    flow = st.fit("gaussian", moons, **TINY, coupling=coupling)
    assert flow.config.coupling.build() is coupling
    assert np.isfinite(st.metrics.transport_report(flow, n=100).h_upper)
    name = type(coupling).__qualname__
    with pytest.raises(TypeError, match=rf"the coupling {name} is not a built-in"):
        flow.save(tmp_path / "f.sit")
    assert not (tmp_path / "f.sit").exists()


def test_a_user_network_is_refused_at_save_naming_it(tmp_path):
    class Wider(MLPVelocity):
        pass

    for net in (Wider(2, 4, 1), torch.nn.Linear(2, 2)):
        flow = TransportFlow(net, "trig", shape=(2,), base="gaussian", config=FitConfig())
        with pytest.raises((TypeError, ValueError), match=type(net).__name__):
            flow.save(tmp_path / "f.sit")


# ------------------------------------------------------------ the three bugs of issue 15
def test_transport_report_with_an_exact_ot_object(moons):
    """Bug 1: the config stored the coupling's repr, which transport_report could not read."""
    flow = st.fit("gaussian", moons, coupling=ExactOT(processes=0), steps=20, progress=False)
    report = st.metrics.transport_report(flow, n=200)
    assert np.isfinite(report.h_upper) and report.h_upper > 0


def test_reflow_trains_as_the_flow_did(moons):
    """Bug 2: reflow trained in float32 with default ema, warmup and clip_grad."""
    flow = st.fit(
        "gaussian",
        moons,
        **dict(TINY, training=tiny_training(ema=None, warmup=3, clip_grad=None)),
        dtype=torch.float64,
        batch_size=64,
        lr=1e-3,
    )
    straight = st.reflow(flow, 200, steps=5, progress=False)
    assert straight.dtype == torch.float64 and straight.config.dtype == torch.float64
    assert straight.config.training == dataclasses.replace(flow.config.training, steps=5)
    lr = straight.history["lr"].values
    np.testing.assert_allclose(lr[:3], 1e-3 * np.arange(1, 4) / 3)  # the flow's warm-up
    assert np.isnan(straight.history["grad_norm"].values).sum() == 0
    assert straight.config.coupling.name == "paired" and straight.config.reflow_pairs == 200
    y = straight.push_forward(np.zeros((2, 2)))
    assert y.dtype == np.float64 and np.isfinite(y).all()


def test_reflow_settings_can_be_overridden(moons):
    flow = st.fit(
        "gaussian", moons, **dict(TINY, training=tiny_training(ema=None)), dtype=torch.float64
    )
    training = dataclasses.replace(flow.config.training, ema=0.9, warmup=0)
    straight = st.reflow(
        flow, 200, steps=4, progress=False, dtype=torch.float32, training=training, lr=5e-3
    )
    assert straight.dtype == torch.float32
    assert (straight.config.training.ema, straight.config.training.lr) == (0.9, 5e-3)
    assert straight.history["lr"].values[0] == pytest.approx(5e-3)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'widht'"):
        st.reflow(flow, 200, steps=2, progress=False, widht=3)
    assert straight.config.training == dataclasses.replace(training, steps=4, lr=5e-3)


def test_reflow_of_a_hand_built_flow_uses_its_network_dtype():
    net = MLPVelocity(2, width=8, depth=1).double()
    flow = TransportFlow(net, "linear", base="gaussian")
    straight = st.reflow(flow, 100, steps=2, progress=False)
    assert straight.dtype == torch.float64 and straight.config.network == MLPSpec("mlp", 8, 1)
    assert straight.config.training.steps == 2 and straight.config.reflow_generation == 1


@pytest.mark.parametrize(
    "network", [MLPSpec(width=32), MLPSpec(depth=2), MLPSpec(activation="tanh"), "mlp"]
)
def test_mlp_settings_with_images_are_refused(network):
    """Bug 3: width, depth and activation were silently ignored by a U-Net. MLP settings
    now live in an MLPSpec, which images refuse, naming it."""
    images = torch.rand(16, 1, 4, 4)
    with pytest.raises(ValueError, match=r"network=.* is an MLP, which needs vectors"):
        st.fit("gaussian", images, steps=2, progress=False, network=network)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'width'"):
        st.fit("gaussian", images, steps=2, progress=False, network="unet", width=32)


def test_a_unet_with_default_mlp_settings_is_recorded():
    images = torch.rand(16, 1, 4, 4)
    flow = st.fit(
        "gaussian",
        images,
        steps=2,
        progress=False,
        validation=0,
        network=UNetSpec("tiny", {"dropout": 0.0}),
    )
    assert flow.config.network == UNetSpec("tiny", {"dropout": 0.0})
    assert flow.config.rank0 is None  # images: no covariance ranks
