"""The benchmarks page (docs/benchmarks.rst, the ``benchmark-results`` directive of
docs/_ext/sitransport_docs.py): summary rows computed from the result files, commands and
settings rendered as copyable literal code, the CI-sized runs collapsed.

The page test builds only docs/benchmarks.rst with the docs' extension and theme, in a
temporary source folder next to the real results (a few seconds, no gallery, no API pages).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
bs4 = pytest.importorskip("bs4")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
# characters that Sphinx's smart quotes make of -- ... ' " (not copyable into a shell)
SMART = re.compile("[\u2013\u2014\u2026\u2018\u2019\u201c\u201d]")


def _ext():
    spec = importlib.util.spec_from_file_location(
        "sitransport_docs_ext", DOCS / "_ext" / "sitransport_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write_result(folder: Path, name: str, table: str, notes: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(
        f"# {name}\n\nCommand: `python benchmarks/{name}.py --flag 'a b'`  \n"
        "git 0123456789ab, torch 2.0, POT 0.9, 2 CPUs, 1 torch thread(s), 2026-01-01T00:00:00\n\n"
        f"{table}\n\n{notes}\n"
    )


TABLE = "| task | ratio | train_s |\n|---|---|---|\n| a | 1.1 | 50 |\n| b | 1.3 | 60 |"


def test_summary_rows_are_computed_from_the_result_files(tmp_path):
    ext = _ext()
    _write_result(
        tmp_path,
        "bench_peers",
        TABLE,
        "Targets (W2 within 2 standard errors):\n\n- a: W2 ...: met\n- b: W2 ...: NOT met",
    )
    _write_result(tmp_path, "bench_2d", TABLE, "Target: ratio <= 1.2 in under 120 s of training.")
    _write_result(
        tmp_path, "bench_ot_nfe", TABLE, "Target: NFE = 4 within 1.2x: met by all 3 rows."
    )
    _write_result(tmp_path, "bench_ot_map", TABLE, "l2_uvp in % of the target's variance.")
    results = [ext.parse_result(p) for p in sorted(tmp_path.glob("*.md"))]
    rows = {r["key"]: r for f, m in ext._families(results) for r in [ext.summary_row(f, m)]}
    assert rows["bench_peers"]["target"] == "W2 within 2 standard errors"
    assert (rows["bench_peers"]["verdict"].met, rows["bench_peers"]["verdict"].missed) == (1, 1)
    # the stated column bound, checked row by row: b's ratio 1.3 misses 1.2
    assert rows["bench_2d"]["target"].startswith("ratio <= 1.2")
    assert (rows["bench_2d"]["verdict"].met, rows["bench_2d"]["verdict"].missed) == (1, 1)
    assert (rows["bench_ot_nfe"]["verdict"].met, rows["bench_ot_nfe"]["verdict"].missed) == (3, 0)
    assert not rows["bench_ot_map"]["verdict"].judged and rows["bench_ot_map"]["target"] == ""
    # a result that changes changes the row: no verdict is typed into the page
    _write_result(tmp_path, "bench_2d", TABLE.replace("1.3", "1.0"), "Target: ratio <= 1.2.")
    again = ext.summary_row(ext.family_of("bench_2d"), [ext.parse_result(tmp_path / "bench_2d.md")])
    assert (again["verdict"].met, again["verdict"].missed) == (2, 0)


def test_every_committed_benchmark_has_a_summary_row():
    ext = _ext()
    results = [ext.parse_result(p) for p in sorted(RESULTS.glob("*.md")) if "_quick" not in p.name]
    families = {f.key for f, _ in ext._families(results)}
    assert families == {ext.family_of(r.stem).key for r in results}  # no result file unknown
    peers = ext.summary_row(
        ext.family_of("bench_peers"), [ext.parse_result(RESULTS / "bench_peers.md")]
    )
    assert "2 standard errors" in peers["target"]  # the peer criterion, from the file itself
    assert peers["verdict"].judged


def test_wide_tables_are_split_by_part_and_column_group():
    from docutils import nodes

    ext = _ext()
    lines = (RESULTS / "bench_likelihood.md").read_text().splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    out = ext.render_table(table[:2] + table[2:])
    tables = [n for n in out if isinstance(n, nodes.table)]
    parts = [n.astext() for n in out if isinstance(n, nodes.rubric)]
    assert parts == ["Part: known density", "Part: cost", "Part: real data"]
    assert len(tables) > len(parts)  # the cost part is wider than the page: two column groups
    for t in tables:
        header = [e.astext() for e in next(t.findall(nodes.thead)).findall(nodes.entry)]
        assert len(header) <= ext.MAX_COLUMNS and "data" in header and "method" in header


@pytest.fixture(scope="module")
def benchmarks_page(tmp_path_factory) -> bs4.BeautifulSoup:
    """docs/benchmarks.rst built alone (docs' extension and theme, the real results)."""
    from sphinx.cmd.build import build_main

    src = tmp_path_factory.mktemp("src")
    docs = src / "docs"
    docs.mkdir()
    shutil.copy(DOCS / "benchmarks.rst", docs / "index.rst")
    (src / "benchmarks").symlink_to(ROOT / "benchmarks")  # the page's ../benchmarks/results
    (docs / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        "extensions = ['sphinx.ext.mathjax', 'sitransport_docs']\n"
        "html_theme = 'pydata_sphinx_theme'\n"
        "nitpicky = False\n"
        "suppress_warnings = ['ref.python']\n"
    )
    out = src / "html"
    # -W: the page builds without warnings (its API links are left unresolved here: -n off)
    code = build_main(["-q", "-b", "html", str(docs), str(out)])
    assert code == 0
    return bs4.BeautifulSoup((out / "index.html").read_text(encoding="utf-8"), "html.parser")


def test_commands_and_settings_are_copyable_literal_code(benchmarks_page):
    codes = benchmarks_page.select("pre, code")
    commands = [c.get_text() for c in benchmarks_page.select("div.benchmark-command pre")]
    assert len(commands) == len(list(RESULTS.glob("*.md")))  # one command per result file
    assert all(re.match(r"python3? \S*bench_\w+\.py", c) for c in commands), commands
    texts = [c.get_text() for c in codes]
    assert any("--nproc_per_node=N" in t for t in texts)  # the GPU commands, as code
    assert any(t.startswith("{'space_frequencies'") for t in texts)  # settings, as code
    bad = [t for t in texts if SMART.search(t)]
    assert not bad, bad[:3]
    # nor anywhere in the text copied from the result files (tables, notes, lists)
    copied = (
        "section[id^=result-bench] p, section[id^=result-bench] td, section[id^=result-bench] li"
    )
    for node in benchmarks_page.select(copied):
        assert not SMART.search(node.get_text()), node.get_text()[:200]


def test_summary_comes_first_and_links_every_section(benchmarks_page):
    sections = benchmarks_page.select("section[id^=result-]")
    assert sections[0]["id"] == "result-summary"
    summary = sections[0].select_one("table.benchmark-summary")
    links = [a["href"] for a in summary.select("a.reference")]
    assert links[0] == "#result-bench-peers"  # the peer comparison first
    for href in links:
        assert benchmarks_page.select_one(f"section{href}"), href
    assert summary.select(".bm-met"), "verdicts are shown"
    assert sections[0].select_one("img[src$='summary_w2_ratio.png']")


def test_quick_runs_are_collapsed_at_the_end(benchmarks_page):
    box = benchmarks_page.select_one("details.benchmark-quick")
    assert box is not None and not box.has_attr("open")
    quick = [s["id"] for s in box.select("section[id^=result-]")]
    assert quick and all(q.endswith("-quick") for q in quick)
    outside = [
        s["id"]
        for s in benchmarks_page.select("section[id$=-quick]")
        if not s.find_parent("details")
    ]
    assert not outside
    # nothing but the leftover figures after the collapsed block
    after = box.find_parent("section").find_next_siblings("section")
    assert all(s["id"] == "result-other-figures" for s in after)


def test_ot_map_figure_is_near_the_top_of_its_section(benchmarks_page):
    section = benchmarks_page.select_one("section#result-bench-ot-map")
    first_table = section.select_one("table")
    figure = section.select_one("img[src$='bench_ot_map.png']")
    assert figure is not None
    assert figure.find_next("table") is first_table  # the figure before the table


def test_page_is_full_width(benchmarks_page):
    """No on-page table of contents beside the page (its metadata), no left sidebar (conf)."""
    assert benchmarks_page.select_one("div.bd-sidebar-secondary") is None
    conf = (DOCS / "conf.py").read_text()
    assert re.search(r"html_sidebars = \{[^}]*\"benchmarks\": \[\]", conf)


def test_a_stale_result_reads_stale_and_every_result_shows_its_age():
    """The summary cell: "stale" instead of the verdict when a main file no longer describes
    the code; otherwise the verdict with the commit and date it was measured on."""
    ext = _ext()
    fresh = ext._freshness_module()
    met = ext.Verdict(met=2)
    current = fresh.Freshness("bench_x", "fresh", "0123456789ab", "2026-12-07T01:00:00")
    stale = fresh.Freshness("bench_x", "stale", "abcdef012345", "2026-11-25T01:00:00", ("a.py",))
    cell = nodes_text(ext._verdict_cell(met, "ratio <= 1.2", [current]))
    assert cell.startswith("met (2 of 2)") and "0123456 2026-12-07" in cell
    cell = nodes_text(ext._verdict_cell(met, "ratio <= 1.2", [current, stale]))
    assert cell.startswith("stale") and "met" not in cell.split("\N{MIDDLE DOT}")[0]
    kept = fresh.Freshness("bench_x", "kept", "abcdef012345", "2026-11-25T01:00:00", reason="r")
    assert "(kept)" in nodes_text(ext._verdict_cell(met, "ratio <= 1.2", [kept]))


def nodes_text(nodes_: list) -> str:
    return "".join(n.astext() for n in nodes_)


def test_result_sections_show_their_freshness(benchmarks_page):
    sources = benchmarks_page.select("p.benchmark-source")
    assert sources
    for p in sources:
        assert p.select_one(".bm-fresh, .bm-kept, .bm-stale"), p.get_text()
