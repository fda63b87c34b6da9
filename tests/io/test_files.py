"""Saving and loading files: what cannot be restored is refused, corruption is detected (SHA-256),
stored parts are validated before anything is allocated, checkpoints keep the previous one and
fall back to it, and every error names the file, folder or argument concerned."""

from __future__ import annotations

import io
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.errors import CorruptFileError
from sitransport.interpolants import Fourier, Linear, NeuralPath, Stochastic
from sitransport.latent import LatentFlow
from sitransport.nn import MLPVelocity
from tests.helpers import TINY, TINY_MLP


@pytest.fixture(scope="module")
def moons() -> np.ndarray:
    return st.datasets.sample("moons", 300, seed=0)


@pytest.fixture(scope="module")
def flow(moons) -> st.TransportFlow:
    return st.fit("gaussian", moons, **TINY, seed=0)


@pytest.fixture
def saved(flow, tmp_path) -> Path:
    path = tmp_path / "flow.sit"
    flow.save(path)
    return path


def flip_a_weight_bit(path: Path, weight: torch.Tensor) -> None:
    """Flip a low mantissa bit of one weight where its bytes lie in the file (what a bad
    disk or transfer does): torch itself does not notice."""
    data = bytearray(path.read_bytes())
    raw = weight.detach().cpu().contiguous().numpy().tobytes()
    at = bytes(data).find(raw)
    assert at >= 0, "the weight's bytes are not stored verbatim in the file"
    data[at + len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def legacy_file(payload: dict, path: Path) -> Path:
    """A file as written before checksums: the bare payload."""
    torch.save(payload, path)
    return path


# ---------------------------------------------------------------- item 7: what can be saved
class Quad(Linear):
    """A path the file cannot describe: saved as 'linear', it would load as Linear."""

    def alpha(self, t):
        return 1.0 - t**2

    def dalpha(self, t):
        return -2.0 * t


def test_subclass_of_a_builtin_interpolant_is_refused(tmp_path):
    flow = st.TransportFlow(MLPVelocity(2, width=8, depth=1), Quad(), base="gaussian")
    with pytest.raises(ValueError, match=r"interpolant is .*Quad.*load it as Linear"):
        flow.save(tmp_path / "quad.sit")
    assert list(tmp_path.iterdir()) == []


class LoudMLP(MLPVelocity):
    def forward(self, x, t):
        return 2.0 * super().forward(x, t)


def test_subclass_or_modified_builtin_network_is_refused(tmp_path):
    flow = st.TransportFlow(LoudMLP(2, width=8, depth=1), "trig", base="gaussian")
    with pytest.raises(ValueError, match=r"network is .*LoudMLP.*load it as a plain MLPVelocity"):
        flow.save(tmp_path / "loud.sit")
    net = MLPVelocity(2, width=8, depth=1)
    net.net[1] = torch.nn.Tanh()  # the config still says silu
    with pytest.raises(ValueError, match=r"submodule 'net.1' is a Tanh .* gives a SiLU"):
        st.TransportFlow(net, "trig", base="gaussian").save(tmp_path / "tanh.sit")


@pytest.mark.parametrize(
    "path",
    [Stochastic("trig", "sqrt", a=0.5), Fourier("linear", K=2, dim=2), NeuralPath(2, K=1, width=4)],
    ids=["stochastic", "fourier", "neural"],
)
def test_builtin_paths_still_round_trip(path, tmp_path):
    with torch.no_grad():
        for p in path.parameters():
            p.add_(0.01 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
    flow = st.TransportFlow(MLPVelocity(2, width=8, depth=1), path, base="gaussian")
    flow.save(tmp_path / "p.sit")
    again = st.load(tmp_path / "p.sit")
    x0, x1 = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    z = torch.randn(4, 2, dtype=torch.float64) if path.stochastic else None
    torch.testing.assert_close(
        again.interpolant.interpolate(x0, x1, 0.3, z), path.interpolate(x0, x1, 0.3, z)
    )


# --------------------------------------------------------------------- item 9: checksums
def test_a_flipped_weight_bit_is_detected(flow, saved):
    flip_a_weight_bit(saved, flow.network.net[0].weight)
    with pytest.raises(CorruptFileError, match=r"flow\.sit' is a corrupted .*SHA-256"):
        st.load(saved)


def test_a_flipped_bit_in_a_latent_flow_is_detected(tmp_path):
    x1 = np.random.default_rng(0).normal(size=(200, 2)) @ np.ones((2, 3))
    latent = st.fit("gaussian", x1, latent=1, steps=5, network=TINY_MLP, progress=False)
    latent.save(tmp_path / "latent.sit")
    flip_a_weight_bit(tmp_path / "latent.sit", latent.flow.network.net[0].weight)
    with pytest.raises(CorruptFileError, match=r"latent\.sit' is a corrupted"):
        st.load(tmp_path / "latent.sit")


def test_latent_encoder_is_validated(tmp_path):
    x1 = np.random.default_rng(0).normal(size=(200, 2)) @ np.ones((2, 3))
    latent = st.fit("gaussian", x1, latent=1, steps=5, network=TINY_MLP, progress=False)
    payload = {
        "format": "sitransport.LatentFlow",
        "version": 1,
        "inner": latent.flow.to_payload(),
        "encoder": {
            "mean": torch.zeros(3, dtype=torch.float64),
            "components": torch.zeros(3, 2, dtype=torch.float64),  # k = 2, the flow has 1
            "explained": torch.ones(2, dtype=torch.float64),
            "source_is_latent": False,
        },
    }
    with pytest.raises(CorruptFileError, match=r"bad\.sit' is a damaged .*encoder shapes"):
        st.load(legacy_file(payload, tmp_path / "bad.sit"))


def test_files_without_checksum_still_load(flow, tmp_path):
    old = st.load(legacy_file(flow.to_payload(), tmp_path / "old.sit"))
    x = np.zeros((3, 2))
    np.testing.assert_array_equal(old.push_forward(x), flow.push_forward(x))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("scale", float("inf"), "scale must be finite and > 0, got inf"),
        ("scale", -1.0, "scale must be finite and > 0, got -1.0"),
        ("shift", torch.tensor([0.0, float("nan")], dtype=torch.float64), "shift must be finite"),
        ("shift", torch.zeros(3, dtype=torch.float64), r"of shape \(2,\); got shape \(3,\)"),
    ],
)
def test_stored_normalisation_is_validated(flow, tmp_path, field, value, match):
    payload = flow.to_payload()
    payload["normalization"][field] = value
    with pytest.raises(CorruptFileError, match=rf"bad\.sit' is a damaged .*{match}"):
        st.load(legacy_file(payload, tmp_path / "bad.sit"))


