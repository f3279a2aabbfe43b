"""Per-date GeoTIFF series of a tile (ORIGINAL.md §7): the folder layout written by ``tfrecord2tif.py`` and read back
exactly by ``tif2tfrecord.py``::

    <tileid>/10m/YYYYMMDD.tif   4 bands B04 B03 B02 B08      (uint16 DN, 10 m grid)
    <tileid>/20m/YYYYMMDD.tif   6 bands B05 B06 B07 B8A B11 B12 (20 m grid)
    <tileid>/60m/YYYYMMDD.tif   3 bands B01 B09 B10          (60 m grid)
    <tileid>/labels.tif         raw class ids (uint16, 10 m grid)

The band GeoTIFFs name their bands (``B04`` …) and tag DN 0 as nodata. A second observation on the same day is
named ``YYYYMMDD_1.tif`` (then ``_2`` …). A user's own Sentinel-2 data are read by :mod:`utils.sentinel2`.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import numpy as np

from utils.bands import GROUPS
from utils.cli import UserError
from utils.fsio import atomic_dir, atomic_file
from utils.georef import GeoRef
from utils.rasters import read_geotiff, write_geotiff
from utils.series import Series, date_stems, parse_date

LABELS_FILE = "labels.tif"
BAND_NODATA = 0  # DN 0 is no data in Sentinel-2 products
_DATE_STEM = re.compile(r"(\d{8})(?:_(\d+))?")


def write_series(folder: str | os.PathLike, series: Series) -> Path:
    """Write a tile folder (layout in the module docstring); it appears only when complete."""
    folder = Path(folder)
    stems = date_stems(series.dates)
    with atomic_dir(folder) as tmp:
        for group in GROUPS:
            georef = None if series.georef is None else series.georef.scaled(group.factor)
            for stem, image in zip(stems, getattr(series, group.name), strict=True):
                _write_uint16(tmp / group.folder / f"{stem}.tif", np.moveaxis(image, -1, 0), georef, folder,
                              group.bands, BAND_NODATA)
        _write_uint16(tmp / LABELS_FILE, series.labels, series.georef, folder, ("raw class id",), None)
    return folder


def _write_uint16(path: Path, array: np.ndarray, georef: GeoRef | None, source: Path, descriptions: tuple[str, ...],
                  nodata: int | None) -> None:
    try:
        write_geotiff(path, array, georef, dtype=np.uint16, nodata=nodata, descriptions=descriptions)
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
            images.append(_integers(np.moveaxis(data, 0, -1), path))
            if group.factor == 1 and georef is None:
                georef = file_georef
        arrays[group.name] = np.stack(images)
    height, width = arrays["x10"].shape[1:3]
    labels_path = folder / LABELS_FILE
    labels = np.zeros((height, width), np.int64)
    if labels_path.is_file():
        labels = _integers(read_geotiff(labels_path)[0], labels_path)
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


def _integers(data: np.ndarray, path: Path) -> np.ndarray:
    """The values of one of our GeoTIFFs as int64; anything but whole numbers is an error naming the file."""
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.int64)
    if not np.isfinite(data).all() or (data != np.rint(data)).any():
        raise UserError(f"{path}: values that are not whole numbers; a tile folder holds DN and class ids")
    return data.astype(np.int64)


def upsert_rows(path: str | os.PathLike, rows: dict[int, str]) -> None:
    """Put ``rows`` (a line per tile id) into a file of lines that start with a tile id (``geotransforms.csv``,
    ``*.tileids``): lines of other tiles stay, those of the given tiles are replaced; the file is replaced whole."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.is_file() else []
    kept = [line for line in lines if line.strip() and line.split(",")[0].strip() not in {str(k) for k in rows}]
    with atomic_file(path) as tmp:
        tmp.write_text("\n".join([*kept, *rows.values()]) + "\n")
