"""Image data: dequantisation, loaders for the standard file formats, bits/dim against a
closed form, fit on images and datasets, a short digits run beating the uniform model."""

from __future__ import annotations

import math
import pickle
import sys

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport import images
from sitransport.images import ImageData, bpd, dequantize, to_pixels


# ------------------------------------------------------------------------- dequantisation
def test_dequantize_stays_in_each_cell_and_is_seeded():
    k = np.random.default_rng(0).integers(0, 256, size=(50, 3, 4, 4), dtype=np.uint8)
    x = dequantize(k, seed=1)
    assert x.dtype == np.float64 and x.shape == k.shape
    np.testing.assert_array_equal(to_pixels(x), k)  # floor(x * 256) recovers the pixels
    np.testing.assert_array_equal(dequantize(k, seed=1), x)
    assert not np.array_equal(dequantize(k, seed=2), x)
    # the noise is uniform on the cell: its mean is 1/2 within 4 standard errors
    u = x * 256 - k
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / u.size)
    xt = dequantize(torch.as_tensor(k), seed=1)
    assert isinstance(xt, torch.Tensor) and xt.dtype == torch.float32


@pytest.mark.parametrize(
    ("pixels", "levels", "exc", "match"),
    [
        (np.zeros((2, 1, 2, 2)), 256, TypeError, "integer pixels"),
        (np.full((2, 1, 2, 2), 17, dtype=np.uint8), 17, ValueError, r"values in \{0, ..., 16\}"),
        (np.full((2, 1, 2, 2), -1, dtype=np.int64), 256, ValueError, "min -1"),
        ([1, 2], 256, TypeError, "integer numpy array or tensor"),
    ],
)
def test_dequantize_bad_input(pixels, levels, exc, match):
    with pytest.raises(exc, match=match):
        dequantize(pixels, levels=levels)


# ------------------------------------------------------------------------------- loaders
def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"labels": rng.integers(0, 10, size=n).tolist(),
    }


def test_cifar10_reads_pickle_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {f"data_batch_{i}": _cifar_batch(3, i) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(4, 9)
    for i, (name, batch) in enumerate(batches.items()):
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2 + i % 4))
    train = images.load_cifar10(tmp_path)  # finds the cifar-10-batches-py subfolder
    assert train.pixels.shape == (15, 3, 32, 32) and train.levels == 256
    np.testing.assert_array_equal(
        train.pixels[3:6], batches["data_batch_2"][b"data"].reshape(3, 3, 32, 32)
    )
    assert train.labels.tolist()[:3] == batches["data_batch_1"][b"labels"]
    test = images.load_cifar10(folder, "test")
    assert test.pixels.shape == (4, 3, 32, 32)


def test_cifar10_missing_file_names_it_and_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'data_batch_1' not found: expected it at .*"):
        images.load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        images.load_cifar10(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split must be"):
        images.load_cifar10(tmp_path, "valid")


class _Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_cifar10_pickle_cannot_run_code(tmp_path, capsys):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}))
    with pytest.raises(ValueError, match="refusing to unpickle builtins.print"):
        images.load_cifar10(tmp_path, "test")
    assert "code ran" not in capsys.readouterr().out


def test_imagenet32_reads_npz_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in [("train_data_batch_1", 3), ("train_data_batch_2", 2), ("val_data", 4)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        np.savez(tmp_path / f"{name}.npz", data=data, labels=np.arange(1, n + 1), mean=data[0])
    train = images.load_imagenet32(tmp_path, batches=2)
    assert train.pixels.shape == (5, 3, 32, 32)
    assert train.labels.tolist() == [0, 1, 2, 0, 1]  # 1-based in the files
    val = images.load_imagenet32(tmp_path, "val")
    with np.load(tmp_path / "val_data.npz") as f:
        np.testing.assert_array_equal(val.pixels, f["data"].reshape(4, 3, 32, 32))
    with pytest.raises(FileNotFoundError, match="'train_data_batch_3.npz' not found"):
        images.load_imagenet32(tmp_path, batches=3)


def test_image_folder_reads_pngs(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    arrays = [rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8) for _ in range(3)]
    for i, arr in enumerate(arrays):
        Image.fromarray(arr).save(tmp_path / ("sub" if i else ".") / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    same = images.load_image_folder(tmp_path)
    assert same.pixels.shape == (3, 3, 12, 16)
    np.testing.assert_array_equal(same.pixels[0], arrays[0].transpose(2, 0, 1))  # lossless PNG
    small = images.load_image_folder(tmp_path, size=8, mode="L", limit=2)
    assert small.pixels.shape == (2, 1, 8, 8) and small.pixels.dtype == np.uint8
    Image.fromarray(arrays[0][:10]).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match="pass size= to resize"):
        images.load_image_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        images.load_image_folder(empty)


def test_optional_imports_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="needs Pillow"):
        images.load_image_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="needs scikit-learn"):
        images.load_digits()


