"""Hostile-file fuzzing: valid payloads mutated (types, shapes, strides, shared and circular
references, numbers, versions), written in every format a file may have (the current one and
the torch records of version 1, checked or bare, each with a correct checksum), then loaded.

Every load either returns a flow whose methods give finite results (or refuse with
:class:`~sitransport.errors.NonFiniteOutputError`, naming the method), or raises
:class:`~sitransport.errors.CorruptFileError` / :class:`ValueError` naming the file; within
2 s of CPU time, and with peak memory bounded by the file's size plus the model it declares."""

from __future__ import annotations

import copy
import math
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as hs

import sitransport as st
from sitransport._io import atomic_save
from sitransport._safefile import write_tree
from sitransport.errors import NonFiniteOutputError
from sitransport.interpolants import Fourier
from sitransport.nn import MLPVelocity
from tests.helpers import TINY
from tests.io.test_hostile_files import MB, needs_peak_rss, peak_growth

#: The formats a crafted file may come in.
WRITERS: dict[str, Callable[[Any, Path], None]] = {
    "current": lambda payload, path: write_tree(payload, path),
    "checked_v1": lambda payload, path: atomic_save(payload, path),
    "bare_v1": lambda payload, path: torch.save(payload, path),
}


def _payloads() -> list[dict]:
    moons = st.datasets.sample("moons", 200, seed=0)
    fitted = st.fit("gaussian", moons, **TINY, seed=0)
    fourier = st.TransportFlow(
        MLPVelocity(2, width=8, depth=1), Fourier("trig", K=2), base=moons, target=moons
    )
    return [fitted.to_payload(), fourier.to_payload()]


PAYLOADS = _payloads()


def leaf_paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths (keys and indices) to every value of ``tree``, containers included."""
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += leaf_paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += leaf_paths(v, (*prefix, i))
    return out


def get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def put(tree: Any, path: tuple, value: Any) -> None:
    get(tree, path[:-1])[path[-1]] = value


# --------------------------------------------------------------------------- mutations
NUMBERS = [math.nan, math.inf, -math.inf, 1e300, -1e300, 1e-300, 0.0, -1.0, 2**62, -(2**40), True]
OTHERS = [None, "x", "", [], {}, [1, 2], {"a": 1}, b"bytes", (1, 2)]


def bad_tensors(t: torch.Tensor) -> list[torch.Tensor]:
    """Tensors shaped, typed or laid out unlike ``t`` (those torch can make from it)."""
    flat = t.reshape(-1)
    n = max(flat.numel(), 1)
    makers = [
        lambda: t.to(torch.complex64),
        lambda: t.to(torch.int64),
        lambda: t.to(torch.bool),
        lambda: t.half(),
        lambda: t.reshape(-1),
        lambda: t.unsqueeze(0),
        lambda: torch.zeros(0, dtype=t.dtype),
        lambda: torch.full_like(t, math.nan),
        lambda: torch.full_like(t, 1e38),
        lambda: torch.zeros(1, dtype=t.dtype).expand(n * 1000),  # stride 0
        lambda: torch.zeros(n, dtype=t.dtype).as_strided((n, 10_000), (1, 0)),
        lambda: flat.repeat(2)[::2],  # non-contiguous, honest
        lambda: torch.zeros(3, 5, dtype=t.dtype).t(),
    ]
    out = []
    for make in makers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # complex to real casts
            try:
                out.append(make())
            except RuntimeError:  # e.g. NaN in an integer tensor
                continue
    return out


@hs.composite
def mutated(draw: hs.DrawFn) -> dict:
    payload = copy.deepcopy(draw(hs.sampled_from(PAYLOADS)))
    paths = leaf_paths(payload)  # of the valid payload: a mutation may make it infinite
    for _ in range(draw(hs.integers(1, 3))):
        path = draw(hs.sampled_from(paths))
        try:
            old = get(payload, path)
        except (KeyError, IndexError, TypeError):  # an earlier mutation replaced its parent
            continue
        kind = draw(hs.sampled_from(["number", "other", "tensor", "shared", "loop", "version"]))
        if kind == "tensor" and isinstance(old, torch.Tensor):
            new = draw(hs.sampled_from(bad_tensors(old)))
        elif kind == "shared":
            new = [old, old]
            for _ in range(draw(hs.integers(1, 30))):
                new = [new, new]
        elif kind == "loop":
            new = [old]
            new.append(new)
        elif kind == "version":
            path, new = ("version",), draw(hs.sampled_from([0, 1, 3, True, "2", 2.0, None]))
        elif kind == "other":
            new = draw(hs.sampled_from(OTHERS))
        else:
            new = draw(hs.sampled_from(NUMBERS))
        put(payload, path, new)
    return payload


#: What the declared models (a few kB of weights and samples) may take, with the
#: allocator's noise: far below the hundreds of MB an amplifying file would take.
MODEL_BYTES = 48 * MB


def check_loaded(flow: Any) -> None:
    """A loaded flow's methods give finite results or refuse naming themselves."""
    x = np.zeros((3, *flow.shape))
    for call in (
        lambda: flow.push_forward(x),
        lambda: flow.sample(3, seed=0),
        lambda: flow.velocity(x, 0.5),
    ):
        try:
            out = call()
        except NonFiniteOutputError as err:
            assert "non-finite" in str(err)
            continue
        except (ValueError, TypeError) as err:  # e.g. a base density the file cannot hold
            assert "base" in str(err) or "rho0" in str(err), str(err)
            continue
        assert np.isfinite(np.asarray(out)).all()


def load_hostile(fmt: str, payload: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hostile.sit"
        try:
            WRITERS[fmt](payload, path)
        except (ValueError, RuntimeError, pickle.PicklingError):
            event(f"{fmt}: the writer refuses it")
            return  # nobody can craft this one in this format
        size = path.stat().st_size
        start = time.process_time()
        outcome: list[Any] = []

        def load() -> None:
            try:
                outcome.append(_load(path))
            except BaseException as err:  # re-raised below, once memory is measured
                outcome.append(err)

        grown = peak_growth(load)
        assert time.process_time() - start < 2.0, "a load took over 2 s of CPU time"
        assert grown <= 3 * size + MODEL_BYTES, f"peak RSS +{grown >> 20} MB"
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        event(f"{fmt}: " + ("refused" if outcome[0] is None else "loaded"))
        if outcome[0] is not None:
            check_loaded(outcome[0])


def _load(path: Path) -> Any:
    try:
        return st.load(path)
    except ValueError as err:  # CorruptFileError is a ValueError
        assert str(path) in str(err), f"the error does not name the file: {err}"
        return None


@needs_peak_rss
@pytest.mark.parametrize("fmt", sorted(WRITERS))
@settings(max_examples=60)
@given(payload=mutated())
def test_a_hostile_file_loads_safely_or_is_refused_naming_it(fmt, payload):
    load_hostile(fmt, payload)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_the_unmutated_payloads_load_in_every_format(fmt):
    for payload in PAYLOADS:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "good.sit"
            WRITERS[fmt](copy.deepcopy(payload), path)
            check_loaded(st.load(path))
