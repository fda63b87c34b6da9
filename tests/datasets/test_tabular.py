"""Tabular loaders: the MAF preprocessing, reproduced on small files written in the MAF format.

Each ``reference_*`` function below restates the MAF / FFJORD preprocessing code literally
(pandas, ``Counter``, ``RandomState(42)``), independently of the library's implementation.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import sitransport as st
from sitransport.datasets import TABULAR_FILES, TabularSplits, load_tabular

# ------------------------------------------------------------------ literal references


def reference_split(data):
    n_test = int(0.1 * data.shape[0])
    data_test = data[-n_test:]
    data = data[0:-n_test]
    n_validate = int(0.1 * data.shape[0])
    return data[0:-n_validate], data[-n_validate:], data_test


def reference_normalise(train, validate, test):
    data = np.vstack((train, validate))
    mu, s = data.mean(axis=0), data.std(axis=0)
    return (train - mu) / s, (validate - mu) / s, (test - mu) / s


def reference_power(raw):
    rng = np.random.RandomState(42)
    data = raw.copy()
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sm_noise = rng.rand(n, 3)
    time_noise = np.zeros((n, 1))
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, time_noise))
    return reference_normalise(*reference_split(data))


def reference_gas(frame):
    data = frame.drop("Meth", axis=1).drop("Eth", axis=1).drop("Time", axis=1)

    def numbers(d):
        return (d.corr() > 0.98).values.sum(axis=1)

    b = numbers(data)
    while np.any(b > 1):
        data = data.drop(data.columns[np.where(b > 1)[0][0]], axis=1)
        b = numbers(data)
    data = ((data - data.mean()) / data.std()).values
    return reference_split(data)


def reference_hepmass(train_path, test_path):
    data_train = pd.read_csv(filepath_or_buffer=train_path, index_col=False)
    data_test = pd.read_csv(filepath_or_buffer=test_path, index_col=False)
    data_train = data_train[data_train[data_train.columns[0]] == 1]
    data_train = data_train.drop(data_train.columns[0], axis=1)
    data_test = data_test[data_test[data_test.columns[0]] == 1]
    data_test = data_test.drop(data_test.columns[0], axis=1)
    data_test = data_test.drop(data_test.columns[-1], axis=1)
    mu, s = data_train.mean(), data_train.std()
    data_train, data_test = ((data_train - mu) / s).values, ((data_test - mu) / s).values
    features_to_remove = []
    for i, feature in enumerate(data_train.T):
        c = Counter(feature)
        if np.array([v for k, v in sorted(c.items())])[0] > 5:
            features_to_remove.append(i)
    keep = np.array([i for i in range(data_train.shape[1]) if i not in features_to_remove])
    data_train, data_test = data_train[:, keep], data_test[:, keep]
    n_validate = int(data_train.shape[0] * 0.1)
    return data_train[0:-n_validate], data_train[-n_validate:], data_test


def assert_splits(splits, expected):
    assert isinstance(splits, TabularSplits)
    for got, want in zip((splits.train, splits.validation, splits.test), expected, strict=True):
        assert got.dtype == np.float64 and not got.flags.writeable
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert splits.dim == expected[0].shape[1]


# ------------------------------------------------------------------ files in MAF format


@pytest.fixture
def maf_root(tmp_path):
    rng = np.random.default_rng(0)
    # power: 8 columns (gap, grp, voltage, gintens, sm1, sm2, sm3, time)
    (tmp_path / "power").mkdir()
    power = np.column_stack(
        [rng.gamma(2.0, 1.0, 400), rng.random(400), 240 + rng.standard_normal(400)]
        + [rng.random(400) * 10, *rng.integers(0, 30, (3, 400)), rng.random(400) * 1440]
    ).astype(np.float64)
    np.save(tmp_path / "power" / "data.npy", power)
    # miniboone: 43 columns
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", rng.standard_normal((300, 43)) * 3 + 1)
    # gas: a DataFrame with Time, Meth, Eth and sensors, two of them near-duplicates
    (tmp_path / "gas").mkdir()
    sensors = rng.standard_normal((350, 6))
    frame = pd.DataFrame(sensors, columns=[f"S{i}" for i in range(6)])
    frame["S6"] = frame["S1"] * 2 + 0.01 * rng.standard_normal(350)  # corr > 0.98 with S1
    frame["S7"] = frame["S3"] - 0.01 * rng.standard_normal(350)  # corr > 0.98 with S3
    frame.insert(0, "Time", np.arange(350.0))
    frame.insert(1, "Meth", rng.random(350))
    frame.insert(2, "Eth", rng.random(350))
    frame.to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    # hepmass: label, 6 features (one discrete), mass; the test file has one extra column
    (tmp_path / "hepmass").mkdir()
    for split, n, extra in (("train", 600, False), ("test", 200, True)):
        cols = {"# label": rng.integers(0, 2, n).astype(float)}
        for j in range(6):
            cols[f"f{j}"] = rng.standard_normal(n) if j != 2 else rng.choice([0.0, 1.5, 3.0], n)
        cols["mass"] = rng.choice([500.0, 750.0, 1000.0, 1250.0, 1500.0], n)
        if extra:
            cols["extra"] = rng.standard_normal(n)
        pd.DataFrame(cols).to_csv(tmp_path / "hepmass" / f"1000_{split}.csv", index=False)
    return tmp_path


def test_power_reproduces_maf(maf_root):
    splits = load_tabular("power", root=maf_root)
    raw = np.load(maf_root / "power" / "data.npy")
    assert_splits(splits, reference_power(raw))
    assert (splits.train.shape, splits.validation.shape, splits.test.shape) == (
        (324, 6),
        (36, 6),
        (40, 6),
    )
    pooled = np.vstack((splits.train, splits.validation))
    np.testing.assert_allclose(pooled.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(pooled.std(0), 1.0, rtol=1e-12)


def test_miniboone_reproduces_maf(maf_root):
    splits = load_tabular("miniboone", root=maf_root)
    raw = np.load(maf_root / "miniboone" / "data.npy")
    assert_splits(splits, reference_normalise(*reference_split(raw)))
    assert splits.dim == 43 and splits.test.shape == (30, 43)


def test_gas_reproduces_maf_and_drops_correlated_columns(maf_root):
    splits = load_tabular("gas", root=maf_root)
    frame = pd.read_pickle(maf_root / "gas" / "ethylene_CO.pickle")
    assert_splits(splits, reference_gas(frame))
    assert splits.dim == 6  # 8 sensors, two near-duplicates removed


def test_hepmass_reproduces_maf(maf_root):
    splits = load_tabular("hepmass", root=maf_root)
    d = maf_root / "hepmass"
    assert_splits(splits, reference_hepmass(d / "1000_train.csv", d / "1000_test.csv"))
    assert splits.dim == 5  # the discrete feature and the 5-valued mass removed
    n_pos = int((pd.read_csv(d / "1000_train.csv")["# label"] == 1).sum())
    assert splits.train.shape[0] + splits.validation.shape[0] == n_pos


def test_bsds300_reads_the_stored_splits(tmp_path):
    h5py = pytest.importorskip("h5py")
    (tmp_path / "BSDS300").mkdir()
    rng = np.random.default_rng(1)
    stored = {k: rng.standard_normal((n, 63)).astype(np.float32) for k, n in
              (("train", 50), ("validation", 20), ("test", 30))}  # fmt: skip
    with h5py.File(tmp_path / "BSDS300" / "BSDS300.hdf5", "w") as f:
        for k, v in stored.items():
            f.create_dataset(k, data=v)
    splits = load_tabular("bsds300", root=tmp_path)
    assert_splits(splits, [stored[k].astype(np.float64) for k in ("train", "validation", "test")])


def test_bsds300_without_h5py_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "BSDS300").mkdir()
    (tmp_path / "BSDS300" / "BSDS300.hdf5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        load_tabular("bsds300", root=tmp_path)


def test_root_defaults_to_environment(maf_root, monkeypatch):
    monkeypatch.setenv("SITRANSPORT_DATA", str(maf_root))
    np.testing.assert_array_equal(
        st.datasets.load_tabular("miniboone").test, load_tabular("miniboone", root=maf_root).test
    )
    monkeypatch.delenv("SITRANSPORT_DATA")
    with pytest.raises(ValueError, match="SITRANSPORT_DATA.*miniboone/data.npy"):
        load_tabular("miniboone")


@pytest.mark.parametrize("name", sorted(TABULAR_FILES))
def test_missing_file_names_what_is_expected_where(tmp_path, name):
    rel = TABULAR_FILES[name][0]
    with pytest.raises(FileNotFoundError) as info:
        load_tabular(name, root=tmp_path)
    msg = str(info.value)
    assert rel in msg and str(tmp_path / rel) in msg and "zenodo" in msg


def test_hepmass_names_the_missing_test_file(maf_root):
    os.remove(maf_root / "hepmass" / "1000_test.csv")
    with pytest.raises(FileNotFoundError, match="hepmass/1000_test.csv"):
        load_tabular("hepmass", root=maf_root)


def test_bad_names_and_roots(tmp_path):
    with pytest.raises(ValueError, match="valid values are: bsds300, gas, hepmass, miniboone"):
        load_tabular("mnist", root=tmp_path)
    with pytest.raises(TypeError, match="root must be a path"):
        load_tabular("power", root=3)


def test_wrong_content_is_refused(tmp_path):
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", np.zeros((100, 5)))
    with pytest.raises(ValueError, match=r"shape \(100, 5\), expected \(n, 8\)"):
        load_tabular("power", root=tmp_path)
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", np.array([{"a": 1}] * 3), allow_pickle=True)
    with pytest.raises(ValueError, match="not a plain numpy array file"):
        load_tabular("miniboone", root=tmp_path)
    np.save(tmp_path / "miniboone" / "data.npy", np.ones((100, 4)))  # constant columns
    with pytest.raises(ValueError, match=r"column\(s\) \[0, 1, 2, 3\] are constant"):
        load_tabular("miniboone", root=tmp_path)


class _Exploit:
    """Unpickling this would create a directory: the loader must refuse it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_gas_pickle_never_runs_code(tmp_path):
    (tmp_path / "gas").mkdir()
    sentinel = tmp_path / "created_by_pickle"
    with open(tmp_path / "gas" / "ethylene_CO.pickle", "wb") as f:
        pickle.dump(_Exploit(str(sentinel)), f)
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        load_tabular("gas", root=tmp_path)
    assert not sentinel.exists()
    (tmp_path / "gas" / "ethylene_CO.pickle").write_bytes(b"not a pickle")
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        load_tabular("gas", root=tmp_path)


def test_splits_are_frozen(maf_root):
    splits = load_tabular("miniboone", root=maf_root)
    with pytest.raises(dataclasses.FrozenInstanceError):
        splits.train = np.zeros((1, 43))
    with pytest.raises(ValueError):
        splits.train[0, 0] = 1.0
