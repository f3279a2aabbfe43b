"""The shape of the code base: what importing a module costs (seconds and peak memory in a fresh process, and whether
TensorFlow came along), and the largest modules and classes in lines.

    python benchmarks/code_structure.py [--modules utils.metrics utils.dataset] [--top 5]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.fresh_process import peak_rss_mib, run_fresh  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("*.py", "utils/**/*.py", "modelzoo/*.py")


def child(module: str) -> None:
    """Import ``module`` and print the seconds, the peak RSS and whether TensorFlow was imported, as JSON."""
    start = time.perf_counter()
    __import__(module)
    print(json.dumps({"seconds": time.perf_counter() - start, "rss_mib": peak_rss_mib(),
                      "tensorflow": "tensorflow" in sys.modules}))


def sizes(top: int) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The ``top`` largest modules and classes of the project's code (not the tests), in lines."""
    modules, classes = [], []
    for pattern in SOURCES:
        for path in REPO.glob(pattern):
            text = path.read_text(encoding="utf-8")
            name = str(path.relative_to(REPO))
            modules.append((len(text.splitlines()), name))
            classes += [(node.end_lineno - node.lineno + 1, f"{name}: {node.name}")
                        for node in ast.walk(ast.parse(text)) if isinstance(node, ast.ClassDef)]
    return sorted(modules, reverse=True)[:top], sorted(classes, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--modules", nargs="+", default=["utils.metrics", "utils.georef", "utils.trainoptions",
                                                         "utils.dataset", "utils.training"])
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"{'import':<22}{'seconds':>9}{'peak MiB':>10}  TensorFlow")
    for module in args.modules:
        row = run_fresh(__file__, module)
        print(f"{module:<22}{row['seconds']:>9.2f}{row['rss_mib']:>10.0f}  {'yes' if row['tensorflow'] else 'no'}")
    modules, classes = sizes(args.top)
    print(f"\n{'largest modules':<44}{'lines':>6}")
    for lines, name in modules:
        print(f"{name:<44}{lines:>6}")
    print(f"\n{'largest classes':<44}{'lines':>6}")
    for lines, name in classes:
        print(f"{name:<44}{lines:>6}")


if __name__ == "__main__":
    main()
