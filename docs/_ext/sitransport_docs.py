"""Sphinx extension of the sitransport docs: the ``benchmark-results`` directive, and the
"[docs]" back-links of the highlighted sources (see :func:`_alias_imported_ids`).

``.. benchmark-results:: ../benchmarks/results`` renders every ``*.md`` result file of that
folder (as written by ``benchmarks/_common.py``), sorted by name, as a section: its title,
the command that produced it, the environment line, the table and the notes, followed by the
``*.png`` figures of the folder that it is the first to name (figures no result file names
close the page). A new result file therefore appears on the page without editing it. A
table whose rows do not split into the header's number of cells is shown verbatim rather
than guessed at.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.ext.viewcode import _get_full_modname
from sphinx.util import logging

logger = logging.getLogger(__name__)

_CELL_SEP = " | "


def _inline(text: str) -> list[nodes.Node]:
    """Plain text with Markdown ``code`` spans as literal nodes (no other markup)."""
    parts = re.split(r"`([^`]+)`", text)
    return [
        nodes.literal(part, part) if k % 2 else nodes.Text(part)
        for k, part in enumerate(parts)
        if part
    ]


def _split_row(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[2:] if inner.startswith("| ") else inner[1:]
    inner = inner[:-2] if inner.endswith(" |") else inner[:-1]
    return [cell.strip() for cell in inner.split(_CELL_SEP)]


def _table(lines: list[str]) -> nodes.Node:
    """A docutils table of a Markdown table; verbatim if any row's cells do not line up."""
    header = _split_row(lines[0])
    rows = [_split_row(line) for line in lines[2:]]
    if len(lines) < 3 or any(len(r) != len(header) for r in rows):
        text = "\n".join(lines)
        return nodes.literal_block(text, text)
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


def render_result(path: Path, document: nodes.document) -> nodes.section:
    """One ``benchmarks/results/*.md`` file as a section."""
    lines = path.read_text(encoding="utf-8").splitlines()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), path.stem)
    section = nodes.section(ids=[nodes.make_id(f"result-{path.stem}")], names=[path.stem])
    section += nodes.title(title, title)
    document.note_implicit_target(section)
    block: list[str] = []

    def flush() -> None:
        if block:
            section.append(_table(block))
            block.clear()

    for line in lines:
        if line.startswith("# "):
            continue
        if line.lstrip().startswith("|"):
            block.append(line)
            continue
        flush()
        text = line.rstrip()
        match = re.fullmatch(r"Command:\s*`([^`]+)`", text)
        if match:
            section += nodes.paragraph("", "Command:")
            section += nodes.literal_block(match[1], match[1], language="bash")
        elif text:
            section += nodes.paragraph("", "", *_inline(text))
    flush()
    section += nodes.paragraph(
        "", "", nodes.Text("Source: "), nodes.literal(str(path.name), path.name)
    )
    return section


def _figures(files: list[Path]) -> dict[Path | None, list[Path]]:
    """Each ``*.png`` of the folder under the first result file that names it; figures no
    result file names are listed under ``None``."""
    pngs = sorted(files[0].parent.glob("*.png"))
    out: dict[Path | None, list[Path]] = {}
    for png in pngs:
        owner = next((md for md in files if png.name in md.read_text(encoding="utf-8")), None)
        out.setdefault(owner, []).append(png)
    return out


class BenchmarkResults(Directive):
    """``.. benchmark-results:: <folder relative to this document>``."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        doc_dir = Path(env.doc2path(env.docname)).parent
        folder = (doc_dir / self.arguments[0]).resolve()
        files = sorted(folder.glob("*.md"))
        if not files:
            raise self.error(f"benchmark-results: no *.md files in {folder}")
        env.sitransport_benchmark_docs = getattr(env, "sitransport_benchmark_docs", set())
        env.sitransport_benchmark_docs.add(env.docname)
        figures = _figures(files)
        out: list[nodes.Node] = []
        for md in files:
            env.note_dependency(str(md))
            out.append(render_result(md, self.state.document))
        if figures.get(None):
            title = "Other figures"
            section = nodes.section(ids=["result-other-figures"], names=["other figures"])
            section += nodes.title(title, title)
            out.append(section)
        sections = dict(zip([*files, None], out, strict=False))
        for owner, pngs in figures.items():
            for png in pngs:
                env.note_dependency(str(png))
                rel = Path(self.arguments[0]) / png.name
                sections[owner] += nodes.paragraph("", "", nodes.literal(png.name, png.name))
                sections[owner] += nodes.image(uri=rel.as_posix(), alt=png.stem)
        return out


def _always_reread(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Result files may be added between builds: re-read the pages that list them."""
    return sorted(getattr(env, "sitransport_benchmark_docs", set()))


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
    app.connect("env-get-outdated", _always_reread)
    app.connect("doctree-read", _alias_imported_ids)
    app.connect("env-updated", _viewcode_link_to_source_module)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
