"""Per-date GeoTIFF series of a tile (spec §7): the folder layout, dates ↔ ``YYYYMMDD``, and the conversion between
record arrays and GeoTIFFs, including a user's own Sentinel-2 band files.

The tile folder written by ``tfrecord2tif.py`` and read back by ``tif2tfrecord.py``::

    <tileid>/10m/YYYYMMDD.tif   4 bands B04 B03 B02 B08      (uint16 DN, 10 m grid)
    <tileid>/20m/YYYYMMDD.tif   6 bands B05 B06 B07 B8A B11 B12 (20 m grid)
    <tileid>/60m/YYYYMMDD.tif   3 bands B01 B09 B10          (60 m grid)
    <tileid>/labels.tif         raw class ids (uint16, 10 m grid)

A second observation on the same day is named ``YYYYMMDD_1.tif`` (then ``_2`` …). A user's own area is a folder
with one entry per date whose name contains ``YYYYMMDD``: a folder of 13 single-band files named after their band
(``B02.tif``, ``T33TVM_20150711T100008_B8A.jp2`` …), or one 13-band stack file in the L1C order of :data:`BANDS`.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.cli import UserError
from utils.fsio import atomic_dir, atomic_file
from utils.georef import GeoRef
from utils.rasters import read_geotiff, write_geotiff
from utils.records import Tile
from utils.synthetic.render import block_mean
from utils.synthetic.spectra import BANDS, X10_BANDS, X20_BANDS, X60_BANDS


@dataclass(frozen=True)
class Group:
    """One resolution group of the records: its array name, folder, pixel size factor and bands."""

    name: str
    folder: str
    factor: int
    bands: tuple[str, ...]


GROUPS = (Group("x10", "10m", 1, X10_BANDS), Group("x20", "20m", 2, X20_BANDS), Group("x60", "60m", 6, X60_BANDS))
LABELS_FILE = "labels.tif"
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{8})(?!\d)")
_DATE_STEM = re.compile(r"(\d{8})(?:_(\d+))?")
_BAND_IN_STEM = re.compile(r"(?:^|[^A-Z0-9])(B(?:0[1-9]|1[0-2]|8A))(?:_\d+M)?$")


def date_of(year: int, doy: int, source: str) -> datetime.date:
    """The calendar date of ``doy`` (1..366) in ``year``; a :class:`UserError` naming ``source`` if there is none."""
    try:
        date = datetime.date(int(year), 1, 1) + datetime.timedelta(days=int(doy) - 1) if doy >= 1 else None
    except (ValueError, OverflowError):
        date = None
    if date is None or date.year != year:
        raise UserError(f"{source}: day of year {doy} of year {year} is not a date")
    return date


def doy_and_year(date: datetime.date) -> tuple[int, int]:
    """``(day of year, year)`` of a date, as the records store it."""
    return date.timetuple().tm_yday, date.year


def date_stems(dates: list[datetime.date]) -> list[str]:
    """File stems ``YYYYMMDD`` of the dates; repeated days get ``_1``, ``_2`` … in order."""
    seen: dict[datetime.date, int] = {}
    stems = []
    for date in dates:
        count = seen.get(date, 0)
        seen[date] = count + 1
        stems.append(date.strftime("%Y%m%d") + (f"_{count}" if count else ""))
    return stems


def parse_date(text: str, source: str | os.PathLike) -> datetime.date:
    """A ``YYYYMMDD`` string as a date; a :class:`UserError` naming ``source`` if it is none."""
    try:
        return datetime.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise UserError(f"{source}: {text!r} is not a date YYYYMMDD") from None


@dataclass
class Series:
    """The observations of one tile or area, without padding: ``x10 (T,H,W,4)``, ``x20 (T,H/2,W/2,6)``,
    ``x60 (T,H/6,W/6,3)`` int64 DN, their ``dates``, the raw class ids ``labels (H,W)`` and the 10 m ``georef``."""

    x10: np.ndarray
    x20: np.ndarray
    x60: np.ndarray
    dates: list[datetime.date]
    labels: np.ndarray
    georef: GeoRef | None

    @classmethod
    def from_tile(cls, tile: Tile, georef: GeoRef | None, source: str) -> Series:
        """The valid dates (``doy > 0``) of a record; the labels of its first step."""
        keep = tile.doy > 0
        dates = [date_of(year, doy, source) for year, doy in zip(tile.year[keep], tile.doy[keep], strict=True)]
        return cls(tile.x10[keep], tile.x20[keep], tile.x60[keep], dates, np.asarray(tile.labels[0]), georef)

    def to_tile(self, nobs: int, source: str) -> Tile:
        """The record: every array zero-padded at the end to ``nobs`` steps, the labels repeated over all steps."""
        count = len(self.dates)
        if count > nobs:
            raise UserError(f"{source}: {count} dates do not fit into nobs = {nobs} (raise --nobs)")
        doy, year = np.array([doy_and_year(date) for date in self.dates], dtype=np.int64).reshape(-1, 2).T

        def padded(values: np.ndarray) -> np.ndarray:
            out = np.zeros((nobs, *values.shape[1:]), dtype=np.int64)
            out[:count] = values
            return out

        height, width = self.labels.shape
        return Tile(x10=padded(self.x10), x20=padded(self.x20), x60=padded(self.x60), doy=padded(doy),
                    year=padded(year), labels=np.broadcast_to(self.labels.astype(np.int64), (nobs, height, width)))

    def window(self, row: int, col: int, size: int) -> Series:
        """The ``size`` px square whose top-left 10 m pixel is ``(row, col)``; both must be multiples of 6."""
        arrays = {}
        for group in GROUPS:
            r, c, s = row // group.factor, col // group.factor, size // group.factor
            arrays[group.name] = getattr(self, group.name)[:, r:r + s, c:c + s]
        georef = None
        if self.georef is not None:
            xmin, xres, rot1, ymax, rot2, yres = self.georef.transform
            georef = GeoRef((xmin + col * xres, xres, rot1, ymax + row * yres, rot2, yres), self.georef.epsg)
        return Series(**arrays, dates=self.dates, labels=self.labels[row:row + size, col:col + size], georef=georef)


def write_series(folder: str | os.PathLike, series: Series) -> Path:
    """Write a tile folder (layout in the module docstring); it appears only when complete."""
    folder = Path(folder)
    stems = date_stems(series.dates)
    with atomic_dir(folder) as tmp:
        for group in GROUPS:
            georef = None if series.georef is None else series.georef.scaled(group.factor)
            for stem, image in zip(stems, getattr(series, group.name), strict=True):
                _write_uint16(tmp / group.folder / f"{stem}.tif", np.moveaxis(image, -1, 0), georef, folder)
        _write_uint16(tmp / LABELS_FILE, series.labels, series.georef, folder)
    return folder


def _write_uint16(path: Path, array: np.ndarray, georef: GeoRef | None, source: Path) -> None:
    try:
        write_geotiff(path, array, georef, dtype=np.uint16)
    except ValueError as err:
        raise UserError(f"{source}: cannot write {path.parent.name}/{path.name} as uint16 ({err})") from None


def is_tile_folder(folder: Path) -> bool:
    """Whether ``folder`` has the tile layout (a ``10m`` subfolder)."""
    return (folder / GROUPS[0].folder).is_dir()


def read_series(folder: str | os.PathLike) -> Series:
    """Read a tile folder written by :func:`write_series` (``labels.tif`` optional: 0 = unknown without it)."""
    folder = Path(folder)
    stems = sorted((path.stem for path in (folder / GROUPS[0].folder).glob("*.tif")), key=_stem_order)
    if not stems:
        raise UserError(f"{folder / GROUPS[0].folder}: no YYYYMMDD.tif files")
    dates = [_stem_date(stem, folder / GROUPS[0].folder / f"{stem}.tif") for stem in stems]
    arrays, georef = {}, None
    for group in GROUPS:
        images = []
        for stem in stems:
            path = folder / group.folder / f"{stem}.tif"
            data, file_georef = read_geotiff(path)
            data = _as_bands(data)
            if data.shape[0] != len(group.bands):
                raise UserError(f"{path}: {data.shape[0]} bands, expected {len(group.bands)} "
                                f"({' '.join(group.bands)})")
            if images and data.shape[1:] != images[0].shape[:2]:
                raise UserError(f"{path}: {data.shape[1]}x{data.shape[2]} px, unlike the other dates "
                                f"({images[0].shape[0]}x{images[0].shape[1]})")
            images.append(_integers(np.moveaxis(data, 0, -1), path, 1.0))
            if group.factor == 1 and georef is None:
                georef = file_georef
        arrays[group.name] = np.stack(images)
    height, width = arrays["x10"].shape[1:3]
    labels_path = folder / LABELS_FILE
    labels = np.zeros((height, width), np.int64)
    if labels_path.is_file():
        labels = _integers(read_geotiff(labels_path)[0], labels_path, 1.0)
        if labels.shape != (height, width):
            raise UserError(f"{labels_path}: {labels.shape[0]}x{labels.shape[1]} px, expected {height}x{width} "
                            "(the 10 m grid)")
    return Series(**arrays, dates=dates, labels=labels, georef=georef)


def _stem_order(stem: str) -> tuple[str, int]:
    match = _DATE_STEM.fullmatch(stem)
    return (match.group(1), int(match.group(2) or 0)) if match else (stem, 0)


def _stem_date(stem: str, path: Path) -> datetime.date:
    match = _DATE_STEM.fullmatch(stem)
    if match is None:
        raise UserError(f"{path}: the file name is not YYYYMMDD.tif (or YYYYMMDD_<n>.tif)")
    return parse_date(match.group(1), path)


def _as_bands(data: np.ndarray) -> np.ndarray:
    return data[np.newaxis] if data.ndim == 2 else data


def _integers(data: np.ndarray, path: Path, scale: float) -> np.ndarray:
    """Raster values × ``scale`` as int64 DN: floats rounded, NaN (nodata) 0."""
    if np.issubdtype(data.dtype, np.integer) and scale == 1.0:
        return data.astype(np.int64)
    values = np.nan_to_num(data.astype(np.float64) * scale, nan=0.0, posinf=0.0, neginf=0.0)
    if np.issubdtype(data.dtype, np.floating) and scale == 1.0 and values.size and 0 < np.abs(values).max() <= 2:
        raise UserError(f"{path}: float values up to {np.abs(values).max():.3g} look like reflectance 0..1; "
                        "the records hold DN = reflectance x 10000 (pass --scale 10000)")
    return np.rint(values).astype(np.int64)


# --- a user's own area -------------------------------------------------------------------------------------------


def find_observations(folder: str | os.PathLike) -> list[tuple[datetime.date, Path]]:
    """The entries of an area folder whose names contain a date ``YYYYMMDD``, sorted by date then name."""
    folder = Path(folder)
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() not in RASTER_SUFFIXES:
            continue
        match = _DATE_IN_NAME.search(entry.name)
        if match is not None:
            found.append((parse_date(match.group(1), entry), entry))
    if not found:
        raise UserError(f"{folder}: no observations: expected a 10m/ folder (tfrecord2tif.py layout), or "
                        "per-date folders of band files or 13-band stacks whose names contain YYYYMMDD")
    return sorted(found, key=lambda item: (item[0], item[1].name))


def _band_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in RASTER_SUFFIXES:
            continue
        match = _BAND_IN_STEM.search(path.stem.upper())
        if match is None:
            continue
        band = match.group(1)
        if band in files:
            raise UserError(f"{folder}: two files for band {band}: {files[band].name} and {path.name}")
        files[band] = path
    missing = [band for band in BANDS if band not in files]
    if missing:
        raise UserError(f"{folder}: no file for band {', '.join(missing)} (expected the 13 L1C bands "
                        f"{' '.join(BANDS)} as files named like B02.tif)")
    return files


def _read_observation(entry: Path, scale: float) -> dict[str, tuple[np.ndarray, GeoRef | None, Path]]:
    """``{band: (image (h, w) int64, georef, file)}`` of one date: a folder of band files or a 13-band stack."""
    if entry.is_dir():
        bands = {}
        for band, path in _band_files(entry).items():
            data, georef = read_geotiff(path)
            if data.ndim != 2:
                raise UserError(f"{path}: {data.shape[0]} bands, expected one ({band})")
            bands[band] = (_integers(data, path, scale), georef, path)
        return bands
    data, georef = read_geotiff(entry)
    data = _as_bands(data)
    if data.shape[0] != len(BANDS):
        raise UserError(f"{entry}: {data.shape[0]} bands, a stack needs the 13 L1C bands in the order "
                        f"{' '.join(BANDS)}")
    values = _integers(data, entry, scale)
    return {band: (values[k], georef, entry) for k, band in enumerate(BANDS)}


def _factor(image: np.ndarray, georef: GeoRef | None, reference: tuple[tuple[int, int], GeoRef | None],
            path: Path) -> int:
    """How many 10 m pixels one pixel of ``image`` spans (1, 2, 3 or 6), checked against the 10 m grid."""
    shape, grid = reference
    if (georef is None) != (grid is None):
        raise UserError(f"{path}: georeferenced differently from the 10 m bands (one has a CRS, the other none)")
    if georef is not None:
        if georef.epsg != grid.epsg:
            raise UserError(f"{path}: EPSG:{georef.epsg} differs from EPSG:{grid.epsg} of the 10 m bands")
        ratio = georef.transform[1] / grid.transform[1]
        if abs(georef.transform[5] / grid.transform[5] - ratio) > 1e-6:
            raise UserError(f"{path}: its pixels are not square multiples of the 10 m pixels")
        if any(abs(a - b) > 1e-3 * abs(grid.transform[1]) for a, b in zip(georef.origin, grid.origin, strict=True)):
            raise UserError(f"{path}: its top-left corner {georef.origin} differs from {grid.origin} of the "
                            "10 m bands")
    else:
        ratio = shape[0] / image.shape[0]
    factor = round(ratio)
    if factor not in (1, 2, 3, 6) or abs(ratio - factor) > 1e-6:
        raise UserError(f"{path}: pixels {ratio:g} times the 10 m pixels; expected 1, 2, 3 or 6")
    return factor


def read_area(folder: str | os.PathLike, labels: str | os.PathLike | None = None, scale: float = 1.0) -> Series:
    """A user's own area (layout in the module docstring) as a :class:`Series` on the 10 m grid of B02.

    Bands finer than their group's resolution are averaged over blocks (and rounded); coarser ones are an error.
    The area is cut to a multiple of 6 px at its bottom and right edges. ``labels`` is a raster of raw class ids on
    the 10 m grid (else 0 = unknown).
    """
    observations = find_observations(folder)
    per_date = [_read_observation(entry, scale) for _, entry in observations]
    first, grid, _ = per_date[0]["B02"]
    height, width = first.shape[0] // 6 * 6, first.shape[1] // 6 * 6
    if height == 0 or width == 0:
        raise UserError(f"{folder}: {first.shape[0]}x{first.shape[1]} px at 10 m is smaller than one 60 m pixel")
    arrays = {}
    for group in GROUPS:
        images = []
        for bands in per_date:
            planes = []
            for band in group.bands:
                image, georef, path = bands[band]
                factor = _factor(image, georef, (first.shape, grid), path)
                if group.factor % factor:
                    raise UserError(f"{path}: band {band} has {10 * factor} m pixels; the records store it at "
                                    f"{group.folder}, which is no whole multiple of them")
                rows, cols = height // factor, width // factor
                if image.shape[0] < rows or image.shape[1] < cols:
                    raise UserError(f"{path}: {image.shape[0]}x{image.shape[1]} px do not cover the "
                                    f"{height}x{width} px of the 10 m bands")
                plane = image[:rows, :cols, np.newaxis][np.newaxis]
                planes.append(np.rint(block_mean(plane, group.factor // factor))[0, ..., 0].astype(np.int64))
            images.append(np.stack(planes, axis=-1))
        arrays[group.name] = np.stack(images)
    label_map = np.zeros((height, width), np.int64)
    if labels is not None:
        labels = Path(labels)
        data, georef = read_geotiff(labels)
        if data.ndim != 2:
            raise UserError(f"{labels}: {data.shape[0]} bands, expected one band of class ids")
        if _factor(data, georef, (first.shape, grid), labels) != 1 or data.shape[0] < height or \
                data.shape[1] < width:
            raise UserError(f"{labels}: not on the 10 m grid of the bands ({first.shape[0]}x{first.shape[1]} px)")
        label_map = _integers(data, labels, 1.0)[:height, :width]
    return Series(**arrays, dates=[date for date, _ in observations], labels=label_map, georef=grid)


def upsert_rows(path: str | os.PathLike, rows: dict[int, str]) -> None:
    """Put ``rows`` (a line per tile id) into a file of lines that start with a tile id (``geotransforms.csv``,
    ``*.tileids``): lines of other tiles stay, those of the given tiles are replaced; the file is replaced whole."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.is_file() else []
    kept = [line for line in lines if line.strip() and line.split(",")[0].strip() not in {str(k) for k in rows}]
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join([*kept, *rows.values()]) + "\n")