@pytest.fixture
def no_big_allocation(monkeypatch):
    """Fail if a network or neural path wider than 10_000 (or deeper than 1000) is built
    outside the meta device."""
    import sitransport.interpolants as interpolants
    import sitransport.nn.builder as builder  # read_network builds through it

    def on_meta(width, depth=1):
        if (width > 10_000 or depth > 1000) and torch.get_default_device().type != "meta":
            raise AssertionError(f"width {width}, depth {depth} allocated for real")

    build, init = builder.build_network, interpolants.NeuralPath.__init__

    def guarded_build(config):
        on_meta(int(config.get("width", 0)), int(config.get("depth", 1)))
        return build(config)

    def guarded_init(self, dim, base="linear", K=2, width=64):
        on_meta(width)
        init(self, dim, base, K, width)

    monkeypatch.setattr(builder, "build_network", guarded_build)
    monkeypatch.setattr(interpolants.NeuralPath, "__init__", guarded_init)


def test_crafted_network_width_is_refused_before_allocation(flow, tmp_path, no_big_allocation):
    payload = flow.to_payload()
    payload["network"]["width"] = 200_000  # 160 GB with depth 2
    payload["network"]["depth"] = 2
    with pytest.raises(CorruptFileError, match=r"weights do not match its description"):
        st.load(legacy_file(payload, tmp_path / "wide.sit"))


