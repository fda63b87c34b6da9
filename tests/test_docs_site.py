"""The built documentation as a reader sees it: offline math, API pages, navigation, gallery.

One module-scoped build of the whole site with ``-D plot_gallery=0`` (the gallery's pages
without executing its scripts; about 25 s on two cores), from a copy of the sources so the
checkout's own ``docs/`` is left alone. The class examples are run apart from it, each in a
namespace of its own.
"""

from __future__ import annotations

import doctest
import html
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_api import _public_callables

ROOT = Path(__file__).resolve().parents[1]
# what the docs read besides docs/ itself (gallery scripts, benchmark results, README)
SOURCES = ("docs", "examples", "benchmarks", "README.md", "CHANGELOG.md", "CONTRIBUTING.md")
GENERATED = ("_build", "api", "auto_examples", "sg_execution_times.rst", "__pycache__")
GUIDE_PAGES = (
    "concepts",
    "settings",
    "optimal_transport",
    "conditional",
    "single_cell",
    "failure_modes",
    "architecture",
)


def _needs_docs_tools() -> None:
    for module in ("sphinx", "sphinx_gallery", "pydata_sphinx_theme", "sphinx-mathjax-offline"):
        pytest.importorskip(module, reason="the docs extra: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The HTML output of ``sphinx-build -W -b html -D plot_gallery=0``."""
    _needs_docs_tools()
    tmp = tmp_path_factory.mktemp("docs")
    src = tmp / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(*GENERATED))
        elif path.is_file():
            shutil.copy2(path, src / name)
    out = tmp / "html"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    cmd = [sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", "-D", "plot_gallery=0"]
    run = subprocess.run(
        [*cmd, str(src / "docs"), str(out)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


# ------------------------------------------------------------------------------- offline
def test_no_page_loads_anything_from_the_internet(site):
    """Scripts, stylesheets, images and frames come from the site itself (links may leave)."""
    pattern = re.compile(
        r"<(script|img|iframe|link)\b[^>]*?\b(src|href)=\"((?:https?:)?//[^\"]+)\"", re.I
    )
    found = []
    for page in _pages(site):
        for tag, _, url in pattern.findall(page.read_text(encoding="utf-8")):
            if tag.lower() == "link" and "stylesheet" not in url and "css" not in url:
                continue  # <link rel="canonical"> and the like are not loaded
            found.append(f"{page.relative_to(site)}: <{tag}> {urlsplit(url).netloc}")
    assert not found, found[:10]


def test_math_is_typeset_by_a_local_mathjax(site):
    page = (site / "guide" / "concepts.html").read_text(encoding="utf-8")
    assert r"\(\rho_0\)" in page  # inline math, left to MathJax in the browser
    scripts = re.findall(r"<script[^>]*src=\"([^\"]*mathjax[^\"]*)\"", page)
    assert scripts, "no MathJax script on a page with math"
    for src in scripts:
        local = (site / "guide" / src.split("?")[0]).resolve()
        assert local.is_file() and site in local.parents, src


# ------------------------------------------------------------------------------ API pages
def _objects(site: Path):
    """``(page, id, html)`` of each documented object: its description up to the next one."""
    for page in sorted((site / "api" / "generated").glob("*.html")):
        parts = re.split(r"<dt class=\"sig sig-object py\" id=\"([^\"]+)\">", page.read_text())
        for k in range(1, len(parts), 2):
            yield page.name, parts[k], parts[k + 1]


def test_each_object_states_its_return_type_once(site):
    twice = [obj for _, obj, body in _objects(site) if body.count(">Return type<") > 1]
    assert not twice, twice


def test_fit_has_one_return_type_and_notes_below_raises(site):
    body = next(b for _, obj, b in _objects(site) if obj == "sitransport.fit")
    text = _text(body)
    assert body.count(">Return type<") == 1
    raises, notes = body.index(">Raises<"), body.index(">Notes<")
    assert raises < notes < body.index("Training that diverges stops")
    assert text.index("Returns:") < text.index("Raises:")


def test_type_fields_name_types(site):
    """A ``Type`` field holds a type (``Dataset | None``), not the first words of a
    description that napoleon took for one (``Training record``)."""
    one = r"[A-Za-z_][\w.]*(\[[\w., \[\]|]*\])?"
    is_type = re.compile(rf"{one}(\s*(\||or)\s*{one})*")
    field = re.compile(r">Type<.*?</dt>\s*<dd[^>]*>(.*?)</dd>", re.S)
    bad = []
    for _, obj, body in _objects(site):
        for value in field.findall(body):
            if not is_type.fullmatch(_text(value).strip()):
                bad.append((obj, _text(value).strip()))
    assert not bad, bad
    history = next(b for _, obj, b in _objects(site) if obj.endswith("TransportFlow.history"))
    assert "Dataset" in _text(field.search(history)[1]) and "training record" in _text(history)


def test_long_signatures_put_one_parameter_per_line(site):
    body = next(b for _, obj, b in _objects(site) if obj == "sitransport.fit")
    signature = body.split("</dt>", 1)[0]
    params = re.findall(r"<dd><em class=\"sig-param\">", signature)
    assert len(params) >= len(
        inspect.signature(importlib.import_module("sitransport").fit).parameters
    )


def test_viewcode_back_links_reach_an_anchor(site):
    """Every "[docs]" link of a highlighted source page lands on an existing anchor."""
    anchors: dict[Path, set[str]] = {}
    links = 0
    broken = []
    for page in (site / "_modules").rglob("*.html"):
        for href in re.findall(r"<a class=\"viewcode-back\" href=\"([^\"]+)\"", page.read_text()):
            links += 1
            target, _, anchor = html.unescape(href).partition("#")
            path = (page.parent / target).resolve()
            if path not in anchors:
                text = path.read_text() if path.is_file() else ""
                anchors[path] = set(re.findall(r"\bid=\"([^\"]+)\"", text))
            if anchor not in anchors[path]:
                broken.append(f"{page.relative_to(site)} -> {href}")
    assert links > 100, links
    assert not broken, broken[:10]


# ----------------------------------------------------------------------------- navigation
def test_navbar_has_one_entry_per_part(site):
    page = (site / "index.html").read_text(encoding="utf-8")
    navbar = page.split('class="bd-navbar-elements', 1)[1].split("</ul>", 1)[0]
    entries = [
        _text(a).strip() for a in re.findall(r"<a class=\"nav-link[^>]*>(.*?)</a>", navbar, re.S)
    ]
    assert entries == ["User guide", "Gallery", "API reference", "Benchmarks"]


@pytest.mark.parametrize("name", GUIDE_PAGES)
def test_guide_pages_list_the_guide_in_their_sidebar(site, name):
    page = (site / "guide" / f"{name}.html").read_text(encoding="utf-8")
    sidebar = page.split('class="bd-docs-nav', 1)[1].split("</nav>", 1)[0]
    for other in GUIDE_PAGES:
        assert f'href="{other}.html"' in sidebar or "current" in sidebar and other == name, other


# -------------------------------------------------------------------------------- gallery
def test_gallery_opens_with_density_to_density_and_ends_with_gpu_images(site):
    page = (site / "auto_examples" / "index.html").read_text(encoding="utf-8")
    titles = [_text(t).strip() for t in re.findall(r"<h2>(.*?)<a class=\"headerlink", page)]
    assert titles[0] == "Density to density", titles
    assert titles[-1].startswith("Image flows on GPUs"), titles


def test_gpu_training_script_is_shown_with_its_outputs_not_run(site):
    page = (site / "auto_examples" / "images" / "train_images.html").read_text(encoding="utf-8")
    text = _text(page)
    for expected in ("torchrun --nproc_per_node=N", "flow.sit", "samples.png", "report.json"):
        assert expected in text, expected
    assert "held-out bits/dim" in text and "def main()" in text
    assert "--config cifar10 \\\n" in text  # commands keep their line continuations
    assert "sphx-glr-script-out" not in page  # no captured output: never executed


# ----------------------------------------------------------------------- class examples
# every public class once, under its shortest public name
CLASSES = [(name, obj) for name, obj in _public_callables() if inspect.isclass(obj)]


@pytest.mark.parametrize("home,cls", CLASSES, ids=[home for home, _ in CLASSES])
def test_class_example_runs_in_a_fresh_namespace(home, cls):
    """A class's example imports what it uses: copied alone into a session, it runs
    (the module doctests run in the module's globals and would not notice)."""
    test = doctest.DocTestParser().get_doctest(cls.__doc__, {}, home, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)[-2000:]
