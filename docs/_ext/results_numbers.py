"""Sphinx extension: numbers in the guides read from ``benchmarks/results/*.json`` at build time.

A guide never retypes a benchmark number; it writes a query, which the build evaluates on
the result file, so the page changes when the results do::

    ``npe`` :result:`range bench_ot npe method=exact_ot+linear fmt=.2g`   ->  0.017–0.039

A query is ``AGGREGATE FILE FIELD [KEY=VALUE ...] [OPTION=VALUE ...]``:

- ``AGGREGATE``: ``value`` (exactly one row must match), ``range`` (``min–max``), ``min``,
  ``max``, ``mean``, ``median``; or ``param`` (``FILE``'s ``parameters[FIELD]``, no rows).
- ``FILE``: a result file's stem, ``bench_ot`` for ``benchmarks/results/bench_ot.json``.
- ``FIELD``: a column of its rows, or an arithmetic expression of columns (``ke/w2sq``).
- ``KEY=VALUE``: keep the rows whose column ``KEY`` matches the glob ``VALUE``
  (``method=maxmin-*``; ``|`` separates alternatives: ``method=exact_ot*|reflow*``;
  numbers compare as numbers: ``d=16``).
- ``by=KEY:VALUE`` divides each row's field by that of the row equal to it except for
  ``KEY=VALUE`` (the same task's independent pairing, say); ``minus=KEY:VALUE`` subtracts it.
  The partner row agrees with the row in every text column but ``KEY``, or in the columns
  listed by ``on=`` (``on=pair,d``).
- ``scale=`` multiplies (``scale=100`` for a percentage); ``fmt=`` is a Python format
  spec (``.2f``, ``,.0f``; default ``.3g``).

``.. result-if:: QUERY > NUMBER`` (or ``<``) renders its content only while the query's
value satisfies the comparison: a warning that lasts as long as what it warns about.

Values are quoted with a space-separated query (``shlex``: quote values with spaces). A
query that matches nothing, or a missing file or column, fails the build.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import shlex
import statistics
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxRole

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
AGGREGATES = ("value", "range", "min", "max", "mean", "median", "param")
OPTIONS = ("by", "minus", "on", "scale", "fmt")


class QueryError(ValueError):
    """A query that cannot be evaluated on the result files."""


@functools.cache
def load(stem: str, folder: Path = RESULTS) -> dict:
    path = folder / f"{stem}.json"
    if not path.is_file():
        raise QueryError(f"no result file {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def _matches(row: dict, key: str, pattern: str) -> bool:
    if key not in row:
        raise QueryError(f"no column {key!r} in the rows (columns: {sorted(row)})")
    value = row[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value) in [float(p) for p in pattern.split("|")]
        except ValueError:
            return False
    return any(fnmatch.fnmatchcase(str(value), p) for p in pattern.split("|"))


def _field(row: dict, field: str) -> float:
    if field in row:
        return float(row[field])
    names = {k: v for k, v in row.items() if k.isidentifier()}
    try:
        return float(eval(field, {"__builtins__": {}}, names))  # noqa: S307 (docs' own text)
    except NameError as err:
        raise QueryError(f"field {field!r}: {err} (columns: {sorted(row)})") from None


def _partner(rows: list[dict], row: dict, spec: str, on: str | None) -> dict:
    """The row where ``KEY == VALUE`` and equal to ``row`` in the columns ``on`` (default:
    every text column but ``KEY``)."""
    key, _, value = spec.partition(":")
    if on:
        keys = on.split(",")
    else:
        keys = [k for k, v in row.items() if isinstance(v, str) and k != key]
    found = [r for r in rows if _matches(r, key, value) and all(r.get(k) == row[k] for k in keys)]
    if len(found) != 1:
        raise QueryError(f"{spec}: {len(found)} partner rows for {[row[k] for k in keys]}")
    return found[0]


def parse(query: str) -> tuple[str, str, str, dict[str, str], dict[str, str]]:
    """``(aggregate, file, field, filters, options)`` of a query."""
    words = shlex.split(query)
    if len(words) < 3 or words[0] not in AGGREGATES:
        raise QueryError(f"expected 'AGGREGATE FILE FIELD [KEY=VALUE ...]', got {query!r}")
    aggregate, stem, field, *rest = words
    filters: dict[str, str] = {}
    options: dict[str, str] = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if not sep:
            raise QueryError(f"expected KEY=VALUE, got {word!r} in {query!r}")
        (options if key in OPTIONS else filters)[key] = value
    return aggregate, stem, field, filters, options


def values(query: str, folder: Path = RESULTS) -> list[float]:
    """The numbers a query selects, before aggregation and formatting."""
    aggregate, stem, field, filters, options = parse(query)
    data = load(stem, folder)
    if aggregate == "param":
        if field not in data.get("parameters", {}):
            raise QueryError(f"{stem}: no parameter {field!r}")
        return [float(data["parameters"][field]) * float(options.get("scale", 1))]
    rows = data.get("rows", [])
    chosen = [r for r in rows if all(_matches(r, k, v) for k, v in filters.items())]
    if not chosen:
        raise QueryError(f"{stem}: no row matches {filters}")
    out = []
    for row in chosen:
        x = _field(row, field)
        if "by" in options:
            x /= _field(_partner(rows, row, options["by"], options.get("on")), field)
        if "minus" in options:
            x -= _field(_partner(rows, row, options["minus"], options.get("on")), field)
        out.append(x * float(options.get("scale", 1)))
    if aggregate == "value" and len(out) != 1:
        raise QueryError(f"'value' needs one row, {len(out)} match {filters} in {stem}")
    return out


def evaluate(query: str, folder: Path = RESULTS) -> float | tuple[float, float]:
    aggregate = parse(query)[0]
    xs = values(query, folder)
    if aggregate == "range":
        return min(xs), max(xs)
    reduce = {"min": min, "max": max, "mean": statistics.mean, "median": statistics.median}
    return reduce.get(aggregate, lambda v: v[0])(xs)


def render(query: str, folder: Path = RESULTS) -> str:
    """The text a ``:result:`` role shows for a query."""
    spec = parse(query)[4].get("fmt", ".3g")
    result = evaluate(query, folder)
    if isinstance(result, tuple):
        low, high = (format(x, spec) for x in result)
        return low if low == high else f"{low}\N{EN DASH}{high}"
    return format(result, spec)


def files_of(query: str) -> list[Path]:
    return [RESULTS / f"{parse(query)[1]}.json"]


class ResultRole(SphinxRole):
    """``:result:`QUERY``` -> the number, as plain text."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        try:
            text = render(self.text)
        except (QueryError, ValueError, KeyError, ZeroDivisionError) as err:
            msg = self.inliner.reporter.error(f":result:`{self.text}`: {err}", line=self.lineno)
            return [nodes.problematic(self.rawtext, self.rawtext)], [msg]
        for path in files_of(self.text):
            self.env.note_dependency(str(path))
        return [nodes.inline(self.rawtext, text, classes=["benchmark-number"])], []


_CONDITION = re.compile(r"^(?P<query>.+?)\s*(?P<op>[<>])\s*(?P<bound>[-+.\deE]+)$")


class ResultIf(Directive):
    """``.. result-if:: QUERY > NUMBER``: the content, while the comparison holds."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True

    def run(self) -> list[nodes.Node]:
        match = _CONDITION.match(self.arguments[0])
        if not match:
            raise self.error(f"result-if: expected 'QUERY > NUMBER', got {self.arguments[0]!r}")
        try:
            value = evaluate(match["query"])
        except (QueryError, ValueError, KeyError) as err:
            raise self.error(f"result-if: {err}") from None
        env = self.state.document.settings.env
        for path in files_of(match["query"]):
            env.note_dependency(str(path))
        value = max(value) if isinstance(value, tuple) else value
        bound = float(match["bound"])
        if not (value > bound if match["op"] == ">" else value < bound):
            return []
        container = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> dict:
    app.add_role("result", ResultRole())
    app.add_directive("result-if", ResultIf)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
