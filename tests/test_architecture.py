"""The package's layers: imports between ``sitransport`` modules point one way.

Every module of the package is parsed with :mod:`ast` (nothing is imported) and each import
of a sitransport module becomes an edge of a graph: module-level imports and imports inside
functions alike (a lazy import closes a cycle as surely as a top-level one; it only delays
the failure to the first call). ``from sitransport import x`` is an edge to the submodule
``sitransport.x`` when there is one, else to the package ``sitransport`` itself. Imports
under ``if TYPE_CHECKING:`` never run and are left out. Importing a module does not count as
importing its parent package (``__init__``), as in the import linters.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sitransport"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``where``: the module itself (``name`` is ``None``)
    or its attribute ``name``, bound as ``alias`` (``None``: under its own name)."""

    source: str
    target: str
    name: str | None
    alias: str | None
    where: str


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _known(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of the dotted ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    """The edges of one module, with the line and the function each import is in."""

    def __init__(self, module: str, path: Path, modules: dict[str, Path], base: Path) -> None:
        self.module, self.path, self.modules = module, path, modules
        self.root, self.base = next(iter(modules)).split(".")[0], base
        self.scope: list[str] = []
        self.edges: list[Edge] = []

    def _where(self, node: ast.stmt) -> str:
        inside = f" (lazy, in {'.'.join(self.scope)})" if self.scope else ""
        return f"{self.path.relative_to(self.base).as_posix()}:{node.lineno}{inside}"

    def _add(self, node: ast.stmt, target: str, name: str | None, alias: str | None) -> None:
        if target and target != self.module:
            self.edges.append(Edge(self.module, target, name, alias, self._where(node)))

    def _scoped(self, node: ast.AST) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # the body never runs
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == self.root:
                self._add(node, _known(alias.name, self.modules), None, alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node)
        if base.split(".")[0] != self.root:
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in self.modules:  # from sitransport import latent: the submodule
                self._add(node, sub, None, alias.asname)
            else:
                self._add(node, _known(base, self.modules), alias.name, alias.asname)

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = self.module.split(".")
        if self.path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        return ".".join([*package, node.module] if node.module else package)


def import_edges(package: Path = PACKAGE) -> list[Edge]:
    """Every import of a module of ``package`` by another, in source order."""
    modules = module_files(package)
    edges = []
    for name, path in modules.items():
        collector = _ImportCollector(name, path, modules, package.parent)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges += collector.edges
    return edges


def _graph(edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    return graph


def _shortest_cycle(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The shortest path ``start -> ... -> start`` (breadth first), or ``None``."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """The shortest import cycle through each module that is on one, without repeats."""
    graph = _graph(edges)
    cycles, seen = [], set()
    for module in sorted(graph):
        cycle = _shortest_cycle(graph, module)
        if cycle is None:
            continue
        turn = cycle[:-1].index(min(cycle[:-1]))
        key = tuple(cycle[turn:-1] + cycle[:turn])
        if key not in seen:
            seen.add(key)
            cycles.append([*key, key[0]])
    return cycles


def describe(cycles: list[list[str]], edges: list[Edge]) -> str:
    """Each cycle, with the file and line of each of its imports."""
    places: dict[tuple[str, str], dict[str, None]] = {}
    for e in edges:  # one line per statement, however many names it imports
        places.setdefault((e.source, e.target), {})[e.where] = None
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle))
        for a, b in zip(cycle[:-1], cycle[1:], strict=True):
            lines.append(f"    {a} -> {b}: {', '.join(places[(a, b)])}")
    return "\n".join(lines)


def private_imports(edges: list[Edge]) -> list[tuple[Edge, str]]:
    """Imports of a private name (``_x``) of another module, or of a public one bound to a
    private alias (a hook for monkeypatching). Private *modules* (``sitransport._io``) are
    the package's own lower layers: importing their public names is fine."""
    found = []
    for e in edges:
        if e.name is None:
            continue
        if any(n and n.startswith("_") and not n.endswith("__") for n in (e.name, e.alias)):
            shown = f"{e.name} as {e.alias}" if e.alias else e.name
            found.append((e, f"from {e.target} import {shown}"))
    return found


# ------------------------------------------------------------------------------- the package
def test_the_graph_sees_the_whole_package():
    """Not vacuous: every module is parsed, and known edges of every kind are found."""
    modules = module_files(PACKAGE)
    assert {"sitransport", "sitransport.flow", "sitransport.io", "sitransport.nn.mlp"} <= set(
        modules
    )
    edges = import_edges()
    pairs = {(e.source, e.target) for e in edges}
    assert ("sitransport", "sitransport.latent") in pairs  # from sitransport import (latent, ...)
    assert ("sitransport.io", "sitransport.flow.latent") in pairs
    assert ("sitransport.nn", "sitransport.nn.mlp") in pairs
    assert any("lazy" in e.where for e in edges)  # imports inside functions are seen too


def test_no_import_cycles():
    edges = import_edges()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles among sitransport modules:\n" + describe(cycles, edges)


def test_persistence_layers():
    """``io`` sits above the flows it reads; the ``TransportFlow`` modules (``flow`` and its
    submodules but ``flow.latent``) import neither ``io`` nor the latent module."""
    targets: dict[str, set[str]] = {}
    for e in import_edges():
        targets.setdefault(e.source, set()).add(e.target)
    latent = {"sitransport.latent", "sitransport.flow.latent"}
    flows = [m for m in module_files(PACKAGE) if m.split(".")[:2] == ["sitransport", "flow"]]
    flows = [m for m in flows if m not in latent]
    assert {"sitransport.flow", "sitransport.flow.transport"} <= set(flows)
    for module in flows:
        assert not {"sitransport.io", *latent} & targets.get(module, set()), module
    assert "sitransport.io" not in targets["sitransport.flow.latent"]


def test_no_private_names_imported_across_modules():
    found = private_imports(import_edges())
    assert not found, "\n".join(f"{e.where}: {text}" for e, text in found)


# ------------------------------------------------------------------------------ the checker
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "sitransport"
    for name, source in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source, encoding="utf-8")
    return root


def test_a_lazy_import_closes_a_cycle(tmp_path):
    root = _package(
        tmp_path,
        {
            "low.py": "from sitransport import high\n",
            "high.py": "def f():\n    from sitransport.low import g\n",
        },
    )
    edges = import_edges(root)
    assert find_cycles(edges) == [["sitransport.high", "sitransport.low", "sitransport.high"]]
    message = describe(find_cycles(edges), edges)
    assert "sitransport/high.py:2 (lazy, in f)" in message
    assert "sitransport/low.py:1" in message


def test_relative_imports_and_longer_cycles_are_resolved(tmp_path):
    root = _package(
        tmp_path,
        {
            "a.py": "from .b import x\n",
            "sub/__init__.py": "from . import c\n",
            "sub/c.py": "from .. import a\n",
            "b.py": "import sitransport.sub.c\n",
        },
    )
    cycles = find_cycles(import_edges(root))
    assert cycles == [
        ["sitransport.a", "sitransport.b", "sitransport.sub.c", "sitransport.a"],
    ]


def test_type_checking_imports_and_parent_packages_are_no_edges(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "from sitransport.low import g\n",
            "low.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from sitransport.high import h\nelse:\n    import os\n",
            "high.py": "from sitransport.low import g\n",
        },
    )
    edges = import_edges(root)
    assert find_cycles(edges) == []
    assert {(e.source, e.target) for e in edges} == {
        ("sitransport", "sitransport.low"),
        ("sitransport.high", "sitransport.low"),
    }


def test_private_imports_are_named(tmp_path):
    root = _package(
        tmp_path,
        {
            "_low.py": "def hook(): pass\n_secret = 1\n",
            "a.py": "from sitransport._low import hook\nfrom sitransport import _low\n",
            "b.py": "from sitransport._low import _secret\n"
            "from sitransport._low import hook as _hook\n",
        },
    )
    found = private_imports(import_edges(root))
    assert [text for _, text in found] == [
        "from sitransport._low import _secret",
        "from sitransport._low import hook as _hook",
    ]


# ------------------------------------------------------------------------------ the layers
#: Each top-level module or subpackage of ``sitransport`` and its layer, bottom (0) to top.
#: A module imports only from lower layers; in the two bottom layers (foundations and the
#: families built on them) members may also import each other (the cycle test keeps that
#: acyclic). Above them, modules of one layer never import each other: ``flow`` (inference)
#: and ``train`` (the trainer) are siblings, so loading or sampling a flow never imports the
#: code that fits it.
LAYERS: dict[str, int] = {
    # foundations: errors, input checks, plain-data specs, file plumbing, shared interfaces
    **dict.fromkeys(
        [
            "errors",
            "_validation",
            "_spec",
            "_io",
            "_tree",
            "_safefile",
            "_unpickle",
            "_geomloss",
            "protocols",
        ],
        0,
    ),
    # families: what a density is, paths, couplings, losses, solvers
    **dict.fromkeys(
        [
            "ends",
            "interpolants",
            "couplings",
            "losses",
            "ode",
            "score",
            "paths",
            "distributed",
            "exact",
            "callbacks",  # the training callbacks (the settings check their type)
        ],
        1,
    ),
    "config": 2,  # frozen settings records (they check themselves with the families' registries)
    "nn": 3,  # networks and the one spec <-> module builder
    **dict.fromkeys(["metrics", "plot"], 4),  # measures and figures of samples and flows
    **dict.fromkeys(["datasets", "images", "flow", "train"], 5),
    **dict.fromkeys(["fitting", "io", "latent"], 6),  # entry points; latent: the old path
    "_cli_files": 6,  # the files the command reads (below cli, beside the entry points)
    **dict.fromkeys(["cli", "anndata"], 7),  # anndata: fit and results on AnnData objects
    **dict.fromkeys(["", "__main__"], 8),  # the package itself re-exports everything
}
#: Layers whose members may import each other.
OPEN_LAYERS = (0, 1)


def layer_of(module: str) -> str:
    """``sitransport.flow.transport`` -> ``flow``; ``sitransport`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(edges: list[Edge]) -> list[str]:
    """Imports that point up, or sideways between members of a closed layer."""
    found = []
    for e in edges:
        a, b = layer_of(e.source), layer_of(e.target)
        if a == b:
            continue
        la, lb = LAYERS[a], LAYERS[b]
        if lb > la or (lb == la and la not in OPEN_LAYERS):
            found.append(f"{e.where}: {e.source} (layer {la}) imports {e.target} (layer {lb})")
    return found


def test_every_module_has_a_layer():
    assert {layer_of(m) for m in module_files(PACKAGE)} == set(LAYERS)


def test_imports_point_down_the_layers():
    found = layer_violations(import_edges())
    assert not found, "imports against the layers:\n" + "\n".join(found)


def _closure(edges: list[Edge], start: str) -> set[str]:
    graph = _graph(edges)
    seen, todo = set(), [m for m in graph if m == start or m.startswith(start + ".")]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph[node]
    return seen


def test_a_flow_never_imports_the_code_that_fits_or_loads_it():
    """Loading or sampling a flow imports neither the trainer nor fit (nor ``io``)."""
    reached = {layer_of(m) for m in _closure(import_edges(), "sitransport.flow")}
    assert not {"train", "fitting", "io", "cli"} & reached, sorted(reached)
    reached = {layer_of(m) for m in _closure(import_edges(), "sitransport.config")}
    assert not {"train", "fitting", "flow", "nn"} & reached, sorted(reached)


def test_the_layer_check_can_fail(tmp_path):
    root = _package(
        tmp_path,
        {
            "flow/__init__.py": "from sitransport.train import Trainer\n",
            "train/__init__.py": "from sitransport.config import x\n",
            "config.py": "from sitransport.nn import y\n",
            "nn.py": "",
        },
    )
    found = layer_violations(import_edges(root))
    assert [f.split(": ", 1)[1] for f in found] == [
        "sitransport.config (layer 2) imports sitransport.nn (layer 3)",
        "sitransport.flow (layer 5) imports sitransport.train (layer 5)",
    ]
