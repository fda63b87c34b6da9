"""The command line: fit from files and names, outputs written, errors reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sitransport as st
from sitransport._cli_files import read_file
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
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == "checkerboard"
    # the Sinkhorn diagnostic of training: reported, printed, and drawn in the figure
    sinkhorn = report["sinkhorn"]
    assert sinkhorn["steps"] == [40] and 8 <= sinkhorn["n"] <= 256 and sinkhorn["floor"] > 0
    assert 0 < sinkhorn["cost"] and sinkhorn["solver"].startswith("rk4")
    assert "Sinkhorn divergence during training" in printed
    flow = st.load(out / "flow.sit")
    assert flow.history.attrs["sinkhorn_floor"] == sinkhorn["floor"]
    from sitransport.plot import summary_figure

    held = st.datasets.sample("checkerboard", 200, seed=1)
    fig = summary_figure(flow, held, flow.sample(200, seed=0), resolution=4)
    assert fig.axes[4].get_title() == "training" and len(fig.axes) == 7  # + twin, colorbar


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
    assert f"skipped the header row of {str(path)!r}: 'x,y'" in err
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


# ------------------------------------------------------------------ the weak edges of issue 24
ROWS = np.array([[1.5, -2.0], [3.0, 4e-3], [-5.25, 6.0]])


@pytest.mark.parametrize(
    "text",
    [
        "1.5;-2\n3;4e-3\n-5.25;6\n",  # semicolons
        "1.5; -2\n3 ;4e-3\n-5.25 ; 6\n",  # semicolons and spaces
        '"1.5","-2"\n"3","4e-3"\n"-5.25","6"\n',  # quoted numbers
        '"1.5";"-2"\n"3";"4e-3"\n"-5.25";"6"\n',
        "1.5\t-2\n3\t4e-3\n-5.25\t6\n",  # tabs
        "  1.5  -2\n3 4e-3\n-5.25\t 6\n",  # spaces
        "x;y\n1.5;-2\n3;4e-3\n-5.25;6\n",  # a header, then semicolons
        '"x","y"\n"1.5","-2"\n"3","4e-3"\n"-5.25","6"\n',  # a quoted header
        "# a comment\n\nx y\n1.5 -2\n\n3 4e-3\n-5.25 6\n",  # comments and blank lines
        "\ufeff1.5,-2\n3,4e-3\n-5.25,6\n",  # a byte-order mark, no header
        "\ufeffx,y\n1.5,-2\n3,4e-3\n-5.25,6\n",  # a byte-order mark and a header
        "1.5,-2\r\n3,4e-3\r\n-5.25,6\r\n",  # Windows line ends
    ],
    ids=[
        "semicolons",
        "semicolons-spaces",
        "quoted",
        "quoted-semicolons",
        "tabs",
        "spaces",
        "header-semicolons",
        "quoted-header",
        "comments",
        "bom",
        "bom-header",
        "crlf",
    ],
)
def test_csv_forms_are_read(tmp_path, capsys, text):

    path = tmp_path / "data.csv"
    path.write_bytes(text.encode())
    np.testing.assert_array_equal(read_file(path, "TARGET"), ROWS)
    err = capsys.readouterr().err
    header = [line for line in text.lstrip("\ufeff").splitlines() if line.lstrip('"')[:1] == "x"]
    if header:
        assert f"skipped the header row of {str(path)!r}: {header[0]!r}" in err
    else:
        assert "skipped" not in err


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("1;2\n3;4\n5,6\n", ["line 3 has 1 number, line 1 has 2", "separated by ';'"]),
        ("1;2\n3;4\n5,6;7\n", ["line 3, column 1", "'5,6'", "separated by ';'"]),
        ('"1","2"\n"3",x\n', ["line 2, column 2", "'x'"]),
        ("x,y\n1,2\n\n# note\n3,oops\n", ["line 5, column 2", "'oops'"]),
        ("1,2\n3,4,5\n", ["line 2 has 3 numbers", "line 1 has 2"]),
        ("1\t2\n3\n", ["line 2 has 1 number", "line 1 has 2"]),
        ("1,5;2,5\n", ["line 1, column 1", "'1,5'", "decimal point"]),
        ('"1,2\n', ["line 1, column 1", "'\"1'"]),
    ],
    ids=[
        "mixed",
        "mixed-3",
        "quoted",
        "blank-comment",
        "columns",
        "tabs-columns",
        "decimal-comma",
        "quote",
    ],
)
def test_bad_csv_names_the_line(tmp_path, capsys, text, needles):
    path = tmp_path / "data.csv"
    path.write_text(text)
    assert main(["fit", "gaussian", str(path), "-o", str(tmp_path / "out"), *TINY]) == 2
    line = _one_line_error(capsys, f"TARGET {str(path)!r}", *needles)
    assert "skipped" not in line and "row 0" not in line


class _Reached(Exception):
    """Raised by a stub of ``fit``: the command accepted its inputs."""


@pytest.fixture
def no_fit(monkeypatch):
    import sitransport.cli as cli

    def stub(*args, **kwargs):
        raise _Reached

    monkeypatch.setattr(cli, "fit", stub)


def test_empty_out_is_refused_naming_the_flag(tmp_path, capsys, monkeypatch, no_fit):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["fit", "gaussian", "moons", "-o", "", *TINY])
    assert info.value.code == 2
    _one_line_error(capsys, "argument -o/--out", "empty path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["flow.sit", "report.json", "summary.png"])
def test_existing_outputs_are_kept_unless_overwrite(tmp_path, capsys, no_fit, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("mine")
    assert main(["fit", "gaussian", "moons", "-o", str(out), *TINY]) == 2
    _one_line_error(capsys, "argument -o/--out", repr(str(out / name)), "--overwrite")
    assert (out / name).read_text() == "mine"
    with pytest.raises(_Reached):  # accepted: the fit is reached
        main(["fit", "gaussian", "moons", "-o", str(out), *TINY, "--overwrite"])


def test_a_figure_not_written_is_not_in_the_way(tmp_path, capsys, no_fit):
    np.save(tmp_path / "three.npy", np.random.default_rng(0).standard_normal((200, 3)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.png").write_text("from a 2-D run")
    with pytest.raises(_Reached):  # 3-D data: no summary.png is written
        main(["fit", "gaussian", str(tmp_path / "three.npy"), "-o", str(out), *TINY])


def test_overwrite_is_in_the_help(capsys):
    for command in ("fit", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--overwrite" in capsys.readouterr().out


def test_a_second_run_replaces_its_outputs_with_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["fit", "gaussian", "moons", "-o", str(out), *TINY]
    assert main(argv) == 0
    first = (out / "report.json").read_text()
    assert main(argv) == 2
    _one_line_error(capsys, "--overwrite")
    assert main([*argv, "--seed", "1", "--overwrite"]) == 0
    assert (out / "report.json").read_text() != first


def test_ctrl_c_is_one_line_with_status_130(tmp_path, capsys, monkeypatch):
    import sitransport.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "fit", interrupted)
    assert main(["fit", "gaussian", "moons", "-o", str(tmp_path / "out"), *TINY]) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == ["sitransport fit: interrupted"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["a'b\n; import os #.npy", 'x").astype(int); import os #.npy'])
def test_integer_file_hint_does_not_embed_the_name_in_code(tmp_path, capsys, name):
    path = tmp_path / name
    np.save(path, np.ones((300, 2), dtype=np.int64))
    assert main(["fit", "gaussian", str(path), "-o", str(tmp_path / "out"), *TINY]) == 2
    line = _one_line_error(capsys, f"TARGET {str(path)!r}", "floating dtype", "int64")
    assert line.count(repr(str(path))) == 1  # named once, quoted
    assert "import os" not in line.replace(repr(str(path)), "")


def _labelled_files(tmp_path, n=400):
    rng = np.random.default_rng(0)
    c = rng.integers(0, 3, n)
    x1 = rng.normal(size=(n, 2)) + c[:, None] * 3.0
    np.save(tmp_path / "x1.npy", x1)
    return x1, c


@pytest.mark.parametrize("form", ["npy", "csv-int", "csv-str", "csv-features"])
def test_fit_with_a_condition_file(tmp_path, capsys, form):
    """--condition FILE: labels (ints or strings) or float features, one row per TARGET
    sample; the flow is conditional and the report evaluates it with held-out conditions."""
    x1, c = _labelled_files(tmp_path)
    names = np.array(["low", "mid", "high"])[c]
    path = tmp_path / f"c.{form[:3]}"
    if form == "npy":
        np.save(path, c)
    elif form == "csv-int":
        path.write_text("label\n" + "\n".join(map(str, c)) + "\n")
    elif form == "csv-str":
        path.write_text("\n".join(f'"{v}"' if i % 2 else v for i, v in enumerate(names)) + "\n")
    else:
        np.savetxt(path, np.c_[c, -c] + 0.5, delimiter=",")
    out = tmp_path / "out"
    argv = ["fit", "gaussian", str(tmp_path / "x1.npy"), "--condition", str(path), "-o",
            str(out), "--steps", "20", "--no-progress", "--n-eval", "100"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    flow = st.load(out / "flow.sit")
    kind = "features" if form == "csv-features" else "labels"
    assert flow.condition.kind == kind and report["condition"]["kind"] == kind
    if form == "csv-str":
        assert flow.condition.labels == ("high", "low", "mid")
    elif kind == "labels":
        assert flow.condition.labels == (0, 1, 2)
    assert report["n_eval"] == 40 and report["w2"] > 0 and np.isfinite(report["heldout_nll"])
    assert sorted(os.listdir(out)) == ["flow.sit", "report.json"]  # no figure: see the docs


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (np.zeros(5, dtype=np.int64), "--condition .* has 5 rows, TARGET .* has 400"),
        (np.zeros((400, 2, 2)), "--condition .* must hold labels \\(n,\\) or features"),
    ],
)
def test_bad_condition_files_exit_2(tmp_path, capsys, content, needle):
    _labelled_files(tmp_path)
    np.save(tmp_path / "c.npy", content)
    argv = ["fit", "gaussian", str(tmp_path / "x1.npy"), "--condition", str(tmp_path / "c.npy"),
            "-o", str(tmp_path / "out"), "--steps", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and __import__("re").search(needle, err), err
    assert not (tmp_path / "out").exists()


def test_condition_needs_a_target_file(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.zeros(100, dtype=np.int64))
    argv = ["fit", "gaussian", "moons", "--condition", str(tmp_path / "c.npy"), "-o",
            str(tmp_path / "out"), "--steps", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert "--condition needs TARGET as a .npy/.csv file" in capsys.readouterr().err


def test_sample_command_with_a_condition(tmp_path, capsys):
    """sitransport sample FLOW -n N --condition VALUE (or a file of rows) writes samples."""
    x1, c = _labelled_files(tmp_path)
    flow = st.fit("gaussian", x1, condition=c, steps=20, progress=False)
    flow.save(tmp_path / "f.sit")
    out = tmp_path / "s.npy"
    argv = ["sample", str(tmp_path / "f.sit"), "-n", "50", "--seed", "3", "-o", str(out)]
    assert main([*argv, "--condition", "2"]) == 0
    np.testing.assert_allclose(np.load(out), flow.sample(50, seed=3, condition=2))
    np.save(tmp_path / "rows.npy", c[:50])
    assert main([*argv, "--condition", str(tmp_path / "rows.npy"), "--overwrite"]) == 0
    np.testing.assert_allclose(np.load(out), flow.sample(50, seed=3, condition=c[:50]))
    assert main([*argv, "--overwrite"]) == 2
    assert "condition: this flow is conditional" in capsys.readouterr().err
    assert main([*argv, "--condition", "7", "--overwrite"]) == 2
    assert "never seen in training: [7]" in capsys.readouterr().err
    csv = tmp_path / "s.csv"
    assert main([*argv[:-1], str(csv), "--condition", "0"]) == 0
    assert np.loadtxt(csv, delimiter=",").shape == (50, 2)
    plain = st.fit("gaussian", x1, steps=5, progress=False)
    plain.save(tmp_path / "p.sit")
    assert main(["sample", str(tmp_path / "p.sit"), "-n", "4", "-o", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape == (4, 2)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--coupling", "ot"], {"coupling": "ot"}),  # "ot" picks the interpolant
        (["--coupling", "ot", "--interpolant", "trig"], {"coupling": "ot", "interpolant": "trig"}),
        ([], {"coupling": "independent"}),  # fit's default interpolant: trig
    ],
)
def test_the_interpolant_is_passed_only_when_given(tmp_path, monkeypatch, flags, expected):
    import sitransport.cli as cli

    seen = {}

    def stub(*args, **kwargs):
        seen.update(kwargs)
        raise _Reached

    monkeypatch.setattr(cli, "fit", stub)
    with pytest.raises(_Reached):
        main(["fit", "gaussian", "moons", "-o", str(tmp_path / "out"), *TINY, *flags])
    assert {k: seen[k] for k in ("coupling", "interpolant") if k in seen} == expected