def test_digits():
    digits = images.load_digits()
    assert digits.pixels.shape == (1797, 1, 8, 8) and digits.levels == 17
    assert digits.pixels.max() == 16 and digits.bin_width == 1 / 17


def test_save_grid(tmp_path):
    import matplotlib.image

    path = images.save_grid(np.random.default_rng(0).random((5, 3, 4, 6)), tmp_path / "g.png")
    grid = matplotlib.image.imread(path)
    assert grid.shape[:2] == (2 * 6, 3 * 8)  # 3 columns x 2 rows of (4 + 2) x (6 + 2) tiles
    big = images.save_grid(np.zeros((5, 1, 4, 6), dtype=np.uint8), tmp_path / "b.png", scale=3)
    assert matplotlib.image.imread(big).shape[:2] == (3 * 2 * 6, 3 * 3 * 8)
    with pytest.raises(ValueError, match=r"\(n, 1 or 3, h, w\)"):
        images.save_grid(np.zeros((2, 2, 4, 4)), tmp_path / "bad.png")


# ------------------------------------------------------------------------------ bits/dim
def test_bpd_of_a_gaussian_flow_matches_the_closed_form():
    """v(z) = A z pushes N(0, I) to N(0, S), S = e^A e^A^T. Pixels uniform on 4 levels,
    dequantised, are exactly uniform on [0, 1]^d, so the expected NLL is
    tr(S^-1 M) / 2 + log det(2 pi S) / 2 with M = E[x x^T] = 11^T / 4 + I / 12, and
    bpd = (NLL + d log 4) / (d ln 2). Hutchinson's estimate agrees within its standard error."""
    d, levels, n = 16, 4, 400
    gen = torch.Generator().manual_seed(0)
    a = 0.3 * torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)

    def velocity(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (z.flatten(1) @ a.T.to(z)).reshape(z.shape)

    flow = st.TransportFlow(velocity, "linear", base="gaussian", shape=(1, 4, 4))
    expa = torch.linalg.matrix_exp(a)
    s = expa @ expa.T
    m = torch.full((d, d), 0.25, dtype=torch.float64) + torch.eye(d, dtype=torch.float64) / 12
    nll = 0.5 * torch.trace(torch.linalg.solve(s, m)) + 0.5 * torch.logdet(2 * math.pi * s)
    exact = float((nll + d * math.log(levels)) / (d * math.log(2)))

    pixels = np.random.default_rng(1).integers(0, levels, size=(n, 1, 4, 4), dtype=np.uint8)
    data = ImageData(pixels, None, levels)
    est = bpd(flow, data, method="hutchinson", probes=2, progress=False)
    assert est.n == n and 0 < est.stderr < 0.05
    assert abs(est.bpd - exact) < 4 * est.stderr
    same = bpd(flow, data.dequantized(seed=0), bin_width=1 / levels, method="exact", progress=False)
    # the exact divergence on the same points: the same mean up to the probes' noise
    assert abs(same.bpd - est.bpd) < 4 * est.stderr


def test_bpd_takes_one_probe():
    """bpd's error bar is the spread over images: one Hutchinson probe per image will do,
    though log_prob_estimate refuses one probe (no spread of its own to measure)."""
    flow = st.TransportFlow(lambda z, t: -z, "linear", base="gaussian", shape=(1, 2, 2))
    data = ImageData(np.zeros((3, 1, 2, 2), np.uint8), None, 2)
    one = bpd(flow, data, method="hutchinson", probes=1, progress=False)
    exact = bpd(flow, data, method="exact", progress=False)
    assert one.n == 3 and one.bpd == pytest.approx(exact.bpd, abs=1e-4)  # -z: probes exact


def test_bpd_of_a_conditional_flow_takes_its_condition():
    """v(z, t, c) = mu_c under ``linear`` pushes N(0, I) to N(mu_c, I): bpd(condition=labels)
    is each image's density under its own label (exact divergence 0, closed form), and a
    conditional flow without condition= is refused as log_prob refuses it."""
    from sitransport.ends.conditions import ConditionEncoder

    mu = torch.tensor([[0.0] * 4, [1.0] * 4, [0.0] * 4], dtype=torch.float64)  # 0, 1, null

    def velocity(z: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return mu.to(z)[c].reshape(z.shape)

    labels = np.array([0, 1, 1, 0, 1])
    flow = st.TransportFlow(
        velocity,
        "linear",
        base="gaussian",
        shape=(1, 2, 2),
        condition=ConditionEncoder.fit(labels),
    )
    data = ImageData(np.zeros((5, 1, 2, 2), np.uint8), labels, 2)
    est = bpd(flow, data, condition=labels, method="exact", progress=False)
    x = data.dequantized(seed=0).reshape(5, 4)
    nll = 0.5 * ((x - mu[labels].numpy()) ** 2).sum(1) + 2 * math.log(2 * math.pi)
    exact = (nll + 4 * math.log(2)) / (4 * math.log(2))  # bin width 1/2
    assert est.bpd == pytest.approx(exact.mean(), abs=1e-6)
    with pytest.raises(ValueError, match="condition: this flow is conditional"):
        bpd(flow, data, progress=False)


def test_bpd_bad_input():
    flow = st.TransportFlow(lambda z, t: 0 * z, "linear", base="gaussian", shape=(1, 2, 2))
    with pytest.raises(ValueError, match="bin_width is required"):
        bpd(flow, np.zeros((2, 1, 2, 2)))
    with pytest.raises(ValueError, match="set by ImageData"):
        bpd(flow, ImageData(np.zeros((2, 1, 2, 2), dtype=np.uint8), None), bin_width=0.1)
    with pytest.raises(ValueError, match=r"trailing shape \(1, 2, 2\)"):
        bpd(flow, np.zeros((2, 1, 3, 3)), bin_width=0.1)


# ------------------------------------------------------------------------ fit on images
TINY_FIT = {
    "steps": 4,
    "batch_size": 8,
    "progress": False,
    "training": st.TrainSettings(eval_every=2, warmup=1),
}


def _pixels(n: int = 40, levels: int = 17, shape=(1, 4, 4)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, levels, size=(n, *shape), dtype=np.uint8)


def test_fit_images_picks_a_unet_and_round_trips(tmp_path):
    data = ImageData(_pixels(), None, 17)
    flow = st.fit(
        "gaussian",
        data,
        network=st.UNetSpec(
            "tiny", {"base_channels": 8, "norm_groups": 4, "attention_resolutions": [2]}
        ),
        **TINY_FIT,
    )
    assert flow.shape == (1, 4, 4) and flow.network.config["kind"] == "unet"
    assert flow.target is None  # the image set is not copied into the flow
    assert flow.history.sizes["eval_step"] == 2
    flow.save(tmp_path / "f.sit")
    again = st.load(tmp_path / "f.sit")
    x = data.dequantized()[:3]
    ode = st.ODEOptions(method="euler", steps=3)
    np.testing.assert_array_equal(again.pull_back(x, ode=ode), flow.pull_back(x, ode=ode))
    assert flow.sample(2, seed=0, ode=ode).shape == (2, 1, 4, 4)


def test_fit_float_images_and_datasets():
    x = _pixels(levels=256) / 255.0
    flow = st.fit("gaussian", x, network="tiny", **dict(TINY_FIT, steps=2))
    assert flow.network.config["base_channels"] == 16
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(_pixels(levels=256)))
    flow = st.fit("gaussian", dataset, network="tiny", **dict(TINY_FIT, steps=2))
    assert flow.shape == (1, 4, 4) and flow.base.kind == "gaussian"
    loader = torch.utils.data.DataLoader(dataset, batch_size=5)  # fit uses its dataset
    again = st.fit("gaussian", loader, network="tiny", **dict(TINY_FIT, steps=2))
    y = np.random.default_rng(0).normal(size=(2, 1, 4, 4))
    ode = st.ODEOptions(method="euler", steps=2)
    np.testing.assert_array_equal(again.push_forward(y, ode=ode), flow.push_forward(y, ode=ode))
    straight = st.reflow(flow, 16, steps=2, progress=False, ode=ode)  # a fresh U-Net, same size
    assert straight.network.config == flow.network.config


@pytest.mark.parametrize(
    ("rho0", "rho1", "kwargs", "exc", "match"),
    [
        (
            "gaussian",
            "images",
            {"network": "mlp"},
            ValueError,
            "network='mlp' is an MLP, which needs vectors",
        ),
        (
            "gaussian",
            "vectors",
            {"network": "unet"},
            ValueError,
            "network=.unet. is a U-Net, which needs images",
        ),
        ("gaussian", "images", {"network": "huge"}, ValueError, "unknown network 'huge'"),
        (
            "gaussian",
            "images",
            {"network": st.UNetSpec("tiny", {"nope": 1})},
            ValueError,
            r"unknown U-Net arguments \['nope'\]",
        ),
        (
            "gaussian",
            "images",
            {"network": {"preset": "tiny"}},
            TypeError,
            "network must be 'auto', a network name, an MLPSpec or a UNetSpec, got dict",
        ),
        ("dataset", "gaussian", {}, TypeError, "rho0 cannot be a torch Dataset"),
        ("gaussian", "images", {"latent": 4}, ValueError, "latent= works on vectors"),
    ],
)
def test_fit_image_errors(rho0, rho1, kwargs, exc, match):
    ends = {
        "gaussian": "gaussian",
        "images": ImageData(_pixels(), None, 17),
        "vectors": np.random.default_rng(0).normal(size=(40, 3)),
        "dataset": torch.utils.data.TensorDataset(torch.as_tensor(_pixels())),
    }
    with pytest.raises(exc, match=match):
        st.fit(ends[rho0], ends[rho1], **dict(TINY_FIT, **kwargs))


@pytest.mark.parametrize("key", ["channels", "image_size", "kind", "condition"])
def test_unet_options_set_by_the_data_are_refused(key):
    with pytest.raises(ValueError, match=rf"options\['{key}'\] is set by the data"):
        st.UNetSpec("tiny", {key: 3})


def test_short_digits_run_beats_the_uniform_model():
    """100 steps of the tiny U-Net on 8x8 digits (17 grey levels): held-out bpd clearly below
    the uniform model's log2(17) = 4.09 bits and the untrained (v = 0) flow's."""
    digits = images.load_digits()
    train = ImageData(digits.pixels[:-100], None, 17)
    test = ImageData(digits.pixels[-100:], None, 17)
    settings = st.TrainSettings(warmup=20, ema=0.99)
    flow = st.fit(
        "gaussian", train, steps=100, batch_size=32, lr=3e-3, training=settings, progress=False
    )
    untrained = st.TransportFlow(
        lambda z, t: 0 * z,
        "trig",
        base=flow.base,
        normalization=flow.normalization,
        shape=flow.shape,
    )
    ode = st.ODEOptions(atol=1e-3, rtol=1e-3)
    trained = bpd(flow, test, probes=2, ode=ode, progress=False)
    baseline = bpd(untrained, test, probes=2, ode=ode, progress=False)
    uniform = math.log2(17)
    assert trained.bpd + 10 * trained.stderr < uniform - 0.5
    assert trained.bpd + 10 * trained.stderr < baseline.bpd


@pytest.mark.slow
def test_digits_quality_target():
    """1500 steps of batch 64 (the --quick benchmark's run, 2.13 +- 0.015 bpd there): held-out
    bits/dim below 2.6, i.e. 1.5 bits under the uniform model's log2(17) = 4.09."""
    digits = images.load_digits()
    train = ImageData(digits.pixels[:-297], None, 17)
    test = ImageData(digits.pixels[-297:], None, 17)
    flow = st.fit("gaussian", train, network="tiny", steps=1500, batch_size=64, progress=False)
    est = bpd(flow, test, probes=2, ode=st.ODEOptions(atol=1e-4, rtol=1e-4), progress=False)
    assert est.bpd + 4 * est.stderr < 2.6
