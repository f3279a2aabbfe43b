"""The project layout of docs/DESIGN.md: scripts are thin command lines over modelzoo/ and utils/, and no script
imports another script (shared code lives in a module)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_script_imports_another_script():
    scripts = {path.stem: path for path in REPO.glob("*.py")}
    assert {"train", "evaluate", "predict", "compare_graphs", "copy_network_weights"} <= set(scripts)
    for name, path in scripts.items():
        assert not imported_modules(path) & (set(scripts) - {name}), name
    for package in ("utils", "modelzoo"):
        for path in (REPO / package).rglob("*.py"):
            assert not imported_modules(path) & set(scripts), path
