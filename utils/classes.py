"""Class lists: ``classes.txt`` (raw class ids and names; list position = class index, 0 = unknown), the original
dataset's list, and the one mapping of ids through a table (raw id -> class index, ``--labelmap`` own id -> raw id)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from utils.cli import UserError
from utils.fsio import read_text

_UNSAFE_IN_NAMES = re.compile(r"[^\w.-]")  # characters of class names not kept in folder names


def lookup(keys: Iterable[int], values: Iterable[int], ids: npt.ArrayLike, missing: int = 0) -> np.ndarray:
    """``ids`` (any shape) mapped through the table ``keys[i] -> values[i]`` (int64); ids not in ``keys`` give
    ``missing``."""
    keys = np.asarray(list(keys), dtype=np.int64)
    values = np.asarray(list(values), dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    position = order[np.clip(np.searchsorted(keys[order], ids), 0, len(keys) - 1)]
    return np.where(keys[position] == ids, values[position], missing)


@dataclass(frozen=True)
class ClassList:
    """``classes.txt``: raw class ids and names; list position = class index, index 0 = unknown (raw id 0)."""

    ids: tuple[int, ...]
    names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes without unknown (the network's logits)."""
        return len(self.ids) - 1

    @property
    def folder_names(self) -> list[str]:
        """Confidence folder names of the original: ``<k>_<name with underscores>`` for k = 1..num_classes; every
        character but letters, digits, ``.`` and ``-`` becomes ``_`` (names from data never make a path)."""
        return [f"{k}_{_UNSAFE_IN_NAMES.sub('_', name)}" for k, name in enumerate(self.names[1:], start=1)]

    def to_index(self, raw: npt.ArrayLike) -> np.ndarray:
        """Raw class ids → class indices (int32); raw ids not in the list become 0 (unknown)."""
        return lookup(self.ids, range(len(self.ids)), raw).astype(np.int32)

    def text(self) -> str:
        """The list as ``classes.txt`` holds it: ``id|name`` lines."""
        return "".join(f"{raw}|{name}\n" for raw, name in zip(self.ids, self.names, strict=True))

    def to_raw(self, index: npt.ArrayLike) -> np.ndarray:
        """Class indices → raw class ids (int64); raises ValueError for an index outside 0..num_classes."""
        index = np.asarray(index)
        if index.size and (index.min() < 0 or index.max() > self.num_classes):
            raise ValueError(f"class index outside 0..{self.num_classes}")
        return np.asarray(self.ids, dtype=np.int64)[index]


def read_classes(root: str | os.PathLike) -> ClassList:
    """Read ``<root>/classes.txt`` (see :func:`read_classes_file`)."""
    return read_classes_file(Path(root) / "classes.txt")


def read_classes_file(path: str | os.PathLike) -> ClassList:
    """Read a ``classes.txt`` (``id|name`` lines; lines without ``|`` are ignored as in the original)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    ids, names = [], []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if "|" not in line:
            continue
        fields = line.split("|")
        if len(fields) != 2:
            raise UserError(f"{path}:{lineno}: expected 'id|name', got {line.strip()!r}")
        try:
            raw = int(fields[0])
        except ValueError:
            raise UserError(f"{path}:{lineno}: class id {fields[0].strip()!r} is not an integer") from None
        if raw in ids:
            raise UserError(f"{path}:{lineno}: class id {raw} is listed twice")
        ids.append(raw)
        names.append(fields[1].strip())
    if not ids:
        raise UserError(f"{path}: no 'id|name' lines")
    if ids[0] != 0:
        raise UserError(f"{path}: the first class must be raw id 0 (unknown), got {ids[0]}")
    return ClassList(tuple(ids), tuple(names))


# The classes.txt of the original dataset (data_IJGI18): the 17 crop classes of the paper and unknown.
ORIGINAL_CLASSES = ClassList(
    ids=(0, 1, 2, 3, 5, 8, 9, 12, 13, 15, 16, 17, 19, 22, 23, 24, 25, 26),
    names=("unknown", "sugar beet", "summer oat", "meadow", "rape", "hop", "winter spelt", "winter triticale", "beans",
           "peas", "potatoe", "soybeans", "asparagus", "winter wheat", "winter barley", "winter rye", "summer barley",
           "maize"))


def load_classes(path: str | os.PathLike | None) -> tuple[ClassList, str]:
    """The classes of ``path`` (a ``classes.txt``), or the original's 17 crop classes; and where they come from."""
    if path is not None:
        return read_classes_file(path), str(path)
    return ORIGINAL_CLASSES, "the original's classes"
