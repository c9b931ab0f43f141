"""The packages import downwards only (DESIGN.md, "Where each thing lives").

bouncewatch/ is the command line and process plumbing on top: nothing below it imports it.
Within streams/, no two modules import each other, also not from inside a function (a
cycle hidden that way is still a cycle). Read from the source, so no module is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BELOW_THE_CLI = ("streams", "alerts", "aggregation", "delivery", "schemas")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (TYPE_CHECKING blocks and functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("package", BELOW_THE_CLI)
def test_nothing_below_the_cli_imports_it(package: str) -> None:
    offenders = {
        _module(path): sorted(m for m in _imports(path) if m.split(".")[0] == "bouncewatch")
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_no_two_stream_modules_import_each_other() -> None:
    modules = {_module(p): p for p in sorted((ROOT / "streams").glob("*.py"))}
    edges = {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or reaches(n, goal, seen | {n}) for n in edges[start] - seen)

    cycles = sorted(name for name in modules if reaches(name, name, set()))
    assert cycles == []
