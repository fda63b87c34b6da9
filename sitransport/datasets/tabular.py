"""Tabular density-estimation sets (POWER, GAS, HEPMASS, MINIBOONE, BSDS300):
:func:`load_tabular` reads the preprocessed MAF files from a user-given folder into
:class:`TabularSplits` with the standard splits and normalisation, one loader per set, and
reads the GAS pickle with a restricted unpickler (an allow-list of pandas and numpy globals).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitransport._unpickle import restricted_load
from sitransport._validation import check_choice
from sitransport.datasets.gaussians import readonly

__all__ = ["TabularSplits", "load_tabular"]


#: Files each set reads under ``root``, as distributed with MAF (Papamakarios et al. 2017).
TABULAR_FILES: dict[str, tuple[str, ...]] = {
    "bsds300": ("BSDS300/BSDS300.hdf5",),
    "gas": ("gas/ethylene_CO.pickle",),
    "hepmass": ("hepmass/1000_train.csv", "hepmass/1000_test.csv"),
    "miniboone": ("miniboone/data.npy",),
    "power": ("power/data.npy",),
}
_MAF_SOURCE = (
    "the preprocessed files of Papamakarios et al. (2017), https://zenodo.org/record/1161203 "
    "(MAF repository, gpapamak/maf)"
)


@dataclass(frozen=True)
class TabularSplits:
    """Train, validation and test samples of a tabular density-estimation set.

    Attributes:
        name: the set (``"power"``, ``"gas"``, ``"hepmass"``, ``"miniboone"``, ``"bsds300"``).
        train: read-only ``float64`` array of shape ``(n_train, d)``.
        validation: read-only ``float64`` array of shape ``(n_validation, d)``.
        test: read-only ``float64`` array of shape ``(n_test, d)``.

    Example:
        >>> import numpy as np
        >>> from sitransport.datasets import TabularSplits
        >>> s = TabularSplits("toy", np.zeros((4, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
        >>> print(s.dim, s.train.shape)
        2 (4, 2)
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def dim(self) -> int:
        """The dimension ``d``."""
        return int(self.train.shape[1])


def load_tabular(name: str, root: str | os.PathLike | None = None) -> TabularSplits:
    """Load a standard tabular density-estimation set with the standard splits and scaling.

    Reads the preprocessed MAF files from ``root`` (``root / TABULAR_FILES[name]``) and
    reproduces the preprocessing of the MAF code (also used by FFJORD and the stochastic
    interpolant paper), so test NLLs are comparable with published ones:

    * ``power`` (d = 6): ``power/data.npy``; rows shuffled by ``RandomState(42)``, columns 3
      and 1 dropped, uniform jitter added (0.001 on the first column, 0.01 on voltage, 1 on
      the three sub-meterings); last 10% test, last 10% of the rest validation;
      standardised with the mean and std of train + validation.
    * ``gas`` (d = 8): ``gas/ethylene_CO.pickle`` (a pandas DataFrame); ``Meth``, ``Eth``,
      ``Time`` dropped, then repeatedly the first column with more than one correlation
      ``> 0.98`` removed; standardised on all rows; last 10% test, last 10% of the rest
      validation. The pickle is read by a restricted unpickler that only builds pandas and
      numpy containers: loading never executes other code.
    * ``hepmass`` (d = 21): ``hepmass/1000_train.csv`` and ``1000_test.csv``; positive class
      only, label (and the test file's extra last column) dropped; standardised with the
      training mean and std; features whose smallest value occurs more than 5 times in the
      training set removed; last 10% of training as validation.
    * ``miniboone`` (d = 43): ``miniboone/data.npy``; last 10% test, last 10% of the rest
      validation; standardised with train + validation statistics.
    * ``bsds300`` (d = 63): ``BSDS300/BSDS300.hdf5`` with its ``train``, ``validation`` and
      ``test`` arrays, used as stored (needs the optional package ``h5py``).

    Args:
        name: one of ``"bsds300"``, ``"gas"``, ``"hepmass"``, ``"miniboone"``, ``"power"``.
        root: the folder holding the MAF data folders; defaults to the ``SITRANSPORT_DATA``
            environment variable.

    Returns:
        :class:`TabularSplits` of read-only ``float64`` arrays (the MAF code casts to
        float32 after the same preprocessing).

    Raises:
        ValueError: unknown ``name`` (the valid names are listed), no ``root`` and no
            ``SITRANSPORT_DATA``, or a file whose content is not in the expected format.
        FileNotFoundError: an expected file is missing; the message names it and where it was
            looked for.
        ImportError: ``bsds300`` without ``h5py`` installed.

    References:
        Papamakarios, Pavlakou & Murray, *Masked Autoregressive Flow for Density Estimation*
        (NeurIPS 2017), arXiv 1705.07057.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "miniboone").mkdir()
        >>> np.save(root / "miniboone" / "data.npy", np.random.default_rng(0).random((200, 43)))
        >>> s = load_tabular("miniboone", root=root)
        >>> print(s.train.shape, s.validation.shape, s.test.shape)
        (162, 43) (18, 43) (20, 43)
    """
    name = check_choice(name, "tabular data set", TABULAR_FILES)
    if root is None:
        root = os.environ.get("SITRANSPORT_DATA")
        if not root:
            raise ValueError(
                f"load_tabular({name!r}) needs the data folder: pass root=... or set the "
                f"SITRANSPORT_DATA environment variable to the folder holding "
                f"{', '.join(TABULAR_FILES[name])} ({_MAF_SOURCE})"
            )
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
    paths = [Path(root) / rel for rel in TABULAR_FILES[name]]
    for rel, path in zip(TABULAR_FILES[name], paths, strict=True):
        if not path.is_file():
            raise FileNotFoundError(
                f"load_tabular({name!r}) expects the file {rel} under {str(root)!r}, but "
                f"{str(path)!r} does not exist; the data are {_MAF_SOURCE}"
            )
    train, validation, test = _TABULAR_LOADERS[name](*paths)
    arrays = []
    for split, arr in (("train", train), ("validation", validation), ("test", test)):
        arr = np.array(arr, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ValueError(f"{name}: the {split} split has shape {arr.shape}, expected (n, d)")
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{name}: the {split} split holds {int(np.sum(~np.isfinite(arr)))} non-finite "
                f"values after preprocessing (e.g. a constant column); is {paths[0]} the "
                "original MAF file?"
            )
        arrays.append(readonly(arr))
    return TabularSplits(name, *arrays)


def _split_tail(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MAF's split: the last 10% test, then the last 10% of the rest validation."""
    n_test = int(0.1 * data.shape[0])
    test, rest = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * rest.shape[0])
    return rest[:-n_val], rest[-n_val:], test


def _standardise_by_train_and_validation(
    train: np.ndarray, validation: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pooled = np.vstack((train, validation))
    mu, s = pooled.mean(axis=0), _check_scale(pooled.std(axis=0))
    return (train - mu) / s, (validation - mu) / s, (test - mu) / s


def _check_scale(s: Any) -> Any:
    """Refuse to standardise by a zero standard deviation (a constant column)."""
    values = np.asarray(s, dtype=np.float64)
    if not np.all(values > 0):
        bad = np.flatnonzero(~(values > 0)).tolist()
        raise ValueError(
            f"cannot standardise: column(s) {bad} are constant (standard deviation 0); "
            "the file does not hold the original MAF data"
        )
    return s


def _load_npy(path: Path, name: str, columns: int | None = None) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{name}: {str(path)!r} is not a plain numpy array file: {err}") from None
    if data.ndim != 2 or (columns is not None and data.shape[1] != columns):
        want = f"(n, {columns})" if columns is not None else "(n, d)"
        raise ValueError(f"{name}: {str(path)!r} holds shape {data.shape}, expected {want}")
    return np.asarray(data, dtype=np.float64)


def _load_power(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = _load_npy(path, "power", columns=8)  # gap, grp, voltage, gintens, sm1-3, time
    rng = np.random.RandomState(42)  # the MAF split: legacy generator, fixed seed
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sm_noise = rng.rand(n, 3)
    time_noise = np.zeros((n, 1))
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, time_noise))
    return _standardise_by_train_and_validation(*_split_tail(data))


def _load_miniboone(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = _load_npy(path, "miniboone")
    return _standardise_by_train_and_validation(*_split_tail(data))


def _load_gas(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    data = _restricted_unpickle(path)
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"gas: {str(path)!r} holds a {type(data).__name__}, not a DataFrame")
    missing = [c for c in ("Meth", "Eth", "Time") if c not in data.columns]
    if missing:
        raise ValueError(f"gas: {str(path)!r} lacks the columns {missing}")
    data = data.drop(columns=["Meth", "Eth", "Time"])

    def correlated(df: pd.DataFrame) -> np.ndarray:
        return (df.corr() > 0.98).to_numpy().sum(axis=1)

    counts = correlated(data)
    while np.any(counts > 1):
        data = data.drop(columns=data.columns[np.where(counts > 1)[0][0]])
        counts = correlated(data)
    data = (data - data.mean()) / _check_scale(data.std())
    return _split_tail(data.to_numpy(dtype=np.float64))


def _load_hepmass(train_path: Path, test_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    train = pd.read_csv(train_path, index_col=False)
    test = pd.read_csv(test_path, index_col=False)
    train = train[train[train.columns[0]] == 1].drop(columns=train.columns[0])
    test = test[test[test.columns[0]] == 1].drop(columns=test.columns[0])
    test = test.drop(columns=test.columns[-1])  # the test file has one column too many
    mu, s = train.mean(), _check_scale(train.std())
    train = (train - mu) / s
    test = ((test - mu) / s).reindex(columns=train.columns)
    train_arr, test_arr = train.to_numpy(dtype=np.float64), test.to_numpy(dtype=np.float64)
    # features whose smallest value recurs more than 5 times are (nearly) discrete: drop them
    keep = [j for j, col in enumerate(train_arr.T) if np.sum(col == col.min()) <= 5]
    train_arr, test_arr = train_arr[:, keep], test_arr[:, keep]
    n_val = int(0.1 * train_arr.shape[0])
    return train_arr[:-n_val], train_arr[-n_val:], test_arr


def _load_bsds300(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "load_tabular('bsds300') reads an HDF5 file and needs the optional package h5py: "
            "pip install h5py"
        ) from None
    with h5py.File(path, "r") as f:
        missing = [k for k in ("train", "validation", "test") if k not in f]
        if missing:
            raise ValueError(f"bsds300: {str(path)!r} lacks the datasets {missing}")
        return f["train"][:], f["validation"][:], f["test"][:]


_TABULAR_LOADERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "bsds300": _load_bsds300,
    "gas": _load_gas,
    "hepmass": _load_hepmass,
    "miniboone": _load_miniboone,
    "power": _load_power,
}

# Globals a pickled DataFrame of float columns may name (pandas 0.x to 3.x, numpy 1.x/2.x),
# after the renames below; anything else is refused, so unpickling cannot run other code.
_PICKLE_ALLOWED = {
    ("builtins", "object"),
    ("builtins", "slice"),
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("pandas", "DataFrame"),
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("pandas", "StringDtype"),
    ("pandas.arrays", "StringArray"),
    ("pandas.core.arrays.string_", "StringArray"),
    ("pandas.core.arrays.string_", "StringDtype"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
    # renamed by pandas' own compatibility unpickler (pandas 1.x pickles)
    ("pandas.core.internals.blocks", "new_block"),
    ("pandas.core.indexes.numeric", "Float64Index"),
    ("pandas.core.indexes.numeric", "Int64Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"),
}
_PICKLE_RENAMES = {  # pandas < 1.0 module paths
    ("pandas.indexes.base", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.indexes.base", "Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.index", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.index", "Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.indexes.range", "RangeIndex"): ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.internals", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
}


def _restricted_unpickle(path: Path) -> Any:
    """Unpickle a pandas DataFrame, refusing every global outside :data:`_PICKLE_ALLOWED`."""
    import pickle

    from pandas.compat.pickle_compat import Unpickler

    with open(path, "rb") as f:
        try:
            return restricted_load(
                f,
                _PICKLE_ALLOWED,
                what="a pandas DataFrame of numbers",
                renames=_PICKLE_RENAMES,
                unpickler=Unpickler,
                encoding="latin1",
            )
        except pickle.UnpicklingError:
            raise
        except Exception as err:  # truncated or foreign files raise many types
            raise ValueError(
                f"gas: {str(path)!r} is not a readable pickled DataFrame: "
                f"{type(err).__name__}: {err}"
            ) from None
