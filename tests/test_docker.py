"""The Dockerfile (no Docker engine runs here): its base image is TensorFlow 2.21, everything it copies and every
script it runs exists and is not excluded by .dockerignore, its pins are exact, and the original's conventions hold."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile: comments dropped, continuation lines joined, spaces collapsed."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), " ".join(line.split()[1:])) for line in joined.splitlines()
            if line.strip()]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore ``patterns`` exclude ``path`` (or a folder above it); ``!`` re-includes, ``**/``
    matches in any folder."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:]) for prefix in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            result = not negate
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    return [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_parser_and_ignore_matching():
    parsed = instructions("# c\nFROM a:1\nRUN x \\\n  && y\nENV a=1 \\\n    b=2\n")
    assert parsed == [("FROM", "a:1"), ("RUN", "x && y"), ("ENV", "a=1 b=2")]
    patterns = ["data", "**/__pycache__", "*.egg-info"]
    assert ignored("data/synthetic/x", patterns) and ignored("utils/__pycache__/a.pyc", patterns)
    assert ignored("mtlcc_tf2.egg-info/PKG-INFO", patterns)
    assert not ignored("utils/dataset.py", patterns) and not ignored("database.py", patterns)


def test_base_image_is_the_tensorflow_of_the_pins(dockerfile):
    bases = [args for name, args in dockerfile if name == "FROM"]
    (pin,) = re.findall(r'"tensorflow==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert bases == [f"tensorflow/tensorflow:{pin}-gpu"] == ["tensorflow/tensorflow:2.21.0-gpu"]


def test_copied_sources_exist_and_are_not_ignored(dockerfile, ignore_patterns):
    copies = [shlex.split(args) for name, args in dockerfile if name in ("COPY", "ADD")]
    assert copies
    for *sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
    needed = ["pyproject.toml", "README.md", "modelzoo/seqencmodel.py", "utils/cli.py", "activations.py",
              "tfrecord2tif.py", "tif2tfrecord.py"]
    assert [path for path in needed if ignored(path, ignore_patterns)] == []
    for path in (".venv/bin/python", "data/synthetic/240/dataset.ini", "tmp/run/x", ".git/HEAD",
                 "utils/__pycache__/cli.cpython-311.pyc"):
        assert ignored(path, ignore_patterns), path


def test_run_steps_name_existing_scripts_and_exact_pins(dockerfile):
    commands = " ".join(args for name, args in dockerfile if name in ("RUN", "CMD"))
    scripts = re.findall(r"([\w/]+\.py)\b", commands)
    entry_points = {path.name for path in ROOT.glob("*.py")} | {"modelzoo/seqencmodel.py"}
    assert set(scripts) == entry_points  # every script of the project starts in the image
    assert [script for script in scripts if not (ROOT / script).is_file()] == []
    install = next(args for name, args in dockerfile if name == "RUN" and "pip install" in args)
    words = shlex.split(install.split("&&")[0])
    extras = [word for word in words if word.startswith(".[")]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert extras == [".[dev]"] and "[project.optional-dependencies]\ndev = [" in pyproject
    packages = [word for word in words[words.index("install") + 1:] if not word.startswith(("-", "."))]
    assert packages and all(re.fullmatch(r"[\w.-]+==[\w.]+", package) for package in packages), packages
    assert "tensorflow" not in " ".join(packages)  # the image's TensorFlow is kept


def test_original_conventions(dockerfile):
    env = " ".join(args for name, args in dockerfile if name == "ENV")
    assert "datadir=/data" in env.split() and "modeldir=/model" in env.split()
    assert ("WORKDIR", "/MTLCC") in dockerfile and ("EXPOSE", "8888") in dockerfile
    assert "mkdir -p /data /model" in " ".join(args for name, args in dockerfile if name == "RUN")
    assert dockerfile[-1] == ("CMD", '["/bin/bash"]')