def test_crafted_network_sizes_are_refused(flow, tmp_path, no_big_allocation):
    payload = flow.to_payload()
    payload["network"]["depth"] = 10**9
    with pytest.raises(CorruptFileError, match=r"holds the size 1000000000"):
        st.load(legacy_file(payload, tmp_path / "deep.sit"))
    payload["network"]["depth"] = 100_000  # a sane integer, but not what 4 tensors describe
    with pytest.raises(CorruptFileError, match=r"asks for ~100000 layers but the file stores 4"):
        st.load(legacy_file(payload, tmp_path / "deep.sit"))


def test_crafted_neural_path_width_is_refused_before_allocation(tmp_path, no_big_allocation):
    flow = st.TransportFlow(
        MLPVelocity(2, width=8, depth=1), NeuralPath(2, K=1, width=4), base="gaussian"
    )
    payload = flow.to_payload()
    payload["interpolant"]["width"] = 200_000
    with pytest.raises(CorruptFileError, match=r"neural path's weights do not match"):
        st.load(legacy_file(payload, tmp_path / "wide.sit"))


def test_other_versions_are_a_corrupt_file_error(flow, tmp_path):
    payload = dict(flow.to_payload(), version=3)
    with pytest.raises(CorruptFileError, match=r"v3\.sit' has format version 3"):
        st.load(legacy_file(payload, tmp_path / "v3.sit"))


# ------------------------------------------------------------ payloads and io's dispatch
def test_a_payload_round_trips_without_a_file(flow):
    again = st.TransportFlow.from_payload(flow.to_payload())
    x = np.zeros((3, 2))
    np.testing.assert_array_equal(again.push_forward(x), flow.push_forward(x))
    assert again.config == flow.config and again.base.kind == "gaussian"
    assert again.history.equals(flow.history)


def test_a_latent_payload_round_trips_without_a_file():
    x1 = np.random.default_rng(0).normal(size=(200, 2)) @ np.ones((2, 3))
    latent = st.fit("gaussian", x1, latent=1, steps=5, network=TINY_MLP, progress=False)
    payload = latent.to_payload()
    assert payload["inner"]["format"] == st.TransportFlow.FORMAT
    again = LatentFlow.from_payload(payload)
    assert type(again) is LatentFlow and again.shape == (3,)
    np.testing.assert_array_equal(again.sample(4, seed=0), latent.sample(4, seed=0))


def test_a_bad_payload_is_named_by_its_source(flow):
    with pytest.raises(CorruptFileError, match="the payload has format version 3; .* 1, 2"):
        st.TransportFlow.from_payload(dict(flow.to_payload(), version=3))
    payload = flow.to_payload()
    del payload["shape"]
    with pytest.raises(CorruptFileError, match="'mem.sit' is a damaged .*KeyError: 'shape'"):
        st.TransportFlow.from_payload(payload, source="mem.sit")
    with pytest.raises(CorruptFileError, match="not a latent flow file .*LatentFlow' header"):
        LatentFlow.from_payload(flow.to_payload())
    with pytest.raises(CorruptFileError, match="the payload has latent format version 2"):
        LatentFlow.from_payload({"format": LatentFlow.FORMAT, "version": 2})


def test_a_bad_base_for_a_payload_is_a_bad_argument_not_a_damaged_file(flow):
    with pytest.raises(ValueError, match="base") as err:
        st.TransportFlow.from_payload(flow.to_payload(), base="nonsense")
    assert not isinstance(err.value, CorruptFileError)


