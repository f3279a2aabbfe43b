"""The project layout of docs/DESIGN.md: scripts are thin command lines over modelzoo/ and utils/, no script imports
another script (shared code lives in a module), test files mirror modules, numpy-only modules load no TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
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


# test files of features that cut across modules; every other test file is named after the module it tests
FEATURE_TESTS = {"docker", "layout", "mixed_precision", "notebooks", "recompute", "tf1_checkpoints", "weight_tools"}


def test_test_files_are_named_after_their_module_and_import_no_other_test_file():
    modules = {path.stem for package in ("utils", "modelzoo") for path in (REPO / package).glob("*.py")}
    modules |= {path.stem for path in REPO.glob("*.py")} | {"synthetic"}
    modules |= {f"synthetic_{path.stem}" for path in (REPO / "utils" / "synthetic").glob("*.py")}
    tests = sorted((REPO / "tests").glob("test_*.py"))
    assert len(tests) > 30
    for path in tests:
        assert path.stem.removeprefix("test_") in modules | FEATURE_TESTS, path.name
        imports = [node.module for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.ImportFrom) and node.module]
        assert not [name for name in imports if name.removeprefix("tests.").startswith("test_")], path.name


def test_modules_that_need_only_numpy_do_not_import_tensorflow():
    """TensorFlow takes seconds and hundreds of MB to import: the metrics, class lists, georeference, options and
    command-line helpers must not pull it in (``utils/__init__`` only installs the hook that silences it)."""
    light = ["utils.metrics", "utils.classes", "utils.georef", "utils.cli", "utils.fsio", "utils.options",
             "utils.trainoptions", "utils.bands", "modelzoo.params"]
    code = f"import sys, {', '.join(light)}; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
