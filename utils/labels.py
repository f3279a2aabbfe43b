"""Label rasters of a user's area: raw class ids on the area's 10 m grid read in windows, an optional label map
from another legend (``--labelmap``), and the check of the ids against ``classes.txt``."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from utils.classes import lookup
from utils.cli import UserError
from utils.fsio import read_text
from utils.georef import GeoRef
from utils.rasters import open_raster, read_window

MAX_LISTED = 8  # ids named in one warning


def read_labelmap(path: str | os.PathLike) -> dict[int, int]:
    """A label map CSV: ``own_id,class_id`` per line (a header line and ``#`` comments are skipped); ``class_id``
    is a raw id of ``classes.txt`` (0 = unknown)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    lines = read_text(path).splitlines()
    mapping: dict[int, int] = {}
    first = True
    for lineno, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [field.strip() for field in text.replace(";", ",").split(",")]
        try:
            own, target = (int(field) for field in fields) if len(fields) == 2 else (None, None)
        except ValueError:
            own = target = None
        header, first = own is None and first, False
        if header:
            continue
        if own is None:
            raise UserError(f"{path}:{lineno}: expected 'own_id,class_id' (two integers), got {line.strip()!r}")
        if own in mapping and mapping[own] != target:
            raise UserError(f"{path}:{lineno}: id {own} is mapped twice ({mapping[own]} and {target})")
        mapping[own] = target
    if not mapping:
        raise UserError(f"{path}: no 'own_id,class_id' lines")
    return mapping


def apply_labelmap(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """``labels`` through ``mapping``; ids not in it become 0 (unknown)."""
    return lookup(mapping.keys(), mapping.values(), labels)


def id_counts(labels: np.ndarray) -> Counter:
    """Pixels per raw id of a label array."""
    ids, counts = np.unique(labels, return_counts=True)
    return Counter({int(i): int(n) for i, n in zip(ids, counts, strict=True)})


def describe_ids(counts: Counter, total: int) -> str:
    """``6 (1,234 px), 104 (55 px)`` … of the ids with the most pixels, and how many ids and pixels in all."""
    listed = ", ".join(f"{i} ({n:,} px)" for i, n in counts.most_common(MAX_LISTED))
    more = f" and {len(counts) - MAX_LISTED} more" if len(counts) > MAX_LISTED else ""
    pixels = sum(counts.values())
    return f"{listed}{more}: {pixels:,} of {total:,} labelled px ({100 * pixels / max(total, 1):.1f} %)"


def unlisted_ids(counts: Counter, listed: Iterable[int]) -> Counter:
    """The ids of ``counts`` (pixels per raw id) that are not ``listed`` (the raw ids of ``classes.txt``)."""
    known = set(listed)
    return Counter({i: n for i, n in counts.items() if i not in known})


class LabelRaster:
    """A one-band raster of raw class ids on the 10 m grid ``grid`` (same CRS, aligned pixels, any extent), read in
    windows; pixels outside it, at its nodata value or NaN are 0 (unknown)."""

    def __init__(self, path: str | os.PathLike, grid: GeoRef, labelmap: dict[int, int] | None = None):
        self.path = Path(path)
        self.labelmap = labelmap
        self.counts: Counter = Counter()  # pixels per id of the raster (before the label map) in the windows read
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such file")
        self._src = open_raster(self.path)
        src = self._src
        if src.count != 1:
            raise UserError(f"{self.path}: {src.count} bands, expected one band of class ids")
        xmin, xres, rot1, ymax, rot2, yres = src.transform.to_gdal()
        if src.crs is None or src.crs.to_epsg() != grid.epsg:
            raise UserError(f"{self.path}: CRS {src.crs} differs from EPSG:{grid.epsg} of the observations")
        corner = grid.corner_pixel(xmin, ymax)
        if rot1 or rot2 or not np.isclose(xres, grid.transform[1]) or not np.isclose(yres, grid.transform[5]) or \
                corner is None:
            raise UserError(f"{self.path}: not on the 10 m grid of the observations (pixel {xres:g} x {-yres:g}, "
                            f"top-left corner {xmin:.2f}, {ymax:.2f})")
        self._row, self._col = corner

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """(height, width) int64 raw ids of the window whose top-left pixel is ``(row, col)`` of the grid; with a
        label map, mapped (ids not in it become 0)."""
        data = read_window(self._src, 1, row - self._row, col - self._col, height, width, np.nan, np.float64)
        inside = ~np.isnan(data)
        if self._src.nodata is not None:
            data[data == self._src.nodata] = np.nan
        if (data[~np.isnan(data)] % 1).any():
            raise UserError(f"{self.path}: values that are not whole numbers; expected raw class ids")
        out = np.nan_to_num(data, nan=0).astype(np.int64)
        self.counts += id_counts(out[inside])
        return out if self.labelmap is None else apply_labelmap(out, self.labelmap)

    @property
    def unmapped(self) -> Counter:
        """Pixels per id (not 0) that the label map does not list, in the windows read."""
        if self.labelmap is None:
            return Counter()
        return Counter({i: n for i, n in self.counts.items() if i != 0 and i not in self.labelmap})

    def close(self) -> None:
        self._src.close()