def test_load_picks_the_flow_kind_from_the_header(flow, tmp_path):
    assert st.load is st.io.load
    assert [kind.FORMAT for kind in st.io.FLOW_KINDS] == [
        "sitransport.TransportFlow",
        "sitransport.LatentFlow",
    ]
    payload = dict(flow.to_payload(), format="sitransport.Other")
    with pytest.raises(
        CorruptFileError, match=r"other\.sit' is not a sitransport flow file \(no 'sitransport"
    ):
        st.load(legacy_file(payload, tmp_path / "other.sit"))


# --------------------------------------------------------------- should-fix: loading errors
def test_map_location_is_validated_up_front(saved):
    with pytest.raises(ValueError, match=r"map_location must be a device .* got 'gpu'") as err:
        st.load(saved, map_location="gpu")
    assert not isinstance(err.value, CorruptFileError)
    with pytest.raises(ValueError, match="map_location must be a device that holds data"):
        st.load(saved, map_location="meta")
    with pytest.raises(TypeError, match="map_location must be a device name or torch.device"):
        st.load(saved, map_location=0.5)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_sitransport_test",))


def test_hostile_file_is_refused_without_suggesting_weights_only_false(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buf = io.BytesIO()
    torch.save({"payload": _Exploit()}, buf, pickle_module=pickle)
    (tmp_path / "evil.sit").write_bytes(buf.getvalue())
    with pytest.raises(CorruptFileError, match=r"evil\.sit' .*objects other than tensors") as err:
        st.load(tmp_path / "evil.sit")
    assert "weights_only" not in str(err.value)
    assert not (tmp_path / "pwned_by_sitransport_test").exists()


def test_truncated_file_names_it(saved):
    saved.write_bytes(saved.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match=r"flow\.sit' is not a readable sitransport file"):
        st.load(saved)


# --------------------------------------------------------------- should-fix: saving errors
def test_save_names_a_missing_folder_or_an_empty_path(flow, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the folder '.*nowhere' does not exist") as err:
        flow.save(tmp_path / "nowhere" / "flow.sit")
    assert ".tmp" not in str(err.value)
    with pytest.raises(ValueError, match="path must name a file, got an empty path"):
        flow.save("")
    with pytest.raises(ValueError, match="path must name a file, got the folder"):
        flow.save(tmp_path)


def test_save_is_flushed_and_an_interrupted_save_leaves_nothing(flow, tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    flow.save(tmp_path / "ok.sit")
    assert synced  # flushed to disk before the rename
    assert [p.name for p in tmp_path.iterdir()] == ["ok.sit"]

    def killed(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        flow.save(tmp_path / "killed.sit")
    assert [p.name for p in tmp_path.iterdir()] == ["ok.sit"]  # no hidden .tmp left


def test_a_save_killed_by_sigkill_leaves_no_temporary_file_after_the_next_save(flow, tmp_path):
    # a process killed mid-save (SIGKILL: no Python cleanup runs) leaves its hidden temporary
    # file; the next save to the same path removes it, as its process no longer exists
    code = textwrap.dedent(
        f"""
        import os, signal, torch
        from pathlib import Path
        import sitransport._io as io
        def die(obj, tmp):
            open(tmp, "wb").write(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        io._write_checked = die
        io.atomic_save({{"w": torch.ones(1)}}, Path({str(tmp_path / "flow.sit")!r}))
        """
    )
    run = subprocess.run([sys.executable, "-c", code], timeout=120, capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    assert [p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [True]
    mine = tmp_path / f".flow.sit.{os.getpid()}.x.tmp"  # a live process's save in progress
    mine.write_bytes(b"")
    flow.save(tmp_path / "flow.sit")
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "flow.sit"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(flow, tmp_path, umask, mode):
    # like every other output (report.json, figures): not always 0600, the mode of mkstemp
    old = os.umask(umask)
    try:
        flow.save(tmp_path / "flow.sit")
        flow.save(tmp_path / "flow.sit")  # replacing a file too
        after = os.umask(umask)
    finally:
        os.umask(old)
    assert (tmp_path / "flow.sit").stat().st_mode & 0o777 == mode
    assert after == umask  # the save left the umask as it was


def test_resaving_a_loaded_flow_warns_nothing(saved, tmp_path):
    loaded = st.load(saved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.save(tmp_path / "again.sit")
    assert st.load(tmp_path / "again.sit").history.sizes["step"] == TINY["steps"]


# --------------------------------------------------------------- item 10: checkpoints
CKPT = dict(TINY, seed=0)


def every_10(folder: Path, resume: bool = False) -> st.Checkpointing:
    """Checkpoints in ``folder`` every 10 steps (resumed from if ``resume``)."""
    return st.Checkpointing(folder, every=10, resume=resume)


@pytest.fixture
def checkpointed(moons, tmp_path):
    """A 20-step run with checkpoints at 10 and 20, and the flow it gave."""
    flow = st.fit("gaussian", moons, **CKPT, checkpoint=every_10(tmp_path))
    return tmp_path / "checkpoint.pt", flow


def test_checkpoint_keeps_the_previous_one(checkpointed):
    from sitransport._io import load_checkpoint

    ckpt, _ = checkpointed
    prev = ckpt.with_name("checkpoint.pt.prev")
    assert load_checkpoint(ckpt, "cpu")["step"] == 20
    assert load_checkpoint(prev, "cpu")["step"] == 10
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["checkpoint.pt", "checkpoint.pt.prev"]


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip"])
def test_a_bad_checkpoint_falls_back_to_the_previous_one(checkpointed, moons, damage):
    ckpt, full = checkpointed
    if damage == "flip":
        from sitransport._io import load_checkpoint

        flip_a_weight_bit(ckpt, load_checkpoint(ckpt, "cpu")["net"]["net.0.weight"])
    else:
        ckpt.write_bytes(ckpt.read_bytes()[:100] if damage == "truncate" else b"")
    with pytest.warns(UserWarning, match=r"checkpoint\.pt' is unusable .*checkpoint\.pt\.prev'"):
        resumed = st.fit("gaussian", moons, **CKPT, checkpoint=every_10(ckpt.parent, resume=True))
    x = moons[:5]  # resumed from step 10: the same run, bit for bit
    np.testing.assert_array_equal(resumed.push_forward(x), full.push_forward(x))


def test_both_checkpoints_bad_is_a_clear_error(checkpointed, moons):
    ckpt, _ = checkpointed
    ckpt.write_bytes(b"")
    ckpt.with_name("checkpoint.pt.prev").write_bytes(b"not a checkpoint")
    with pytest.raises(
        CorruptFileError, match=r"checkpoint\.pt' is not a readable checkpoint.*\.prev'"
    ):
        st.fit("gaussian", moons, **CKPT, checkpoint=every_10(ckpt.parent, resume=True))


def test_a_lone_bad_checkpoint_names_the_file(tmp_path):
    from sitransport._io import load_checkpoint

    torch.save({"step": 3}, tmp_path / "ckpt.pt")  # readable, but not a checkpoint
    with pytest.raises(CorruptFileError, match=r"ckpt\.pt' is not a sitransport checkpoint"):
        load_checkpoint(tmp_path / "ckpt.pt", "cpu")


@pytest.mark.parametrize(
    ("version", "kind"), [(True, "bool"), ("2", "str"), (2.0, "float"), (None, "NoneType")]
)
def test_a_version_that_is_no_integer_is_named_with_its_type(flow, version, kind):
    """``True == 1``: a bool version was read as version 1; ``"2"`` was refused as if it were
    the number 2. A version must be an integer; another type is named."""
    shown = re.escape(f"version {version!r} (a {kind}, expected an integer)")
    with pytest.raises(CorruptFileError, match=f"the payload has format {shown}"):
        st.TransportFlow.from_payload(dict(flow.to_payload(), version=version))
    latent = {"format": LatentFlow.FORMAT, "version": version}
    with pytest.raises(CorruptFileError, match=f"the payload has latent format {shown}"):
        LatentFlow.from_payload(latent)
