"""Label rasters of a user's area: raw class ids on the area's 10 m grid read in windows, an optional label map
from another legend (``--labelmap``), and the check of the ids against ``classes.txt``."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from utils.cli import UserError
from utils.georef import GeoRef

MAX_LISTED = 8  # ids named in one warning


def read_labelmap(path: str | os.PathLike) -> dict[int, int]:
    """A label map CSV: ``own_id,class_id`` per line (a header line and ``#`` comments are skipped); ``class_id``
    is a raw id of ``classes.txt`` (0 = unknown)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
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


def apply_labelmap(labels: np.ndarray, mapping: dict[int, int]) -> tuple[np.ndarray, Counter]:
    """``labels`` through ``mapping``; ids not in it become 0. Returns the mapped labels and the pixel counts of the
    ids that were not in the map (0 excluded)."""
    keys = np.array(sorted(mapping), dtype=np.int64)
    values = np.array([mapping[key] for key in keys], dtype=np.int64)
    pos = np.clip(np.searchsorted(keys, labels), 0, len(keys) - 1)
    found = keys[pos] == labels
    unmapped = Counter(dict(zip(*np.unique(labels[~found & (labels != 0)], return_counts=True), strict=True)))
    return np.where(found, values[pos], 0), Counter({int(k): int(v) for k, v in unmapped.items()})


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
        self.unmapped: Counter = Counter()
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such file")
        try:
            self._src = rasterio.open(self.path)
        except RasterioError as err:
            raise UserError(f"{self.path}: not a readable raster ({' '.join(str(err).split())})") from None
        src = self._src
        if src.count != 1:
            raise UserError(f"{self.path}: {src.count} bands, expected one band of class ids")
        xmin, xres, rot1, ymax, rot2, yres = src.transform.to_gdal()
        if src.crs is None or src.crs.to_epsg() != grid.epsg:
            raise UserError(f"{self.path}: CRS {src.crs} differs from EPSG:{grid.epsg} of the observations")
        col, row = (xmin - grid.transform[0]) / grid.transform[1], (ymax - grid.transform[3]) / grid.transform[5]
        if rot1 or rot2 or not np.isclose(xres, grid.transform[1]) or not np.isclose(yres, grid.transform[5]) or \
                abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
            raise UserError(f"{self.path}: not on the 10 m grid of the observations (pixel {xres:g} x {-yres:g}, "
                            f"top-left corner {xmin:.2f}, {ymax:.2f})")
        self._row, self._col = round(row), round(col)

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """(height, width) int64 raw ids of the window whose top-left pixel is ``(row, col)`` of the grid; with a
        label map, mapped (ids not in it become 0 and are counted in ``unmapped``)."""
        out = np.zeros((height, width), np.int64)
        r0, c0 = row - self._row, col - self._col
        r_lo, r_hi = max(r0, 0), min(r0 + height, self._src.height)
        c_lo, c_hi = max(c0, 0), min(c0 + width, self._src.width)
        if r_lo < r_hi and c_lo < c_hi:
            try:
                data = self._src.read(1, window=((r_lo, r_hi), (c_lo, c_hi)))
            except RasterioError as err:
                raise UserError(f"{self.path}: cannot be read ({' '.join(str(err).split())})") from None
            missing = np.isnan(data) if np.issubdtype(data.dtype, np.floating) else np.zeros(data.shape, bool)
            if self._src.nodata is not None:
                missing |= data == self._src.nodata
            data = np.where(missing, 0, data)
            if np.issubdtype(data.dtype, np.floating) and (data != np.rint(data)).any():
                raise UserError(f"{self.path}: values that are not whole numbers; expected raw class ids")
            out[r_lo - r0:r_hi - r0, c_lo - c0:c_hi - c0] = data
        if self.labelmap is not None:
            out, unmapped = apply_labelmap(out, self.labelmap)
            self.unmapped += unmapped
        return out

    def close(self) -> None:
        self._src.close()
