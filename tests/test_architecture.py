"""The one-way import rule of ARCHITECTURE.md, read from the source (every import statement,
at module top or inside a function body, ``TYPE_CHECKING`` blocks included).

entry (``launch``, ``benchmarks``) -> roles (``producer``, ``pipeline``, ``spark_jobs``,
``dashboards``) -> core (``clickstream``): the core imports no role and no entry package; a
role imports the core only, never another role or an entry package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE = "clickstream"
ROLES = ("producer", "pipeline", "spark_jobs", "dashboards")
ENTRY = ("launch", "benchmarks")
# ``python -m clickstream`` runs this file as a script and it is never imported, so it may
# hand over to the entry layer without the core depending on it.
EXEMPT = {Path("clickstream/__main__.py")}


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in the file (relative ones stay inside)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args):
            name = _leading_text(node.args[0])  # importlib.import_module("pkg.mod") or f"pkg.{x}"
            if name:
                found.add(name.split(".")[0])
    return found


def _leading_text(arg: ast.expr) -> str:
    if isinstance(arg, ast.JoinedStr) and arg.values:
        arg = arg.values[0]
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else ""


def forbidden_for(package: str) -> set[str]:
    if package == CORE:
        return {*ROLES, *ENTRY}
    if package in ROLES:
        return ({*ROLES} - {package}) | set(ENTRY)
    return set()


def violations(repo: Path) -> list[str]:
    out = []
    for package in (CORE, *ROLES):
        for path in sorted((repo / package).rglob("*.py")):
            rel = path.relative_to(repo)
            if rel in EXEMPT:
                continue
            for bad in sorted(imported_packages(path) & forbidden_for(package)):
                out.append(f"{rel} imports {bad}")
    return out


def test_layers_import_one_way_only() -> None:
    assert violations(REPO) == []


@pytest.mark.parametrize(("package", "source", "bad"), [
    ("clickstream", "def f():\n    from pipeline import Pipeline\n", "pipeline"),
    ("clickstream", "import launch.cli.main\n", "launch"),
    ("producer", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dashboards.app\n",
     "dashboards"),
    ("spark_jobs", "import importlib\nimportlib.import_module(f'pipeline.{1}')\n", "pipeline"),
    ("dashboards", "from launch import services\n", "launch"),
])
def test_a_backward_import_is_found(tmp_path: Path, package: str, source: str, bad: str) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "m.py").write_text(source)
    assert violations(tmp_path) == [f"{package}/m.py imports {bad}"]


def test_relative_and_own_imports_are_allowed(tmp_path: Path) -> None:
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "m.py").write_text("from . import graph\nimport pipeline.worker\n"
                                                 "from clickstream.events import Click\n")
    assert violations(tmp_path) == []
