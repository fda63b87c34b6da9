"""What the docs say: the landing page's example runs, guide numbers come from the result
files, gallery lines fit the page.

Benchmark numbers in the guides are ``:result:`QUERY``` roles (``docs/_ext/results_numbers.py``)
that the build evaluates on ``benchmarks/results/*.json``. The rule checked here: a sentence
of a guide (or of the landing page) that names a benchmark (``bench_<what>``) quotes no number
of its own -- every number in it comes from a role. Numbers inside ``literals``, math and
other roles, and in code blocks, are not prose and are not checked.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted((DOCS / "guide").glob("*.rst")) + [DOCS / "index.rst"]
# every script the gallery shows: the executed plot_*.py and the GPU script shown as a page
GALLERY = sorted((ROOT / "examples").glob("*/plot_*.py")) + [
    ROOT / "examples" / "images" / "train_images.py"
]
MAX_GALLERY_LINE = 88


def _ext():
    spec = importlib.util.spec_from_file_location(
        "results_numbers", DOCS / "_ext" / "results_numbers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------- gallery lines


@pytest.mark.parametrize("path", GALLERY, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_gallery_lines_fit_the_page(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    long = [(k, len(line)) for k, line in enumerate(lines, 1) if len(line) > MAX_GALLERY_LINE]
    assert not long, f"lines over {MAX_GALLERY_LINE} characters (line, length): {long}"


# ------------------------------------------------------------------ numbers in the guides

_CODE_DIRECTIVES = ("code-block", "code", "math", "plot", "literalinclude", "testcode")
_ROLE = re.compile(r":result:`[^`]*`|``.+?``|:[\w:-]+:`[^`]*`|`[^`]*`_{1,2}|\|[^|\s][^|]*\|")
_NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z]-)\d+(?:,\d{3})*(?:\.\d+)?(?![.,]?\d|-?[A-Za-z_])")
_NOT_A_SENTENCE_END = ("e.g", "i.e", "vs", "etc", "cf")


def prose_blocks(text: str) -> list[str]:
    """The paragraphs of a reST page as single lines; code, math and literal blocks dropped."""
    blocks: list[list[str]] = [[]]
    skip_below: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_below is not None and (not stripped or indent > skip_below):
            continue
        skip_below = None
        directive = re.match(r"\.\. ([\w-]+)::", stripped)
        comment = stripped.startswith("..") and not directive
        if comment or directive and directive[1] in _CODE_DIRECTIVES or stripped.endswith("::"):
            skip_below = indent  # its indented body is a comment, code or math, not prose
        if directive or comment or not stripped or re.fullmatch(r"[-=~^*]{3,}( +[-=]+)*", stripped):
            blocks.append([])
            continue
        blocks[-1].append(stripped.removeprefix("- ").removeprefix("* "))
    return [" ".join(b) for b in blocks if b]


def sentences(block: str) -> list[str]:
    """A paragraph split after '.', '?' or '!' followed by a capital, a role or a literal."""
    pieces = re.split(r"(?<=[.?!])\s+(?=[A-Z`(:*\\])", block)
    out: list[str] = []
    for piece in pieces:
        if out and out[-1].rstrip(".").endswith(_NOT_A_SENTENCE_END):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def literal_numbers(sentence: str) -> list[str]:
    """Numbers written in a sentence's prose (roles, literals and math removed)."""
    return _NUMBER.findall(_ROLE.sub(" ", sentence))


