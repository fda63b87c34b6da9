"""The entropic rows of ``benchmarks/bench_ot.py`` (opt-in methods, their notes and solve
records) and ``benchmarks/_gpu_entropic.py`` (``bench_gpu``'s entropic-plan section) on tiny
inputs: the helpers, not the runs."""

from __future__ import annotations

import sys

import pytest
import torch

from tests.helpers import ROOT, load_script

BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def bench_ot():
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import _common as a top-level module
    try:
        yield load_script("sitransport_bench_ot", BENCHMARKS / "bench_ot.py")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def gpu_entropic():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield load_script("sitransport_bench_gpu_entropic", BENCHMARKS / "_gpu_entropic.py")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _row(method: str, steps_per_s: float, npe: list[float], nfe: list[float], **extra) -> dict:
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    row = {"task": "t", "method": method, "steps_per_s": steps_per_s, **extra}
    for key, draws in (("npe", npe), ("nfe", nfe), ("ratio", [1.1, 1.2])):
        row.update({key: mean(draws), f"{key}_se": 0.01, f"{key}_draws": draws})
    return row


def test_entropic_rows_are_opt_in_and_the_default_run_is_unchanged(bench_ot):
    assert set(bench_ot.ENTROPIC) <= set(bench_ot.OURS)
    assert not set(bench_ot.ENTROPIC) & set(bench_ot.DEFAULT_METHODS)
    assert bench_ot.DEFAULT_METHODS[-1] == bench_ot.REFLOW
    global_entropic = bench_ot.OURS["global_entropic+linear"].keywords(100)
    assert global_entropic["coupling"] == {"name": "global_entropic", "n": 2048}
    assert bench_ot.OURS["entropic+linear"].keywords(100)["coupling"]["name"] == "entropic"


def test_entropic_summary_reads_speed_solves_and_differences_to_global_ot(bench_ot):
    rows = [
        _row("indep+linear", 100.0, [0.5, 0.6], [30.0, 30.0]),
        _row("global_ot+linear", 40.0, [0.10, 0.12], [20.0, 22.0], ot_solve_s=9.0, ot_plans=1),
        _row("global_entropic+linear", 50.0, [0.12, 0.14], [24.0, 24.0], ot_solve_s=17, ot_plans=2),
        _row("entropic+linear", 25.0, [0.2, 0.2], [26.0, 26.0], ot_batch_ms=50.0),
    ]
    by = {(r["task"], r["method"]): r for r in rows}
    text = bench_ot.entropic_summary(by, ["t"])
    first, second = text.split("; t: ")
    assert "global_entropic+linear 50 steps/s (0.50x independent; first plan 17.0 s, 2 plans)" in (
        first
    )
    assert "minus global_ot: npe +0.02 +- " in first and "nfe +3 +- 1" in first  # draw by draw
    assert second.startswith("entropic+linear 25 steps/s (0.25x independent; 50 ms a batch)")
    del by[("t", "global_ot+linear")]
    assert "minus global_ot" not in bench_ot.entropic_summary(by, ["t"])
    assert bench_ot.entropic_summary({("t", "indep+linear"): rows[0]}, ["t"]) == ""


def test_training_record_keeps_minibatch_solve_time(bench_ot):
    class History(dict):
        attrs = {"ot_batch_solve_ms": 12.5, "ot_batches": 10}

    class Flow:
        history = History(wall_time=[0.5, 1.0])

    record = bench_ot.training_record(Flow(), 10)
    assert record == {"steps_per_s": 10.0, "ot_batch_ms": 12.5}


def test_the_potentials_of_a_plan_are_recorded_on_its_device(gpu_entropic):
    from sitransport.couplings import GlobalEntropicOT, entropic_plan

    original = entropic_plan.solve_potentials
    x0, x1 = gpu_entropic.gaussian_ends(32, "cpu", 0)
    assert x1.mean() > 0.5  # x1 = 2 x0 + 1, drawn apart from x0
    with gpu_entropic.recording_potentials([]) as seen:
        draw = GlobalEntropicOT(n=32, device="cpu").sampler(x0, x1)
        draw(8, torch.Generator().manual_seed(0))
    assert entropic_plan.solve_potentials is original  # restored
    assert len(seen) == 1 and gpu_entropic.potential_devices(seen) == ["cpu"]
    assert seen[0].f.shape == (32,)
