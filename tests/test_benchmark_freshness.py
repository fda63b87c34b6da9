"""Results that match the code (``benchmarks/freshness.py``): every committed result file is
measured on the code of the modules it declares, or kept on purpose with a reason, and the
check itself tells a changed module from a reworded docstring."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


fresh = load_script("sitransport_bench_freshness", BENCHMARKS / "freshness.py")

# --------------------------------------------------------------------------- the mechanics


def test_code_hash_ignores_docstrings_comments_and_layout():
    a = 'def f(x):\n    """Old words."""\n    return x + 1  # a comment\n'
    b = "def f(x):\n    '''New, longer words.'''\n\n    return (x +\n            1)\n"
    c = 'def f(x):\n    """Old words."""\n    return x + 2\n'
    assert fresh.code_hash(a) == fresh.code_hash(b)
    assert fresh.code_hash(a) != fresh.code_hash(c)


def _tree(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "core.py").write_text("def f():\n    return 1\n")
    (root / "pkg" / "tool.py").write_text("X = 1\n")
    (root / "bench.py").write_text("print('bench')\n")


def _record(root: Path) -> dict:
    return {
        "environment": {"git_sha": "0123456789abcdef", "date": "2026-12-07T00:00:00"},
        "code": fresh.fingerprint(["pkg.sub", "pkg.tool"], "bench.py", root),
    }


def test_a_result_is_fresh_until_the_code_it_declares_changes(tmp_path):
    _tree(tmp_path)
    payload = _record(tmp_path)
    assert set(payload["code"]["files"]) == {
        "pkg/sub/__init__.py",
        "pkg/sub/core.py",
        "pkg/tool.py",
        "bench.py",
    }
    assert fresh.check(payload, "bench", tmp_path, kept={}).state == "fresh"
    # a docstring is not code
    (tmp_path / "pkg" / "sub" / "core.py").write_text('def f():\n    """Doc."""\n    return 1\n')
    assert fresh.check(payload, "bench", tmp_path, kept={}).state == "fresh"
    # a module outside the declared ones is not this result's business
    (tmp_path / "pkg" / "__init__.py").write_text("Y = 2\n")
    assert fresh.check(payload, "bench", tmp_path, kept={}).state == "fresh"
    # what runs changed: stale, naming the file
    (tmp_path / "pkg" / "sub" / "core.py").write_text("def f():\n    return 2\n")
    state = fresh.check(payload, "bench", tmp_path, kept={})
    assert (state.state, state.changed) == ("stale", ("pkg/sub/core.py",))
    assert not state.current
    assert "stale" in state.describe() and "pkg/sub/core.py" in state.describe()


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda root: (root / "pkg" / "sub" / "extra.py").write_text("Z = 0\n"), "(new)"),
        (lambda root: (root / "pkg" / "tool.py").unlink(), "pkg/tool.py"),
        (lambda root: (root / "bench.py").write_text("print('other')\n"), "bench.py"),
    ],
    ids=["a file added to a declared package", "a declared module removed", "the script"],
)
def test_every_kind_of_change_makes_a_result_stale(tmp_path, change, named):
    _tree(tmp_path)
    payload = _record(tmp_path)
    change(tmp_path)
    state = fresh.check(payload, "bench", tmp_path, kept={})
    assert state.state == "stale"
    assert any(named in path for path in state.changed)


def test_kept_results_and_results_without_a_record(tmp_path):
    _tree(tmp_path)
    old = {"environment": {"git_sha": "abcdef0123", "date": "2026-11-25T10:00:00"}}
    state = fresh.check(old, "bench", tmp_path, kept={})
    assert state.state == "unrecorded" and not state.current and "stale" in state.describe()
    kept = fresh.check(old, "bench", tmp_path, kept={"bench": "an 80-minute run"})
    assert kept.state == "kept" and kept.current
    assert kept.describe() == "kept (measured at abcdef0 on 2026-11-25): an 80-minute run"


def test_unknown_modules_and_empty_reasons_are_refused(tmp_path):
    _tree(tmp_path)
    with pytest.raises(ValueError, match="pkg.nothing"):
        fresh.module_files(["pkg.nothing"], tmp_path)
    path = tmp_path / "kept.json"
    path.write_text(json.dumps({"bench": " "}))
    with pytest.raises(ValueError, match="bench"):
        fresh.kept_reasons(path)


# --------------------------------------------------------------------------- the repository


def _results() -> list[Path]:
    return sorted((BENCHMARKS / "results").glob("*.json"))


def test_every_committed_result_describes_the_current_code():
    """Re-run a stale benchmark (its command is in its file), or add it to
    ``benchmarks/kept.json`` with the reason it is kept as measured."""
    stale = [f"{f.stem}: {f.describe()}" for f in fresh.report() if not f.current]
    assert not stale, "\n".join(stale)


def test_kept_results_exist_and_say_why():
    kept = fresh.kept_reasons()
    stems = {p.stem for p in _results()}
    assert set(kept) <= stems, f"kept.json names no result file: {sorted(set(kept) - stems)}"


def _declared_modules(script: Path) -> tuple[str, ...]:
    """A script's ``MODULES``, read without running it (``FIT_MODULES`` from ``_common``)."""
    names = {"FIT_MODULES": _literal(BENCHMARKS / "_common.py", "FIT_MODULES")}
    tree = ast.parse(script.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets
        ):
            out: list[str] = []
            for elt in node.value.elts:
                if isinstance(elt, ast.Starred):
                    out += names[elt.value.id]
                else:
                    out.append(ast.literal_eval(elt))
            return tuple(out)
    raise AssertionError(f"{script.name} declares no MODULES next to its results writer")


def _literal(path: Path, name: str) -> tuple[str, ...]:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError(f"{path.name} has no {name}")


def _writers() -> list[Path]:
    return [
        p
        for p in sorted(BENCHMARKS.glob("*.py"))
        if p.name != "_common.py" and "write_results(" in p.read_text("utf-8")
    ]


@pytest.mark.parametrize("script", _writers(), ids=lambda p: p.name)
def test_every_results_writer_declares_existing_modules(script):
    modules = _declared_modules(script)
    assert modules, script.name
    fresh.module_files(modules)  # raises on a name that is not a module


def test_recorded_modules_are_the_scripts_declaration():
    """A changed ``MODULES`` is a changed benchmark: its results must be re-measured."""
    mismatched = []
    for path in _results():
        payload = json.loads(path.read_text(encoding="utf-8"))
        code = payload.get("code")
        if not code:
            continue
        script = payload["environment"]["command"].split()[1]
        declared = _declared_modules(ROOT / script)
        if tuple(code["modules"]) != declared:
            mismatched.append(f"{path.stem}: recorded {code['modules']}, {script} {declared}")
    assert not mismatched, "\n".join(mismatched)