def benchmark_sentences(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [s for b in prose_blocks(text) for s in sentences(b) if re.search(r"bench_\w", s)]


def test_the_number_scan_finds_retyped_numbers():
    """The rule's own check: a retyped number is found, a role's number and code are not."""
    page = textwrap.dedent(
        """\
        Title
        =====

        Exact pairs cost 3.2--3.6 times the training time (``bench_ot``). Use ``steps=2000``
        and :math:`d = 16`; 2-D tasks, e.g. 8gaussians. Independent pairs need
        :result:`range bench_ot nfe method=indep+* fmt=.0f` evaluations (``bench_ot``).

        .. code-block:: python

           st.fit(x, steps=20_000)  # bench_ot
        """
    )
    found = [(s[:20], literal_numbers(s)) for b in prose_blocks(page) for s in sentences(b)]
    assert found == [
        ("Title", []),
        ("Exact pairs cost 3.2", ["3.2", "3.6"]),
        ("Use ``steps=2000`` a", []),
        ("Independent pairs ne", []),
    ]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_guides_take_benchmark_numbers_from_the_result_files(path):
    retyped = {s: literal_numbers(s) for s in benchmark_sentences(path)}
    retyped = {s: n for s, n in retyped.items() if n}
    assert not retyped, (
        "sentences naming a benchmark quote numbers that are not :result: roles "
        "(docs/_ext/results_numbers.py):\n"
        + "\n".join(f"- {numbers}: {s}" for s, numbers in retyped.items())
    )


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_result_query_evaluates(path):
    ext = _ext()
    text = path.read_text(encoding="utf-8")
    queries = re.findall(r":result:`([^`]*)`", text)
    queries += [m.split(" >")[0].split(" <")[0] for m in re.findall(r"result-if:: (.+)", text)]
    for query in queries:
        assert ext.render(query), query


def test_result_queries():
    ext = _ext()
    assert ext.render("range bench_ot nfe method=exact_ot+linear fmt=.0f") == "38\N{EN DASH}46"
    assert ext.render("param bench_ot steps fmt=,.0f") == "20,000"
    one = "value bench_ot ke/w2sq task=N->8gaussians method=indep+trig fmt=.2f"
    assert ext.render(one) == "1.38"
    # by= divides by the same task's row of another method
    rel = ext.values("min bench_ot steps_per_s method=exact_ot+linear by=method:indep+linear")
    assert len(rel) == 4 and all(0 < r < 1 for r in rel)
    for bad, match in [
        ("value bench_ot npe method=exact_ot+linear", "needs one row"),
        ("range bench_ot npe method=nothing", "no row matches"),
        ("range bench_nothing npe", "no result file"),
        ("range bench_ot npe flavour=x", "no column 'flavour'"),
        ("sum bench_ot npe", "expected 'AGGREGATE"),
    ]:
        with pytest.raises(ext.QueryError, match=match):
            ext.render(bad)


# ------------------------------------------------------------------------ landing page


def landing_example() -> str:
    """The landing page's Python example (the code block that calls ``sample_quality``)."""
    text = (DOCS / "index.rst").read_text(encoding="utf-8")
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
    (block,) = [b for b in blocks if "sample_quality" in b]
    return textwrap.dedent(block)


def test_landing_example_runs_and_measures_on_held_out_samples(monkeypatch, capsys):
    """The example as printed on the page, with a short fit (the page's timing is the
    default fit's, measured by ``bench_2d``)."""
    import torch

    import sitransport as st

    code = landing_example()
    assert "held_out" in code and "st.fit(" in code
    fit = st.fit
    monkeypatch.setattr(
        st, "fit", lambda *a, **k: fit(*a, **{**k, "steps": 300, "progress": False})
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        namespace: dict = {}
        exec(compile(code, "docs/index.rst", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    q = namespace["q"]
    assert isinstance(q, st.metrics.SampleQuality) and q.n == 2000
    assert 0 < q.noise_floor < q.w2 * 2 and q.ratio == pytest.approx(q.w2 / q.noise_floor)
    out = capsys.readouterr().out
    assert re.fullmatch(r"W2 = \d\.\d{3}, noise floor = \d\.\d{3}, ratio = \d+\.\d{2}\n", out)


def test_landing_page_cites_the_paper():
    text = (DOCS / "index.rst").read_text(encoding="utf-8")
    assert "2209.15571" in text and ".. code-block:: bibtex" in text
    assert "sitransport demo" in text and "pip install" in text
    figure = re.search(r"\.\. figure:: (\S+)", text)
    assert figure and (DOCS / figure[1]).is_file()


def test_readme_quickstart_runs(monkeypatch, tmp_path, capsys):
    """The README's Quickstart block as printed (short fits, files written in tmp_path):
    every call in it exists and runs, and W2 is measured against held-out samples."""
    import torch

    import sitransport as st

    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    assert "held_out" in code and "x1[:" not in code.split("sample_quality")[1].split("\n")[0]
    fit = st.fit
    monkeypatch.setattr(st, "fit", lambda *a, **k: fit(*a, **{**k, "steps": 30, "progress": False}))
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        torch.set_num_threads(threads)
    assert "SampleQuality(w2=" in capsys.readouterr().out
    assert (tmp_path / "cb.sit").is_file()
