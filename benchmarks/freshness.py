"""Is a result measured on the code it describes? Checked, not remembered.

Every benchmark script declares the modules it exercises (``MODULES``, next to its
:func:`_common.write_results` call). The writer records, for every Python file of those
modules and for the script itself, a hash of its *code*: the source parsed and printed back
without docstrings and comments (``ast.unparse``), so a reworded docstring does not age a
result, and any change to what runs does. A result is

- ``fresh``: every recorded file still hashes the same and the declared modules have gained
  no file;
- ``stale``: a recorded file changed or disappeared, or a module gained a file (the changed
  paths are listed);
- ``kept``: named in ``benchmarks/kept.json`` with the reason it is kept on purpose (a run
  longer than its budget, an exploration on record); the reason is shown on the benchmarks
  page. A kept result is never called fresh, and its verdicts still read as measured;
- ``unrecorded``: written before this check existed and not kept: treated as stale.

Standard library only: the docs' extension, the tests and the scripts import it.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KEPT = ROOT / "benchmarks" / "kept.json"
STATES = ("fresh", "stale", "kept", "unrecorded")


def code_hash(source: str) -> str:
    """Hash of ``source``'s code: docstrings and comments dropped, layout normalised."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()[:16]


def module_files(modules: Iterable[str], root: Path = ROOT) -> list[str]:
    """The Python files of dotted ``modules`` (``sitransport.train`` is the package folder,
    every ``.py`` under it; ``sitransport.exact`` the file), relative to ``root``."""
    out: set[str] = set()
    for name in modules:
        base = root.joinpath(*name.split("."))
        if base.is_dir() and (base / "__init__.py").is_file():
            out.update(p.relative_to(root).as_posix() for p in base.rglob("*.py"))
        elif base.with_suffix(".py").is_file():
            out.add(base.with_suffix(".py").relative_to(root).as_posix())
        else:
            raise ValueError(f"modules: {name!r} is neither a package nor a module under {root}")
    return sorted(out)


def fingerprint(modules: Sequence[str], script: str | None, root: Path = ROOT) -> dict:
    """What :func:`_common.write_results` records: the declared modules and the code hash of
    each of their files and of ``script`` (a path relative to ``root``)."""
    files = module_files(modules, root)
    if script is not None and (root / script).is_file() and script not in files:
        files.append(script)
    return {
        "modules": list(modules),
        "files": {f: code_hash((root / f).read_text(encoding="utf-8")) for f in files},
    }


@dataclass(frozen=True)
class Freshness:
    """Whether one result file describes today's code (see the module's docstring)."""

    stem: str
    state: str
    commit: str = "unknown"
    date: str = ""
    changed: tuple[str, ...] = ()
    reason: str = ""
    modules: tuple[str, ...] = field(default=())

    @property
    def current(self) -> bool:
        """Fresh or kept on purpose: what the tests require of every committed result."""
        return self.state in ("fresh", "kept")

    def describe(self) -> str:
        """One line for people: the state, where it was measured and why it is not fresh."""
        where = f"measured at {self.commit[:7]}" + (f" on {self.date[:10]}" if self.date else "")
        if self.state == "fresh":
            return f"fresh ({where})"
        if self.state == "kept":
            return f"kept ({where}): {self.reason}"
        if self.state == "unrecorded":
            return f"stale ({where}, before code fingerprints were recorded)"
        return f"stale ({where}; changed since: {', '.join(self.changed)})"


def kept_reasons(path: Path = KEPT) -> dict[str, str]:
    """``{stem: reason}`` of the results kept on purpose."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    for stem, reason in data.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{path}: the reason for keeping {stem!r} must be a non-empty text")
    return data


def check(payload: dict, stem: str, root: Path = ROOT, kept: dict[str, str] | None = None):
    """The :class:`Freshness` of a result's JSON ``payload`` against the code under ``root``."""
    env = payload.get("environment", {})
    commit, date = env.get("git_sha", "unknown"), env.get("date", "")
    kept = kept_reasons() if kept is None else kept
    if stem in kept:
        return Freshness(stem, "kept", commit, date, reason=kept[stem])
    code = payload.get("code")
    if not code:
        return Freshness(stem, "unrecorded", commit, date)
    recorded: dict[str, str] = code["files"]
    modules = tuple(code["modules"])
    changed = []
    for path, digest in recorded.items():
        file = root / path
        if not file.is_file() or code_hash(file.read_text(encoding="utf-8")) != digest:
            changed.append(path)
    try:
        now = module_files(modules, root)
    except ValueError:
        now = []
        changed.append("(a declared module no longer exists)")
    changed += [f"{p} (new)" for p in now if p not in recorded]
    state = "stale" if changed else "fresh"
    return Freshness(stem, state, commit, date, tuple(sorted(changed)), modules=modules)


def freshness(stem: str, folder: Path = RESULTS, root: Path = ROOT) -> Freshness:
    """The :class:`Freshness` of ``<folder>/<stem>.json``."""
    payload = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
    return check(payload, stem, root)


def report(folder: Path = RESULTS) -> list[Freshness]:
    """The freshness of every result file in ``folder``."""
    return [freshness(p.stem, folder) for p in sorted(folder.glob("*.json"))]


if __name__ == "__main__":
    for f in report():
        print(f"{f.stem:40s} {f.describe()}")
