"""The contract every registered coupling keeps: ``pair`` returns rows of its inputs with the
shape, dtype and device kept; its spec rebuilds it (``get_coupling``, ``CouplingSpec``); its
pair source draws ``(n, d)`` batches; a fit records it and a saved flow keeps it.

Parametrised over :func:`~sitransport.couplings.coupling_names`: a coupling registered
without an entry in :data:`ARGUMENTS` fails every test of the suite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.config import CouplingSpec
from sitransport.couplings import Coupling, PairSource, coupling_names, get_coupling
from sitransport.couplings.registry import CHOSEN_BY_FIT
from tests.helpers import TINY

#: Constructor arguments of each registered coupling (small and in place, for speed), one
#: or more variants per name.
ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "entropic": [{"blur": 0.3}, {"blur": 0.3, "reach": 2.0, "backend": "chunked"}],
    "exact_ot": [{"processes": 0}, {"processes": 0, "block": 4}],  # one block, then three
    "global_entropic": [{"n": 16, "reuse": 1, "blur": 0.3, "background": False}],
    "global_ot": [{"n": 16, "reuse": 1, "processes": 0}],
    "independent": [{}],
    "sinkhorn": [{"reg": 0.1}, {"reg": 0.1, "replace": True}],
}

CASES = [
    pytest.param(name, kwargs, id=f"{name}-{i}")
    for name in coupling_names()
    if name not in CHOSEN_BY_FIT  # "ot": fit's choice of one of the others, no object
    for i, kwargs in enumerate(ARGUMENTS.get(name, [None]))
]

#: Couplings that draw each ``x1`` partner (which may repeat); every other coupling pairs
#: batches of equal size by a permutation of ``x1``: each ``x1`` row exactly once.
DRAWS_X1 = {"entropic", "global_entropic", "sinkhorn"}

#: Sample shapes of the batches paired: vectors and images.
SHAPES = [(3,), (1, 2, 2)]


def build(name: str, kwargs: dict[str, Any] | None) -> Coupling:
    if kwargs is None:
        pytest.fail(f"coupling {name!r} has no entry in ARGUMENTS of this suite")
    return get_coupling({"name": name, **kwargs})


def permutes_x1(coupling: Coupling, x0: torch.Tensor, x1: torch.Tensor) -> bool:
    return coupling.spec()["name"] not in DRAWS_X1 and x0.shape[0] == x1.shape[0]


def resamples_x0(coupling: Coupling) -> bool:
    """Whether the coupling draws the ``x0`` rows too (Sinkhorn with ``replace=True``),
    instead of keeping each ``x0`` once."""
    return bool(getattr(coupling, "replace", False)) or getattr(coupling, "reach", None) is not None


def matches(out: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``m[i, j]``: row ``i`` of ``out`` equals row ``j`` of ``rows`` (all entries)."""
    return (out[:, None] == rows[None]).flatten(2).all(-1)


def batch(n: int, shape: tuple[int, ...], dtype: torch.dtype, device, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=dtype).to(device)  # distinct rows


def assert_rows_of_inputs(coupling, x0, x1, a, b) -> None:
    n0 = x0.shape[0]
    assert a.shape == x0.shape and b.shape == (n0, *x1.shape[1:])
    for out, inp in ((a, x0), (b, x1)):
        assert out.dtype == inp.dtype and out.device == inp.device
    m1 = matches(b, x1)
    assert bool(m1.any(1).all()), "an x1 row is not a row of the input x1"
    if permutes_x1(coupling, x0, x1):
        assert bool((m1.sum(0) == 1).all()), "an x1 row is dropped or duplicated"
    m0 = matches(a, x0)
    assert bool(m0.any(1).all()), "an x0 row is not a row of the input x0"
    if not resamples_x0(coupling):  # every x0 exactly once: unchanged or permuted
        assert bool((m0.sum(0) == 1).all()), "an x0 row is dropped or duplicated"


def test_every_registered_coupling_has_arguments():
    assert sorted([*ARGUMENTS, *CHOSEN_BY_FIT]) == coupling_names()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=["vectors", "images"])
@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_pair_returns_rows_of_the_inputs(name, kwargs, shape, dtype, device):
    coupling = build(name, kwargs)
    x0, x1 = batch(12, shape, dtype, device, 0), batch(12, shape, dtype, device, 1)
    a, b = coupling.pair(x0, x1, torch.Generator().manual_seed(0))
    assert_rows_of_inputs(coupling, x0, x1, a, b)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_pair_of_unequal_batches_has_n0_rows(name, kwargs, device):
    """A coupling that pairs gives ``n0`` rows; ``independent`` returns the batches as given."""
    coupling = build(name, kwargs)
    x0, x1 = batch(6, (3,), torch.float64, device, 0), batch(9, (3,), torch.float64, device, 1)
    a, b = coupling.pair(x0, x1, torch.Generator().manual_seed(0))
    if name == "independent":
        assert a is x0 and b is x1
    else:
        assert_rows_of_inputs(coupling, x0, x1, a, b)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_spec_round_trip(name, kwargs):
    coupling = build(name, kwargs)
    spec = coupling.spec()
    assert spec["name"] == name
    again = get_coupling(spec)
    assert type(again) is type(coupling) and again == coupling and again.spec() == spec
    described = CouplingSpec.of(coupling)
    assert described.custom is None  # a built-in is recorded as data, not as the object
    assert described.spec() == spec and described.build() == coupling
    assert CouplingSpec.from_spec(spec) == described


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_source_draws_batches_of_pairs(name, kwargs):
    coupling = build(name, kwargs)

    def draw(n, g):
        return torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randn(
            n, 2, generator=g, dtype=torch.float64
        )

    source = coupling.source(draw, seed=0)
    assert isinstance(source, PairSource) and source.coupling is coupling
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        x0, x1 = source.draw(8, g)
        assert x0.shape == (8, 2) and x1.shape == (8, 2)
        a, b = source.batch_coupling.pair(x0, x1, g)
        assert a.shape == (8, 2) and b.shape == (8, 2)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_fit_records_the_coupling_and_load_keeps_it(name, kwargs, tmp_path):
    coupling = build(name, kwargs)
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) + 2.0
    flow = st.fit(x0, x1, coupling=coupling.spec(), seed=0, **dict(TINY, batch_size=16))
    assert flow.config.coupling == CouplingSpec.of(coupling)
    assert flow.config.coupling.build() == coupling
    flow.save(tmp_path / "f.sit")
    assert st.load(tmp_path / "f.sit").config.coupling == flow.config.coupling
