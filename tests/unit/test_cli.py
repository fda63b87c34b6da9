"""The command line: fit from files and names, outputs written, errors reported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import sitransport as st
from sitransport.cli import main


def test_fit_from_files(tmp_path, capsys):
    x0 = st.datasets.sample("moons", 600, seed=0)
    x1 = st.datasets.sample("8gaussians", 600, seed=1)
    np.save(tmp_path / "a.npy", x0)
    np.savetxt(tmp_path / "b.csv", x1, delimiter=",")
    out = tmp_path / "out"
    code = main(
        [
            "fit",
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.csv"),
            "-o",
            str(out),
            "--steps",
            "30",
            "--no-progress",
            "--n-eval",
            "100",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_eval"] == 60  # a tenth of the target file, held out twice
    assert report["ratio"] == pytest.approx(report["w2"] / report["noise_floor"])
    assert (out / "summary.png").stat().st_size > 10_000
    flow = st.load(out / "flow.sit")
    assert flow.push_forward(x0[:3]).shape == (3, 2)
    printed = capsys.readouterr().out
    assert "noise floor" in printed and "exact W2" in printed
    assert "NPE" in printed and report["transport"]["kinetic_energy"] > 0


def test_demo_small_run_writes_png_and_prints_w2(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "-o",
                str(out),
                "--steps",
                "40",
                "--n",
                "2000",
                "--n-eval",
                "300",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "noise floor" in printed and "held-out NLL" in printed
    assert (out / "summary.png").exists()
    assert json.loads((out / "report.json").read_text())["target"] == "checkerboard"


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit, match="neither a dataset"):
        main(["fit", "gaussian", "nosuchset", "-o", str(tmp_path)])
    np.save(tmp_path / "ints.npy", np.ones((500, 2), dtype=int))
    assert (
        main(["fit", "gaussian", str(tmp_path / "ints.npy"), "-o", str(tmp_path), "--steps", "2"])
        == 2
    )
    assert "floating dtype" in capsys.readouterr().err


def test_module_entry_point():
    res = subprocess.run(
        [sys.executable, "-m", "sitransport", "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0 and "demo" in res.stdout
