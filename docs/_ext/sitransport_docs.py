"""Sphinx extension of the sitransport docs: the ``benchmark-results`` directive, and the
"[docs]" back-links of the highlighted sources (see :func:`_alias_imported_ids`).

``.. benchmark-results:: ../benchmarks/results`` reads every ``*.md`` result file of that
folder (as written by ``benchmarks/_common.py``) and renders, depending on ``:part:``:

``summary``
    one row per benchmark (a family of result files, :data:`FAMILIES`): what it measures,
    its target as the result file states it, whether it was met -- counted from the file's
    own verdicts (``- ...: met`` / ``NOT met`` lines, ``met by all N rows``, ``missed on
    ...``, or a ``Target: <column> <= <value>`` sentence checked on the table's rows) -- and
    a link to its section; then the ``summary_*.png`` figures of the folder
    (``benchmarks/plot_results.py``).
``results`` (the default)
    one section per benchmark under a human title, its result files in it (the file name in
    the section's first line, the command as a literal block, the figures the file names,
    the tables -- a table with a ``part`` column split by part and a table too wide for the
    page split into column groups that keep the key columns --, ``- `` lines as lists,
    indented lines as code); then the CI-sized ``*_quick`` runs in a collapsed ``<details>``
    block; then any figure no result file names.

Everything this directive renders is data copied from the result files: smart quotes are off
for it (``support_smartquotes = False``), so commands and settings keep their ``--`` and
straight quotes. A table whose rows do not split into the header's number of cells is shown
verbatim. A new result file appears on the page without editing it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.ext.viewcode import _get_full_modname
from sphinx.util import logging

logger = logging.getLogger(__name__)

_CELL_SEP = " | "
MAX_COLUMNS = 12  # wider tables are split into column groups (each keeping the key columns)
STATIC = Path(__file__).resolve().parent / "_static"
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _freshness_module():
    """``benchmarks/freshness.py`` (standard library only), loaded once by file path."""
    name = "sitransport_bench_freshness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / "freshness.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass(frozen=True)
class Family:
    """A benchmark: the result files whose name starts with ``key``."""

    key: str
    title: str
    measures: str


# Page order: the peer comparison first.
FAMILIES = (
    Family(
        "bench_peers",
        "Against peer libraries",
        "Sample quality (W2 to held-out samples), held-out NLL, path energy (NPE) and "
        "training speed of our fit next to torchcfm (I-CFM, OT-CFM) and Meta's flow_matching "
        "(their models evaluated through TransportFlow.from_velocity): same network, "
        "optimiser and budget, four 2-D tasks.",
    ),
    Family(
        "bench_2d",
        "Two-dimensional targets",
        "Sample quality (W2 over its noise floor) and held-out NLL of the default fit on 2-D "
        "toy targets, with its training time on two CPU cores.",
    ),
    Family(
        "bench_ot",
        "Couplings and paths",
        "W2 ratio, path energy (NPE) and ODE cost (NFE) of independent, minibatch-OT, "
        "global-OT, max-min and reflow fits on four 2-D tasks.",
    ),
    Family(
        "bench_ot_nfe",
        "Few-step sampling",
        "W2 ratio when the ODE is solved with a fixed budget of 1 to 16 evaluations instead "
        "of dopri5, per coupling and path.",
    ),
    Family(
        "bench_onestep",
        "One-step sampling",
        "W2 of one-step samples against the flow's own dopri5 samples: nfe=1 of global-OT "
        "flows, and st.distill of the default flows (2-D tasks, digits) with its cost.",
    ),
    Family(
        "bench_ot_map",
        "Known optimal-transport maps",
        "Distance of the learned map from an exactly known optimal map (L2-UVP, cosine), "
        "Gaussian and mixture pairs in growing dimension.",
    ),
    Family(
        "bench_entropic_plan",
        "Entropic plans at scale",
        "Time of geomloss's entropic plans vs plan size and backend, the pairs' bias vs plan "
        "size and blur on a Gaussian pair with a known map, and training speed with "
        "global_entropic vs independent pairing on one core.",
    ),
    Family(
        "bench_likelihood",
        "Likelihoods",
        "Held-out NLL against known densities, training time against maximum-likelihood CNF "
        "training, and NLL on real data next to KernelDensity and zuko's NSF.",
    ),
    Family(
        "bench_lowrank",
        "Low-rank sources",
        "Deterministic flows against stochastic interpolants and SDE sampling when the "
        "source lies on a lower-dimensional set, and a latent flow on digits.",
    ),
    Family(
        "bench_images",
        "Images",
        "Bits/dim and training throughput of the U-Net and the MLP on 8x8 digits; the "
        "commands of the GPU runs.",
    ),
    Family(
        "bench_gpu",
        "Image-training pipeline",
        "Throughput, torch.compile, DDP scaling and sampling of the image-training pipeline "
        "(here a tiny CPU-sized check of it).",
    ),
    Family(
        "bench_overhead",
        "Framework overhead",
        "Training steps/s of st.fit and the time of flow.sample against a bare PyTorch loop "
        "and a bare torchdiffeq call doing the same math (one thread, alternated processes), "
        "with a profile of where fit's time goes.",
    ),
    Family(
        "bench_conditional",
        "Conditional transport",
        "W2 over its noise floor of conditional fits against exact conditional laws "
        "(linear-Gaussian families, rotated moons) next to torchcfm's conditional recipe, "
        "path energy within labels, and FiLM against concatenation.",
    ),
    Family(
        "bench_conditional_digits",
        "Class-conditional digits",
        "Guidance on 8x8 digits judged by a classifier (accuracy, diversity, W2 to each "
        "class), and conditional against unconditional bits/dim.",
    ),
    Family(
        "bench_w2_reference",
        "Noise of the W2 reference",
        "Spread of the exact W2^2 between sample sets of growing size: the noise carried by "
        "every NPE value.",
    ),
)

# Titles of the result files that are not a benchmark's main file (follow-up runs, parts).
TITLES = {
    "bench_ot_speed": "Training speed of the couplings (follow-up run)",
    "bench_ot_entropic": "Entropic couplings next to independent and global-OT pairing",
    "bench_ot_nfe_entropic": "Few-step sampling of the entropic couplings",
    "bench_ot_entropic_schedule": "Global entropic plan: default against slower schedule",
    "bench_ot_nfe_entropic_schedule": "Few-step sampling, global entropic plan schedules",
    "bench_onestep_ot": "One step of global-OT flows (the ot part, run beside the main file)",
    "bench_onestep_digits_pairs5000": "Distilled digits from 5,000 teacher pairs",
    "bench_ot_map_global": "Global-OT coupling on the mixture pair",
    "bench_ot_map_global_8000": "Global-OT coupling, longer training",
    "bench_ot_map_global_16000": "Global-OT coupling with a potential, longest training",
    "bench_ot_map_global8192": "Global-OT coupling on larger plans, with a potential",
    "bench_ot_map_d16_steps2000": "Mixture pair in 16 dimensions: exact OT and reflow",
    "bench_ot_map_d16_steps4000": "Mixture pair in 16 dimensions: twice the steps",
    "bench_ot_map_ot_d16": 'coupling="ot" at its defaults, mixture and Gaussian pairs, d = 16',
    "bench_ot_map_ot_d64": 'coupling="ot" at its defaults, mixture and Gaussian pairs, d = 64',
    "bench_ot_map_ot_d2_8": 'coupling="ot" at its defaults, both pairs, d = 2, 4, 8',
    "bench_likelihood_cost_fine_eval": "Training cost with a finer MLE evaluation",
    "bench_likelihood_cost_fine_eval_d8": "Training cost with a finer MLE evaluation, 8-D mixture",
    "bench_lowrank_ab": "A line and a padded Gaussian as sources",
    "bench_lowrank_c": "Digits: full-space and latent flows",
    "bench_gpu_tiny": "Tiny CPU check",
    "bench_conditional_nonlinear_steps20000": "Rotated moons with 20,000 training steps",
}


# --------------------------------------------------------------------------- parsing


@dataclass
class Block:
    """A run of lines of one kind: command, env, table, code, list, text."""

    kind: str
    lines: list[str]


@dataclass
class Result:
    """One ``benchmarks/results/*.md`` file, split into blocks."""

    path: Path
    blocks: list[Block] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def freshness(self):
        """Whether the file describes today's code (``benchmarks/freshness.py``), from the
        JSON beside it; ``None`` for a file outside the repository's results folder or
        without its JSON."""
        data = self.path.with_suffix(".json")
        if self.path.parent.resolve() != BENCHMARKS / "results" or not data.is_file():
            return None
        fresh = _freshness_module()
        return fresh.check(json.loads(data.read_text(encoding="utf-8")), self.stem)

    @property
    def quick(self) -> bool:
        return self.stem.endswith("_quick")

    def text(self) -> str:
        """The paragraphs of the file, one a line."""
        return "\n".join(" ".join(b.lines) for b in self.blocks if b.kind == "text")

    def items(self) -> list[str]:
        return [item for b in self.blocks if b.kind == "list" for item in b.lines]

    def tables(self) -> list[tuple[list[str], list[list[str]]]]:
        out = [_parse_table(b.lines) for b in self.blocks if b.kind == "table"]
        return [t for t in out if t is not None]


def _kind(line: str) -> str:
    if not line.strip():
        return "blank"
    if re.fullmatch(r"Command:\s*`[^`]+`\s*", line):
        return "command"
    if line.startswith("git ") and " torch " in line:
        return "env"
    if line.lstrip().startswith("|"):
        return "table"
    if line.startswith("    "):
        return "code"
    return "list" if line.startswith("- ") else "text"


def parse_result(path: Path) -> Result:
    """Split a result file into blocks (its ``# title`` line dropped)."""
    result = Result(path)
    blocks = result.blocks
    gap = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            continue
        kind = _kind(line)
        if kind == "blank":
            gap = True
            continue
        joins = blocks and blocks[-1].kind == kind and (not gap or kind == "code")
        if joins and kind not in ("command", "env"):
            blocks[-1].lines.append(line)
        else:
            blocks.append(Block(kind, [line]))
        gap = False
    for block in blocks:
        if block.kind == "command":
            block.lines = [re.search(r"`([^`]+)`", block.lines[0])[1]]
        elif block.kind == "list":
            block.lines = [ln[2:].strip() for ln in block.lines]
        elif block.kind == "code":
            block.lines = [ln[4:] for ln in block.lines]
    return result


def _split_row(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[2:] if inner.startswith("| ") else inner[1:]
    inner = inner[:-2] if inner.endswith(" |") else inner[:-1]
    return [cell.strip() for cell in inner.split(_CELL_SEP)]


def _parse_table(lines: list[str]) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of a Markdown table; ``None`` if any row's cells do not line up."""
    if len(lines) < 3:
        return None
    header = _split_row(lines[0])
    rows = [_split_row(line) for line in lines[2:]]
    return None if any(len(r) != len(header) for r in rows) else (header, rows)


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


# --------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    """Targets met and missed, as a result file states them."""

    met: int = 0
    missed: int = 0

    def __add__(self, other: Verdict) -> Verdict:
        return Verdict(self.met + other.met, self.missed + other.missed)

    @property
    def judged(self) -> bool:
        return self.met + self.missed > 0


def _list_verdict(items: list[str]) -> Verdict:
    """``- ...: met`` and ``- ...: NOT met`` / ``NOT shown`` lines."""
    met = sum(bool(re.search(r":\s*met\.?$", item)) for item in items)
    missed = sum(bool(re.search(r":\s*NOT (met|shown)\.?$", item)) for item in items)
    return Verdict(met, missed)


def _sentence_verdict(text: str) -> Verdict:
    """``met by all N rows``, ``met on every task``, ``missed by/on A; B; ...``."""
    out = Verdict()
    for match in re.finditer(r"met by all (\d+) rows", text):
        out.met += int(match[1])
    out.met += len(re.findall(r"met on every task", text))
    for match in re.finditer(r"missed (?:by|on) (.+?)\.(?:\s|$)", text):
        out.missed += match[1].count("; ") + 1
    return out


_OPS = {"<=": float.__le__, "<": float.__lt__, ">=": float.__ge__, ">": float.__gt__}


def _row_checks(target: str, header: list[str]) -> list[tuple[int, str, float]]:
    """``<column> <op> <value>`` of a target sentence, and ``in under <n> s`` (train_s)."""
    checks = []
    for match in re.finditer(r"(\w+) (<=|>=|<|>) (\d+(?:\.\d+)?)", target):
        if match[1] in header:
            checks.append((header.index(match[1]), match[2], float(match[3])))
    under = re.search(r"in under (\d+(?:\.\d+)?) s\b", target)
    if under and "train_s" in header:
        checks.append((header.index("train_s"), "<", float(under[1])))
    return checks


def _column_verdict(result: Result, targets: list[str]) -> Verdict:
    """A ``Target: <column> <= <value>`` sentence checked on every row of the first table."""
    tables = result.tables()
    if not tables or not targets:
        return Verdict()
    header, rows = tables[0]
    checks = [c for t in targets for c in _row_checks(t, header)]
    if not checks:
        return Verdict()
    out = Verdict()
    for row in rows:
        values = [_number(row[i]) for i, _, _ in checks]
        ok = all(
            v is not None and _OPS[op](v, bound)
            for v, (_, op, bound) in zip(values, checks, strict=True)
        )
        out += Verdict(1, 0) if ok else Verdict(0, 1)
    return out


def verdict(result: Result) -> Verdict:
    """What the file says was met: its verdict lines, else its target checked on its table."""
    out = _list_verdict(result.items()) + _sentence_verdict(result.text())
    return out if out.judged else _column_verdict(result, targets(result))


_TARGET = re.compile(r"\b[Tt]argets?(?=:| \(| [<>])")


def _sentences(text: str) -> list[str]:
    """Sentences and ``;`` clauses of a text, not split inside parentheses."""
    if "\n" in text:
        return [s for line in text.splitlines() for s in _sentences(line)]
    out, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth = max(0, depth + (ch == "(") - (ch == ")"))  # U[0,1) closes nothing
        if ch in ".;" and depth == 0 and text[k + 1 : k + 2] in (" ", ""):
            out.append(text[start : k + 1].strip())
            start = k + 1
    return [s for s in [*out, text[start:].strip()] if s]


def _cut_verdict(sentence: str, start: int) -> str:
    """The target part of a sentence: up to the first colon (outside parentheses) after
    ``start`` that introduces a verdict or a per-task listing."""
    depth = 0
    for k, ch in enumerate(sentence[:-1]):
        depth = max(0, depth + (ch == "(") - (ch == ")"))  # U[0,1) closes nothing
        if k < start or ch != ":" or sentence[k + 1] != " " or depth:
            continue
        rest = sentence[k + 2 :]
        if re.match(r"(met|missed|NOT)\b", rest) or "->" in rest.split(" ", 1)[0]:
            return sentence[:k]
    return sentence


def targets(result: Result) -> list[str]:
    """The targets a result file states: the parenthesis of its ``Targets (...):`` line,
    else its sentences (or ``;`` clauses) that name a target, cut before their verdict."""
    for block in result.blocks:
        header = re.fullmatch(r"Targets \((.+)\):", " ".join(block.lines))
        if block.kind == "text" and header:
            return [header[1]]
    out = []
    for sentence in _sentences(result.text()):
        match = _TARGET.search(sentence)
        if not match or sentence == "Targets:":
            continue
        body = sentence.removeprefix("Target: ")
        start = 0 if body is not sentence else match.end()
        out.append(_cut_verdict(body, start).rstrip(" .;"))
    return out


# --------------------------------------------------------------------------- inline markup

# code inside prose: `spans`, {dict: settings} (one nesting level), --options
_CODE = re.compile(r"`([^`]+)`|(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})|(?<![\w-])(--[A-Za-z][\w-]*)")


def _inline(text: str) -> list[nodes.Node]:
    """Plain text with its code (Markdown ``code`` spans, dict settings, ``--options``) as
    literal nodes."""
    out: list[nodes.Node] = []
    pos = 0
    for match in _CODE.finditer(text):
        if match.start() > pos:
            out.append(nodes.Text(text[pos : match.start()]))
        code = next(g for g in match.groups() if g is not None)
        out.append(nodes.literal(code, code))
        pos = match.end()
    if pos < len(text):
        out.append(nodes.Text(text[pos:]))
    return out


def _verdict_inline(text: str) -> list[nodes.Node]:
    """A verdict line with its final met / NOT met marked for colour."""
    match = re.search(r"(met|NOT met|NOT shown)\.?$", text)
    if not match or not re.search(r":\s*$", text[: match.start()]):
        return _inline(text)
    cls = "bm-met" if match[1] == "met" else "bm-missed"
    return [*_inline(text[: match.start()]), nodes.inline(match[1], match[1], classes=[cls])]


# --------------------------------------------------------------------------- tables


def _key_columns(header: list[str], rows: list[list[str]]) -> list[int]:
    """Columns that name a row (some cell is text, not a number or True/False/None)."""
    flags = {"", "True", "False", "None", "nan"}
    return [
        j
        for j in range(len(header))
        if any(r[j] not in flags and _number(r[j]) is None for r in rows)
    ]


def _column_groups(header: list[str], rows: list[list[str]]) -> list[list[int]]:
    """Column indices of each table: all of them, or, when wider than ``MAX_COLUMNS``,
    balanced groups of the value columns, each after the key columns."""
    if len(header) <= MAX_COLUMNS:
        return [list(range(len(header)))]
    keys = _key_columns(header, rows)[: MAX_COLUMNS // 2]
    values = [j for j in range(len(header)) if j not in keys]
    n = math.ceil(len(values) / (MAX_COLUMNS - len(keys)))
    size = math.ceil(len(values) / n)
    return [keys + values[k : k + size] for k in range(0, len(values), size)]


def _table_node(header: list[str], rows: list[list[str]]) -> nodes.table:
    table = nodes.table(classes=["benchmark-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in header]

    def row(cells: list[str]) -> nodes.row:
        out = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", "", *_inline(cell))
            out += entry
        return out

    thead = nodes.thead()
    thead += row(header)
    tbody = nodes.tbody()
    tbody += [row(r) for r in rows]
    group += [thead, tbody]
    return table


def _by_part(header: list[str], rows: list[list[str]]) -> list[tuple[str, list[str], list]]:
    """(part, header, rows) of each value of a leading ``part`` column, without that column
    and without the columns empty for all of the part's rows; one untitled table otherwise."""
    if header[0] != "part":
        return [("", header, rows)]
    out = []
    for part in dict.fromkeys(r[0] for r in rows):
        sub = [r for r in rows if r[0] == part]
        keep = [j for j in range(1, len(header)) if any(r[j] for r in sub)]
        out.append((part, [header[j] for j in keep], [[r[j] for j in keep] for r in sub]))
    return out


def render_table(lines: list[str]) -> list[nodes.Node]:
    """A Markdown table as one or more tables (split by part, then by column group); the
    Markdown verbatim if its rows do not line up."""
    parsed = _parse_table(lines)
    if parsed is None:
        text = "\n".join(lines)
        return [nodes.literal_block(text, text)]
    out: list[nodes.Node] = []
    for part, header, rows in _by_part(*parsed):
        if part:
            out.append(nodes.rubric(part, f"Part: {part}", classes=["benchmark-part"]))
        for cols in _column_groups(header, rows):
            out.append(_table_node([header[j] for j in cols], [[r[j] for j in cols] for r in rows]))
    return out


# --------------------------------------------------------------------------- sections


def _code_block(text: str, *classes: str) -> nodes.literal_block:
    return nodes.literal_block(text, text, language="bash", classes=list(classes))


def _render_block(block: Block) -> list[nodes.Node]:
    if block.kind == "table":
        return render_table(block.lines)
    if block.kind == "code":
        return [_code_block("\n".join(block.lines), "benchmark-code")]
    if block.kind == "list":
        items = nodes.bullet_list(classes=["benchmark-verdicts"])
        for line in block.lines:
            items += nodes.list_item("", nodes.paragraph("", "", *_verdict_inline(line)))
        return [items]
    return [nodes.paragraph("", "", *_inline(" ".join(block.lines)))]


def _source_line(result: Result) -> nodes.paragraph:
    """The section's first line, small: the file name and the environment it was run in."""
    env = next((b.lines[0] for b in result.blocks if b.kind == "env"), "")
    para = nodes.paragraph(classes=["benchmark-source"])
    para += nodes.literal(result.path.name, result.path.name)
    if env:
        para += nodes.Text(f" \N{MIDDLE DOT} {env}")
    state = result.freshness
    if state is not None:
        para += nodes.Text(" \N{MIDDLE DOT} ")
        para += nodes.inline(
            state.describe(), state.describe(), classes=[_STATE_CLASS[state.state]]
        )
    return para


# the look of a result's freshness (sitransport_benchmarks.css)
_STATE_CLASS = {
    "fresh": "bm-fresh",
    "kept": "bm-kept",
    "stale": "bm-stale",
    "unrecorded": "bm-stale",
}


def _image(folder: str, png: Path) -> nodes.Node:
    uri = (Path(folder) / png.name).as_posix()
    figure = nodes.figure(classes=["benchmark-figure"])
    figure += nodes.image(uri=uri, alt=png.stem)
    figure += nodes.caption(png.name, "", nodes.literal(png.name, png.name))
    return figure


def _section(ident: str, title: str) -> nodes.section:
    section = nodes.section(ids=[nodes.make_id(f"result-{ident}")], names=[ident])
    section["support_smartquotes"] = False  # data copied from the files: straight quotes
    section += nodes.title(title, title)
    return section


def result_body(result: Result, figures=()) -> list[nodes.Node]:
    """The content of a result file: its file name and environment (small), its command,
    the figures given (``(folder, png)`` pairs), then its tables, notes and lists in order."""
    out: list[nodes.Node] = [_source_line(result)]
    out += [
        _code_block(b.lines[0], "benchmark-command") for b in result.blocks if b.kind == "command"
    ]
    out += [_image(folder, png) for folder, png in figures]
    for block in result.blocks:
        if block.kind not in ("command", "env"):
            out += _render_block(block)
    return out


def render_result(
    path: Path, document: nodes.document, title: str | None = None, figures=()
) -> nodes.section:
    """One ``benchmarks/results/*.md`` file as a section (:func:`result_body`)."""
    result = parse_result(path)
    section = _section(result.stem, title or TITLES.get(result.stem, result.stem))
    document.note_implicit_target(section)
    section.extend(result_body(result, figures))
    return section


def family_of(stem: str) -> Family | None:
    """The benchmark a result file belongs to (the longest matching key)."""
    stem = stem.removesuffix("_quick")
    found = [f for f in FAMILIES if stem == f.key or stem.startswith(f.key + "_")]
    return max(found, key=lambda f: len(f.key), default=None)


def _order(result: Result) -> tuple:
    """Page order: by benchmark, then by name with numbers compared as numbers."""
    family = family_of(result.stem)
    index = FAMILIES.index(family) if family else len(FAMILIES)
    parts = re.split(r"(\d+)", result.stem)
    return (index, [int(p) if p.isdigit() else p for p in parts])


def _main_files(family: Family, results: list[Result]) -> list[Result]:
    """A benchmark's main result files: the one named after it, else all of them."""
    exact = [r for r in results if r.stem == family.key]
    return exact or results


def _families(results: list[Result]) -> list[tuple[Family, list[Result]]]:
    """The benchmarks with result files, in page order; files of no known benchmark last,
    each its own benchmark."""
    out = []
    for family in FAMILIES:
        members = [r for r in results if family_of(r.stem) == family]
        if members:
            out.append((family, members))
    for r in results:
        if family_of(r.stem) is None:
            out.append((Family(r.stem, r.stem, ""), [r]))
    return out


# --------------------------------------------------------------------------- summary


def summary_row(family: Family, results: list[Result]) -> dict[str, str | Verdict]:
    """What the summary table shows of one benchmark, from its main result files."""
    main = _main_files(family, results)
    judged = [r for r in main if verdict(r).judged] or main
    found = [t for r in judged for t in targets(r)]
    total = Verdict()
    for r in main:
        total += verdict(r)
    return {
        "key": family.key,
        "title": family.title,
        "measures": family.measures,
        "target": "; ".join(dict.fromkeys(found)),
        "verdict": total,
        "freshness": [f for r in main if (f := r.freshness) is not None],
    }


def _age(states: list) -> list[nodes.Node]:
    """Where and when the main files were measured, and whether they are kept on purpose."""
    if not states:
        return []
    commits = ", ".join(dict.fromkeys(f"{f.commit[:7]} {f.date[:10]}".strip() for f in states))
    kept = " (kept)" if any(f.state == "kept" for f in states) else ""
    return [nodes.inline("", f" \N{MIDDLE DOT} {commits}{kept}", classes=["bm-age"])]


def _verdict_cell(v: Verdict, target: str, states: list = ()) -> list[nodes.Node]:
    """ "met" / "not met" with the counts and the age of the result; "stale" instead when a
    main file no longer describes the code."""
    stale = [f for f in states if not f.current]
    if stale:
        word = nodes.inline("stale", "stale", classes=["bm-stale"])
        return [word, nodes.Text(" (re-run it: the code changed)"), *_age(list(states))]
    return [*_verdict_words(v, target), *_age(list(states))]


def _verdict_words(v: Verdict, target: str) -> list[nodes.Node]:
    if not v.judged:
        text = "no verdict in the file" if target else "no target (a comparison)"
        return [nodes.Text(text)]
    if not v.missed:
        word = nodes.inline("met", "met", classes=["bm-met"])
        return [word, nodes.Text(f" ({v.met} of {v.met})")]
    word = nodes.inline("not met", "not met", classes=["bm-missed"])
    return [word, nodes.Text(f" ({v.missed} of {v.met + v.missed} missed)")]


def summary_table(rows: list[dict]) -> nodes.table:
    """The summary: benchmark (a link to its section), what it measures, target, result."""
    header = ["Benchmark", "What it measures", "Target (from the results file)", "Met"]
    table = _table_node(header, [])
    table["classes"] = ["benchmark-summary", "colwidths-given"]
    for colspec, width in zip(table.findall(nodes.colspec), (14, 38, 34, 14), strict=True):
        colspec["colwidth"] = width
    tbody = next(iter(table.findall(nodes.tbody)))
    for row in rows:
        link = nodes.reference("", row["title"], internal=True)
        link["refid"] = nodes.make_id(f"result-{row['key']}")
        cells = [
            [link],
            [nodes.Text(row["measures"])],
            _inline(row["target"]) or [nodes.Text("\N{EM DASH}")],
            _verdict_cell(row["verdict"], row["target"], row.get("freshness", [])),
        ]
        tr = nodes.row()
        for cell in cells:
            tr += nodes.entry("", nodes.paragraph("", "", *cell))
        tbody += tr
    return table


# --------------------------------------------------------------------------- collapsed block


class details(nodes.General, nodes.Element):
    """An HTML ``<details>`` block (collapsed); its first child is a :class:`summary`."""


class summary(nodes.General, nodes.TextElement):
    """The always-visible line of a :class:`details` block."""


def _visit_details(self, node: details) -> None:
    self.body.append(self.starttag(node, "details"))


def _depart_details(self, node: details) -> None:
    self.body.append("</details>\n")


def _visit_summary(self, node: summary) -> None:
    self.body.append(self.starttag(node, "summary", ""))


def _depart_summary(self, node: summary) -> None:
    self.body.append("</summary>\n")


def _pass(self, node) -> None:
    pass


# --------------------------------------------------------------------------- directive


class BenchmarkResults(Directive):
    """``.. benchmark-results:: <folder relative to this document>`` with ``:part:``
    ``summary`` or ``results`` (default)."""

    required_arguments = 1
    has_content = False
    option_spec = {"part": lambda arg: directives.choice(arg, ("summary", "results"))}

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        folder = (Path(env.doc2path(env.docname)).parent / self.arguments[0]).resolve()
        files = sorted(folder.glob("*.md"))
        if not files:
            raise self.error(f"benchmark-results: no *.md files in {folder}")
        env.sitransport_benchmark_docs = getattr(env, "sitransport_benchmark_docs", set())
        env.sitransport_benchmark_docs.add(env.docname)
        for path in [*files, *folder.glob("*.png")]:
            env.note_dependency(str(path))
        results = sorted((parse_result(p) for p in files), key=_order)
        if self.options.get("part") == "summary":
            return [self._summary(results, folder)]
        return self._results(results, folder)

    # -- summary
    def _summary(self, results: list[Result], folder: Path) -> nodes.section:
        full = [r for r in results if not r.quick]
        section = _section("summary", "Summary")
        self.state.document.note_implicit_target(section)
        section += summary_table([summary_row(f, members) for f, members in _families(full)])
        for png in sorted(folder.glob("summary_*.png")):
            section += _image(self.arguments[0], png)
        return section

    # -- results
    def _figures(self, results: list[Result], folder: Path) -> dict[str | None, list]:
        """Each figure (not ``summary_*``) under the first result file naming it."""
        out: dict[str | None, list] = {}
        texts = {r.stem: r.path.read_text(encoding="utf-8") for r in results}
        for png in sorted(folder.glob("*.png")):
            if png.name.startswith("summary_"):
                continue
            owner = next((stem for stem, text in texts.items() if png.name in text), None)
            out.setdefault(owner, []).append((self.arguments[0], png))
        return out

    def _family_section(self, family: Family, members: list[Result], figures) -> nodes.section:
        document = self.state.document
        section = _section(family.key, family.title)
        document.note_implicit_target(section)
        main = _main_files(family, members)
        if len(main) == 1 and main[0].stem == family.key:  # the family's section is the file's
            section.extend(result_body(main[0], figures.get(family.key, ())))
            members = [r for r in members if r is not main[0]]
        for r in members:
            section += render_result(r.path, document, None, figures.get(r.stem, ()))
        return section

    def _results(self, results: list[Result], folder: Path) -> list[nodes.Node]:
        figures = self._figures(results, folder)
        full = [r for r in results if not r.quick]
        out: list[nodes.Node] = [self._family_section(f, m, figures) for f, m in _families(full)]
        quick = [r for r in results if r.quick]
        if quick:
            out.append(self._quick_section(quick, figures))
        if figures.get(None):
            section = _section("other-figures", "Other figures")
            section.extend(_image(folder_, png) for folder_, png in figures[None])
            out.append(section)
        return out

    def _quick_section(self, quick: list[Result], figures) -> nodes.section:
        section = _section("quick-runs", "CI-sized runs (--quick)")
        self.state.document.note_implicit_target(section)
        section += nodes.paragraph(
            "",
            "",
            *_inline(
                "What `--quick` (the CI size) writes: a few hundred steps and small samples, "
                "to check that every script runs. Their targets are the full runs': missed "
                "at this size, they say nothing about the method."
            ),
        )
        box = details(classes=["benchmark-quick"])
        box += summary("", f"Show the {len(quick)} CI-sized results")
        for r in quick:
            family = family_of(r.stem)
            title = f"{family.title} (CI size)" if family else r.stem
            box += render_result(r.path, self.state.document, title, figures.get(r.stem, ()))
        section += box
        return section


def _always_reread(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Result files may be added between builds: re-read the pages that list them."""
    return sorted(getattr(env, "sitransport_benchmark_docs", set()))


def _add_static(app: Sphinx, config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def _alias_imported_ids(app: Sphinx, doctree: nodes.document) -> None:
    """Give each API entry documented under another module than its source's (``sitransport.fit``
    is defined in ``sitransport.fitting``) a second anchor under the source module's name.

    ``sphinx.ext.viewcode`` links a source module's "[docs]" back to ``#<module>.<name>``
    with one module name per source file; :func:`_viewcode_link_to_source_module` makes that
    name the source module's, and this anchor is what it then points at on such pages.
    """
    for sig in doctree.findall(addnodes.desc_signature):
        modname, fullname = sig.get("module"), sig.get("fullname")
        if not modname or not fullname:
            continue
        source = _get_full_modname(modname, fullname)
        alias = f"{source}.{fullname}"
        if source and source != modname and alias not in sig["ids"]:
            sig["ids"].append(alias)


def _viewcode_link_to_source_module(app: Sphinx, env) -> None:
    """viewcode keeps, per source module, the module name of the first page that documented
    one of its objects (``sitransport`` for ``sitransport.fitting``, from ``sitransport.fit``)
    and builds every back-link of that module with it: ``#sitransport.DatasetDraw`` on the
    page of ``sitransport.fitting.DatasetDraw``, an anchor that does not exist. Use the source
    module's own name, which every entry has (directly or as the alias above)."""
    modules = getattr(env, "_viewcode_modules", {})
    for modname, entry in modules.items():
        if entry:
            modules[modname] = (*entry[:3], modname)


def setup(app: Sphinx) -> dict:
    app.add_directive("benchmark-results", BenchmarkResults)
    others = {b: (_pass, _pass) for b in ("latex", "text", "man", "texinfo")}
    app.add_node(details, html=(_visit_details, _depart_details), **others)
    app.add_node(summary, html=(_visit_summary, _depart_summary), **others)
    app.connect("env-get-outdated", _always_reread)
    app.connect("config-inited", _add_static)
    app.add_css_file("sitransport_benchmarks.css")
    app.connect("doctree-read", _alias_imported_ids)
    app.connect("env-updated", _viewcode_link_to_source_module)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "2"}
