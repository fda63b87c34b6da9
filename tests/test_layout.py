"""The tests mirror the package: every folder directly under ``tests/`` is named after a
subpackage or a top-level module of ``sitransport`` (``_validation`` is spelled
``validation``: a leading underscore is dropped), so a test's place says what it tests. Files
directly under ``tests/`` (shared helpers, and tests across many layers) are allowed."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "sitransport"


def package_names(package: Path) -> set[str]:
    """Names of the subpackages and top-level modules of ``package``, leading ``_`` dropped."""
    names = set()
    for path in package.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            name = path.name
        elif path.is_file() and path.suffix == ".py" and path.stem != "__init__":
            name = path.stem
        else:
            continue
        names.add(name.lstrip("_"))
    return names


def misplaced_folders(tests: Path, package: Path) -> list[str]:
    """Folders directly under ``tests`` that hold a test file and name no part of ``package``."""
    names = package_names(package)
    return sorted(
        folder.name
        for folder in tests.iterdir()
        if folder.is_dir()
        and folder.name not in names
        and any(
            f.stem.startswith("test_") or f.stem.endswith("_test") for f in folder.rglob("*.py")
        )
    )


def _fake_tree(root: Path) -> tuple[Path, Path]:
    package = root / "pkg"
    for sub in ("flow", "nn"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    for module in ("__init__", "cli", "_validation"):
        (package / f"{module}.py").write_text("")
    tests = root / "tests"
    for folder in ("flow", "nn", "cli", "validation"):
        (tests / folder).mkdir(parents=True)
        (tests / folder / "test_x.py").write_text("")
    (tests / "test_top.py").write_text("")
    (tests / "__pycache__").mkdir()  # no test file: not a misplaced folder
    return tests, package


def test_a_tree_that_mirrors_its_package_passes(tmp_path):
    tests, package = _fake_tree(tmp_path)
    assert misplaced_folders(tests, package) == []


def test_a_folder_that_names_no_module_fails(tmp_path):
    tests, package = _fake_tree(tmp_path)
    for folder in ("unit", "_validation", "__init__"):
        (tests / folder / "deep").mkdir(parents=True)
        (tests / folder / "deep" / "test_y.py").write_text("")
    assert misplaced_folders(tests, package) == ["__init__", "_validation", "unit"]


def test_the_tests_mirror_the_package():
    assert misplaced_folders(TESTS, PACKAGE) == [], "tests/<name>/ must name a sitransport part"
