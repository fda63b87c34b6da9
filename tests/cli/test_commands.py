"""The command line: fit from files and names, outputs written, errors reported."""

from __future__ import annotations

import json
import os
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
    assert main(["fit", "gaussian", "nosuchset", "-o", str(tmp_path)]) == 2
    assert "TARGET 'nosuchset' is neither a dataset" in capsys.readouterr().err
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


TINY = ["--steps", "2", "--n", "200", "--n-eval", "20", "--no-progress"]


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


@pytest.mark.parametrize("where", ["existing_file", "under_a_file", "proc"])
def test_unusable_out_exits_2_naming_the_flag(tmp_path, capsys, where):
    (tmp_path / "f").write_text("not a folder")
    out = {
        "existing_file": tmp_path / "f",
        "under_a_file": tmp_path / "f" / "sub",
        "proc": "/proc/sitransport-nope",
    }[where]
    if where == "proc" and not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    assert main(["fit", "gaussian", "moons", "-o", str(out), *TINY]) == 2
    _one_line_error(capsys, "argument -o/--out", str(out))


@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("missing.npy", []),  # no such file
        ("ints.npy", []),  # rejected by the checks of the samples
        ("gaussian", ["--interpolant", "nosuch"]),  # rejected by fit
    ],
)
def test_failed_run_leaves_no_output_folder(tmp_path, capsys, source, extra):
    np.save(tmp_path / "ints.npy", np.ones((500, 2), dtype=int))
    if source != "gaussian":
        source = str(tmp_path / source)
    out = tmp_path / "out" / "nested"
    assert main(["fit", source, "moons", "-o", str(out), *TINY, *extra]) == 2
    _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_csv_header_row_is_skipped_and_named(tmp_path, capsys):
    x1 = st.datasets.sample("moons", 300, seed=1)
    path = tmp_path / "with header.csv"
    np.savetxt(path, x1, delimiter=",", header="x,y", comments="")
    out = tmp_path / "out"
    argv = ["fit", "gaussian", str(path), "-o", str(out), *TINY]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"skipped the header row of {path}" in err and "'x,y'" in err
    assert json.loads((out / "report.json").read_text())["n_eval"] == 20


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1,2\n3,oops\n", "could not convert string 'oops'"),  # a bad value, not a header
        ("x,1\n1,2\n", "could not convert string 'x'"),  # half a header is data gone wrong
        ("x,y\n", "holds no numbers"),
        ("", "holds no numbers"),
    ],
)
def test_bad_csv_names_the_file(tmp_path, capsys, text, needle):
    path = tmp_path / "data.csv"
    path.write_text(text)
    assert main(["fit", "gaussian", str(path), "-o", str(tmp_path / "out"), *TINY]) == 2
    _one_line_error(capsys, f"TARGET {str(path)!r}", needle)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--n-eval", "0"),
        ("--n", "1"),
        ("--steps", "0"),
        ("--seed", "-1"),
        ("--seed", str(2**70)),
        ("--batch-size", "0"),
        ("--lr", "nan"),
        ("--lr", "-1"),
    ],
)
def test_out_of_range_flags_name_the_flag(tmp_path, capsys, flag, value):
    argv = ["fit", "gaussian", "moons", "-o", str(tmp_path / "out"), *TINY, flag, value]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    _one_line_error(capsys, f"argument {flag}:", value)
    assert not (tmp_path / "out").exists()


def test_library_failure_is_one_line_with_status_1(tmp_path, capsys, monkeypatch):
    import sitransport.cli as cli
    from sitransport.errors import TrainingDivergedError

    def diverge(*args, **kwargs):
        raise TrainingDivergedError("loss not finite at step 3\n  try a smaller lr")

    monkeypatch.setattr(cli, "fit", diverge)
    assert main(["fit", "gaussian", "moons", "-o", str(tmp_path / "out"), *TINY]) == 1
    _one_line_error(capsys, "loss not finite at step 3 try a smaller lr")
    assert not (tmp_path / "out").exists()
