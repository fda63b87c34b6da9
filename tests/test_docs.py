"""The documentation's sources: gallery conventions, API coverage, benchmark results.

The docs build itself (``sphinx-build -W``, executing the gallery) runs in CI (``.ci/run``);
these checks are the fast, static part of it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.test_api import MODULES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RESULTS = ROOT / "benchmarks" / "results"
# examples/images/ holds GPU-scale scripts that the gallery does not execute
GALLERY_SCRIPTS = sorted(p for p in EXAMPLES.glob("*/plot_*.py") if p.parent.name != "images")


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_gallery_is_not_empty():
    assert len(GALLERY_SCRIPTS) >= 8, [p.name for p in GALLERY_SCRIPTS]


def test_every_topic_has_a_gallery_header():
    """sphinx-gallery silently skips a folder without a header: its examples would vanish."""
    assert (EXAMPLES / "GALLERY_HEADER.rst").is_file()
    for topic in {p.parent for p in GALLERY_SCRIPTS}:
        assert (topic / "GALLERY_HEADER.rst").is_file(), f"{topic} has no GALLERY_HEADER.rst"


@pytest.mark.parametrize("path", GALLERY_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_gallery_script_conventions(path):
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert re.fullmatch(r"plot_[a-z0-9]+(_[a-z0-9]+)+\.py", path.name), "plot_<verb>_<object>.py"
    doc = ast.get_docstring(tree, clean=False) or ""
    lines = doc.strip("\n").splitlines()
    assert len(lines) >= 3 and set(lines[1]) == {"="} and len(lines[1]) == len(lines[0]), (
        "the docstring starts with a reST title underlined with '='"
    )
    assert "# %%" in source, "cells are separated by '# %%'"
    assert "torch.set_num_threads(1)" in source
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    fits = [c for c in calls if getattr(c.func, "attr", None) in ("fit", "TransportFlow")]
    assert fits, "every example builds a flow"
    seed_line = min(
        (n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "SEED"),
        default=None,
    )
    assert seed_line is not None and seed_line < min(c.lineno for c in fits), "seed first"
    last_cell = source.rsplit("# %%", 1)[-1]
    checks = source.rsplit("Numeric check", 1)[-1]
    assert "print(" in checks and "assert" in checks, "ends with a printed numeric check"
    assert last_cell.strip(), "no empty trailing cell"


def test_api_reference_covers_every_public_module():
    conf = _load(ROOT / "docs" / "conf.py", "sitransport_docs_conf")
    documented = set(conf.public_modules())
    assert set(MODULES) <= documented, sorted(set(MODULES) - documented)
    homes = conf.api_homes()
    assert homes["sitransport.fitting.fit"] == "sitransport.fit"  # one page per object
    assert homes["sitransport.flow.TransportFlow"] == "sitransport.TransportFlow"


def test_every_benchmark_result_states_its_command():
    pytest.importorskip("sphinx")  # in the test extra; the docs extension imports it
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    ext = _load(ROOT / "docs" / "_ext" / "sitransport_docs.py", "sitransport_docs_ext")
    files = sorted(RESULTS.glob("*.md"))
    assert files
    document = new_document("benchmarks", get_default_settings(Parser))
    for md in files:
        section = ext.render_result(md, document)
        commands = [
            b.astext()
            for b in section.findall(nodes.literal_block)
            if "benchmark-command" in b["classes"]
        ]
        assert len(commands) == 1, f"{md.name}: no 'Command:' line"
        assert re.match(r"python3? \S*bench_\w+\.py", commands[0]), (md.name, commands[0])
        tables = list(section.findall(nodes.table))
        assert tables or list(section.findall(nodes.literal_block)), f"{md.name}: no results"
