"""benchmarks/bench_gpu.py, the one-command GPU check, on its CPU path (``--tiny``: tiny
U-Net, gloo ranks under torchrun), so the script cannot rot before a GPU runs it."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def test_tiny_run_on_cpu_writes_healthy_results(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "bench_gpu_tiny.json").read_text())
    assert (tmp_path / "bench_gpu_tiny.md").is_file()
    assert result["device"]["device"] == "cpu"
    configs = result["configs"]
    assert configs
    for name, report in configs.items():
        assert "error" not in report, report.get("error")
        assert report["loss_decreased"], (
            name,
            report["loss_first_fifth"],
            report["loss_last_fifth"],
        )
        assert report["peak_memory_gib"] is None  # a CPU: not measured
        assert report["images_per_s"] > 0
        compiled = report["compile"]
        assert compiled["eager_step_ms"] > 0
        assert compiled["compiled_step_ms"] is not None or compiled["compile_error"]
        sampling = report["sampling"]
        assert all(v["nfe"] > 0 for k, v in sampling.items() if isinstance(v, dict))
        assert (tmp_path / sampling["grid"]).is_file()
        bits = report["bits_per_dim"]
        assert math.isfinite(bits["bpd"]) and bits["bpd_stderr"] > 0
    ddp = result["ddp"]
    assert "error" not in ddp, ddp.get("error", "")[-3000:]
    for name, part in ddp["configs"].items():
        assert part["world_size"] == 2 and part["backend"] == "gloo"
        assert part["ranks_equal"] and part["max_abs_diff"] == 0.0, name
        assert part["scaling_efficiency"] > 0
    entropic = result["entropic"]
    assert "error" not in entropic, entropic.get("error")
    assert entropic["plan"]["pairs_device"] == entropic["plan"]["potentials_device"] == "cpu"
    assert entropic["on_device"] and entropic["plan"]["plan_s"] > 0
    fits = entropic["fits"]
    assert fits["global_entropic"]["plans"] >= 1 and fits["independent"]["plans"] == 0
    assert entropic["ratio"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_requested_without_cuda_fails_naming_the_option(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_gpu", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match="--device cuda was requested, but CUDA is not available"):
        module.main(["--device", "cuda", "--tiny"])
    with pytest.raises(SystemExit, match="--tiny"):  # full sizes need a GPU
        module.main(["--device", "cpu"])
