"""Sentinel-2 data as users have them, written by the tests from the real eo-learn Slovenia scenes: per-date band
files at each band's native resolution (GeoTIFF or JPEG 2000) and miniature SAFE products (the folder layout and
metadata fields of the ESA product specification, PSD 14.x), as folders or zips. The raster and SAFE writers are
those of the synthetic scene (:mod:`utils.synthetic.scene`)."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.bands import BANDS
from utils.georef import GeoRef
from utils.synthetic import scene
from utils.synthetic.scene import NATIVE, Names, native, write_raster

SLOVENIA_ORIGIN = (465181.0522318204, 5080254.63349641)  # top-left corner of bbox.geojson, EPSG:32633
SCENE_ORDER = [2, 1, 4, 3, 0]  # REFERENCE_SCENES.npy scene i is timestamp index SCENE_ORDER[i]
NAMES = Names(tile="T33TVM", satellite="S2A", time="100008", orbit=122)  # the names of the Slovenia granule


@dataclass
class Scenes:
    """Scenes in DN: ``dn (T, H, W, 13)`` float64 at 10 m in the order of BANDS, their dates and 10 m grid."""

    dn: np.ndarray
    dates: list[datetime.date]
    grid: GeoRef
    labels: np.ndarray


def slovenia(realdata: Path) -> Scenes:
    """The five 13-band scenes of the eo-learn patch (101 x 100 px) in DN, sorted by date, and the LULC labels."""
    source = realdata / "eolearn_testeopatch_slovenia"
    scenes = np.load(source / "REFERENCE_SCENES.npy").astype(np.float64)
    stamps = json.loads((source / "timestamps.json").read_text())
    dates = [datetime.date.fromisoformat(stamps[index][:10]) for index in SCENE_ORDER]
    order = np.argsort(dates)
    grid = GeoRef((SLOVENIA_ORIGIN[0], 10.0, 0.0, SLOVENIA_ORIGIN[1], 0.0, -10.0), 32633)
    labels = np.load(source / "mask_timeless" / "LULC.npy")[..., 0].astype(np.int64)
    return Scenes(np.rint(scenes[order] * 1e4), sorted(dates), grid, labels)


def band_images(dn: np.ndarray) -> dict[str, np.ndarray]:
    """One scene (H, W, 13) as ``{band: image at its native resolution}``."""
    return {band: native(dn[..., k], NATIVE[band]) for k, band in enumerate(BANDS)}


def write_band_folder(folder: Path, images: dict[str, np.ndarray], grid: GeoRef, suffix: str = ".tif",
                      nodata: float | None = None, date: datetime.date | None = None) -> Path:
    """A per-date folder of band files named like ``T33TVM_20150711T100008_B8A.tif`` (``B8A.tif`` without a date)."""
    for band, image in images.items():
        stem = NAMES.band_file(date, band) if date else band
        write_raster(folder / f"{stem}{suffix}", image, grid, NATIVE[band], nodata)
    return folder


def write_safe(parent: Path, date: datetime.date, images: dict[str, np.ndarray], grid: GeoRef,
               **options) -> Path:
    """A miniature SAFE product of the Slovenia granule (:func:`utils.synthetic.scene.write_safe`: ``level``,
    ``baseline``, ``offset``, ``as_zip``)."""
    return scene.write_safe(parent, date, images, grid, names=NAMES, **options)
