"""Files crafted to hurt: a flow file is something people download and share, and a crafted
file simply carries a correct checksum. Loading one never runs code, never allocates beyond
what its size allows (plus the model it declares), never takes time exponential in it, and
checks every number it restores; a loaded flow's methods give finite results or say why not.

Each test below failed on the library before the file format without pickle (issue 24):
the defect it guards is named in its docstring."""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.errors import CorruptFileError
from sitransport.interpolants import Fourier
from sitransport.nn import MLPVelocity
from tests.helpers import TINY

MB = 2**20


# ----------------------------------------------------------------------------- helpers
def _status(key: str) -> int:
    found = re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def _can_reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status("VmHWM")
    except (OSError, AssertionError):
        return False
    return True


needs_peak_rss = pytest.mark.skipif(
    not _can_reset_peak(), reason="resetting the peak RSS needs Linux's /proc/self/clear_refs"
)


def peak_growth(call) -> int:
    """Bytes the process's peak resident memory rose above its current size during
    ``call()`` (whatever it raises)."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status("VmRSS")
    try:
        call()
    except Exception:
        pass
    return _status("VmHWM") - before


def checked_v1(payload: dict, path: Path) -> Path:
    """A file of version 1: the payload in a checked torch record, as ``save`` wrote it
    before safetensors (its SHA-256 is correct: a crafted file simply carries one)."""
    from sitransport._io import atomic_save

    atomic_save(payload, path)
    return path


def safe_file(payload: dict, path: Path) -> Path:
    """A file of the current version holding ``payload``, whatever it is, with a correct
    SHA-256."""
    from sitransport._safefile import write_tree

    write_tree(payload, path)
    return path


@pytest.fixture(scope="module")
def flow() -> st.TransportFlow:
    return st.fit("gaussian", st.datasets.sample("moons", 300, seed=0), **TINY, seed=0)


@pytest.fixture
def payload(flow) -> dict:
    return flow.to_payload()


def nested_pairs(depth: int) -> list:
    """``L = [L, L]`` nested ``depth`` deep: ``depth`` objects, 2**depth leaves when walked."""
    value: list = [0]
    for _ in range(depth):
        value = [value, value]
    return value


# ------------------------------------------------------------ the format carries no pickle
def test_a_saved_flow_is_a_safetensors_file_with_its_json_and_checksum(flow, tmp_path):
    from safetensors import safe_open

    path = tmp_path / "flow.sit"
    flow.save(path)
    assert not path.read_bytes().startswith(b"PK")  # not a torch zip: no pickle anywhere
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        names = set(f.keys())
    assert meta["format"] == "sitransport-file" and meta["version"] == "2"
    assert re.fullmatch(r"[0-9a-f]{64}", meta["sha256"])
    assert '"format": "sitransport.TransportFlow"' in meta["content"]
    assert "state_dict/net.0.weight" in names
    again = st.load(path)
    x = np.zeros((3, 2))
    np.testing.assert_array_equal(again.push_forward(x), flow.push_forward(x))
    assert again.config == flow.config
    assert again.history.equals(flow.history)  # steps come back as float64, as before


def test_files_of_version_1_still_load(flow, payload, tmp_path):
    old = st.load(checked_v1(payload, tmp_path / "v1.sit"))
    x = np.zeros((3, 2))
    np.testing.assert_array_equal(old.push_forward(x), flow.push_forward(x))


def test_a_changed_json_is_detected(flow, tmp_path):
    path = tmp_path / "flow.sit"
    flow.save(path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"lr_schedule_steps", b"lr_schedule_stepz", 1))
    assert path.read_bytes() != data
    with pytest.raises(CorruptFileError, match=r"flow\.sit' is a corrupted .*SHA-256"):
        st.load(path)


# ------------------------------------------------------- defect 1: memory amplification
@needs_peak_rss
def test_an_expanded_network_is_refused_without_allocating_it(payload, tmp_path):
    """A 28 kB file declared a width-8192 network of expanded weights: +266 MB."""
    width = 4096
    payload["network"]["width"] = width
    payload["network"]["depth"] = 2
    state = MLPVelocity(2, width=width, depth=2, time_frequencies=8).state_dict()
    payload["state_dict"] = {k: torch.zeros(1).expand(v.shape) for k, v in state.items()}
    for write in (checked_v1, torch.save):
        path = tmp_path / "wide.sit"
        write(payload, path)
        assert path.stat().st_size < 64_000
        with pytest.raises(CorruptFileError, match=r"wide\.sit' is a damaged .*repeats its"):
            st.load(path)
        assert peak_growth(lambda p=path: st.load(p)) < 32 * MB


@needs_peak_rss
def test_an_expanded_history_is_refused_without_allocating_it(payload, tmp_path):
    """A 15 kB file with a valid checksum loaded a 100-million-step history: +763 MB."""
    steps = 20_000_000
    history = payload["history"]
    history["coords"]["step"] = torch.zeros(1, dtype=torch.float64).expand(steps)
    for var in history["vars"].values():
        if var["dims"] == ["step"]:
            var["data"] = torch.zeros(1, dtype=torch.float64).expand(steps)
    path = checked_v1(payload, tmp_path / "long.sit")
    with pytest.raises(CorruptFileError, match=r"long\.sit' is a damaged .*repeats its"):
        st.load(path)
    assert peak_growth(lambda: st.load(path)) < 32 * MB


@needs_peak_rss
@pytest.mark.parametrize("claimed", [2**28, 2**37])
def test_an_expanded_outer_record_is_refused_before_it_is_copied(tmp_path, claimed):
    """A 1.6 kB file drove peak RSS to 1.3 GB; one declaring 2**37 bytes raised a raw
    MemoryError."""
    path = tmp_path / "big.sit"
    record = {
        "format": "sitransport-checked",
        "version": 1,
        "sha256": "0" * 64,
        "payload": torch.zeros(1, dtype=torch.uint8).expand(claimed),
    }
    torch.save(record, path)
    assert path.stat().st_size < 4_000
    with pytest.raises(CorruptFileError, match=r"big\.sit' is a damaged .*repeats its"):
        st.load(path)
    assert peak_growth(lambda: st.load(path)) < 32 * MB


@needs_peak_rss
def test_a_compressed_record_is_refused_before_it_is_inflated(payload, tmp_path):
    """torch inflates deflated zip records: a file of 130 kB unpacked to 128 MB of samples."""
    payload["target"]["samples"] = torch.zeros(2**23, 2, dtype=torch.float64)  # 128 MB
    plain = tmp_path / "plain.sit"
    torch.save(payload, plain)
    packed = tmp_path / "packed.sit"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for record in src.infolist():
            dst.writestr(record.filename, src.read(record.filename))
    assert packed.stat().st_size < 1 * MB
    with pytest.raises(CorruptFileError, match=r"packed\.sit' is a damaged .*compressed record"):
        st.load(packed)
    assert peak_growth(lambda: st.load(packed)) < 32 * MB


# ------------------------------------------------------------ defect 2: exponential time
@pytest.mark.parametrize("where", ["network", "interpolant"])
def test_shared_references_in_a_description_are_refused_at_once(payload, tmp_path, where):
    """``L = [L, L]`` nested 22 deep in the network description took 7 s to check, doubling
    with each level."""
    payload[where]["extra"] = nested_pairs(24)
    path = checked_v1(payload, tmp_path / "shared.sit")
    start = time.process_time()
    with pytest.raises(CorruptFileError, match=r"shared\.sit' is a damaged .*more than \d+ values"):
        st.load(path)
    assert time.process_time() - start < 5.0  # 2**25 visits would take minutes


def test_shared_references_in_history_attrs_are_refused(payload, tmp_path):
    """In ``history.attrs`` the same list loaded, then ``save`` expanded it (34 kB -> 4.5 MB
    at depth 18)."""
    payload["history"]["attrs"]["notes"] = nested_pairs(18)
    path = checked_v1(payload, tmp_path / "attrs.sit")
    with pytest.raises(CorruptFileError, match=r"attrs\.sit' is a damaged .*more than \d+ values"):
        st.load(path)


def test_a_payload_dict_with_shared_references_is_refused_at_once(payload):
    payload["network"]["extra"] = nested_pairs(30)
    start = time.process_time()
    with pytest.raises(CorruptFileError, match=r"the payload is a damaged .*more than \d+ values"):
        st.TransportFlow.from_payload(payload)
    assert time.process_time() - start < 5.0


# ------------------------------------------------------- defect 3: self-referential attrs
def test_self_referential_history_attrs_are_refused_on_load(payload, tmp_path):
    """They loaded, then ``flow.save()`` died with a raw RecursionError."""
    attrs = payload["history"]["attrs"]
    attrs["me"] = attrs
    path = checked_v1(payload, tmp_path / "loop.sit")
    with pytest.raises(CorruptFileError, match=r"loop\.sit' is a damaged .*contains itself"):
        st.load(path)


def test_saving_self_referential_history_attrs_names_them(flow, tmp_path):
    again = st.TransportFlow.from_payload(flow.to_payload())
    again.history.attrs["me"] = again.history.attrs
    with pytest.raises(ValueError, match=r"history\.attrs: .* contains itself"):
        again.save(tmp_path / "loop.sit")


# --------------------------------------------------------------- defect 4: complex weights
@pytest.mark.parametrize("write", [safe_file, checked_v1])
def test_complex_weights_are_refused(payload, tmp_path, write):
    """They passed the checks; ``push_forward`` then failed inside torchdiffeq with a raw
    TypeError naming neither the file nor the problem."""
    payload["state_dict"] = {k: v.to(torch.complex64) for k, v in payload["state_dict"].items()}
    with pytest.raises(CorruptFileError, match=r"c\.sit' is a damaged .*complex64, not real"):
        st.load(write(payload, tmp_path / "c.sit"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda p: p["state_dict"]["net.0.weight"].view(-1)[0].fill_(float("inf")), "infinite"),
        (lambda p: p["state_dict"]["net.0.bias"].__setitem__(0, float("nan")), "NaN"),
        (
            lambda p: p["state_dict"].update(
                {"net.0.bias": p["state_dict"]["net.0.bias"].double()}
            ),
            "mix the dtypes",
        ),
        (lambda p: p["target"]["samples"].__setitem__((0, 0), float("nan")), "samples hold NaN"),
    ],
)
def test_unusable_stored_tensors_are_refused(payload, tmp_path, change, match):
    change(payload)
    with pytest.raises(CorruptFileError, match=rf"w\.sit' is a damaged .*{match}"):
        st.load(safe_file(payload, tmp_path / "w.sit"))


# ------------------------------------------------------- defect 5: non-finite or absurd numbers
@pytest.fixture
def fourier_payload() -> dict:
    net = MLPVelocity(2, width=8, depth=1)
    return st.TransportFlow(net, Fourier("trig", K=2), base="gaussian").to_payload()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300])
def test_a_non_finite_or_absurd_fourier_coefficient_is_refused(fourier_payload, tmp_path, value):
    """A NaN coefficient gave NaN scores silently and a raw LinAlgError from
    ``transport_report``."""
    fourier_payload["interpolant"]["a"][0] = value
    with pytest.raises(CorruptFileError, match=r"f\.sit' is a damaged .*finite"):
        st.load(safe_file(fourier_payload, tmp_path / "f.sit"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("scale", 1e300), ("scale", 1e-300), ("shift", torch.tensor([1e30, 0.0]))],
)
def test_a_scale_the_network_cannot_represent_is_refused(payload, tmp_path, field, value):
    """A stored scale of 1e300 made ``sample`` and ``score`` return inf silently and
    ``transport_report`` raise a raw OverflowError."""
    payload["normalization"][field] = value.double() if torch.is_tensor(value) else value
    with pytest.raises(CorruptFileError, match=r"s\.sit' is a damaged .*for a float32 network"):
        st.load(safe_file(payload, tmp_path / "s.sit"))


def test_numbers_in_a_description_must_be_finite(payload, tmp_path):
    payload["interpolant"] = {"name": "stochastic", "base": "trig", "gamma": "sin2", "a": 1e300}
    with pytest.raises(CorruptFileError, match=r"n\.sit' is a damaged .*number 1e\+300"):
        st.load(safe_file(payload, tmp_path / "n.sit"))


# ---------------------------------------------------------------- the new format's own limits
def test_a_header_claiming_more_than_the_file_is_refused(tmp_path):
    path = tmp_path / "h.sit"
    path.write_bytes((10**9).to_bytes(8, "little") + b'{"__metadata__": {}}')
    with pytest.raises(CorruptFileError, match=r"h\.sit' is not a readable .*header claims"):
        st.load(path)


def test_tensor_offsets_beyond_the_file_are_refused(flow, tmp_path):
    path = tmp_path / "t.sit"
    flow.save(path)
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    path.write_bytes(data[: 8 + n + 100])  # the header intact, the tensors cut
    with pytest.raises(CorruptFileError, match=r"t\.sit' is not a readable .*truncated"):
        st.load(path)


def test_a_tensor_used_twice_or_never_is_refused(payload, tmp_path):
    from sitransport import _safefile

    path = safe_file(payload, tmp_path / "u.sit")
    content = _safefile._metadata(path, "", "")["content"]  # noqa: SLF001
    twice = content.replace('"state_dict/net.0.bias"}', '"state_dict/net.0.weight"}', 1)
    assert twice != content
    tensors = _safefile._tensors(path, "", "")  # noqa: SLF001
    with pytest.raises(ValueError, match="a second time"):
        _safefile._decode(_safefile._parse(twice), tensors, set(), "")  # noqa: SLF001


def test_deeply_nested_json_is_refused(payload, tmp_path, monkeypatch):
    from sitransport import _safefile

    monkeypatch.setattr(_safefile, "_check_writable", lambda tree: None)  # ours refuses it
    deep: list = []
    for _ in range(100):
        deep = [deep]
    payload["history"]["attrs"]["deep"] = deep
    with pytest.raises(CorruptFileError, match=r"d\.sit' is a damaged .*more than 64 deep"):
        st.load(safe_file(payload, tmp_path / "d.sit"))


def test_the_file_version_is_checked(flow, tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "v.sit"
    flow.save(path)
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    save_file(load_file(path), path, metadata=dict(meta, version="3"))
    with pytest.raises(CorruptFileError, match=r"file version '3'; this sitransport reads"):
        st.load(path)


def test_torch_zip_without_a_flow_is_not_a_flow(tmp_path):
    buffer = io.BytesIO()
    torch.save({"hello": 1}, buffer)
    (tmp_path / "z.sit").write_bytes(buffer.getvalue())
    with pytest.raises(CorruptFileError, match="is not a sitransport flow file"):
        st.load(tmp_path / "z.sit")
