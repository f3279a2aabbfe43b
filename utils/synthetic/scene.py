"""A large synthetic area written as Sentinel-2 data as users have them, and the writers of such data.

``write_scene(DIR)`` (``python -m utils.synthetic --scene DIR``) fills a new folder that
:func:`utils.sentinel2.open_area` reads as it is:

- ``S2A_YYYYMMDD/`` (or ``S2B_``): one folder per date, 13 uint16 GeoTIFFs ``T32UQU_YYYYMMDDT102021_Bxx.tif`` at the
  band's native 10, 20 or 60 m (2 x 2 and 6 x 6 block means of the 10 m rendering, rounded), EPSG:32632 on the grid
  of the synthetic dataset, DEFLATE, 256 px blocks, nodata 0;
- one date instead as a miniature L1C SAFE product of processing baseline 04.00 (JPEG 2000 band files of DN + 1000,
  ``RADIO_ADD_OFFSET`` -1000);
- ``truth.tif`` (the raw class ids of the year, 0 = not a listed crop), ``classes.txt`` and ``scene.json``.

Swaths: the two orbits of the synthetic sky observe a pixel when it lies inside their swath, whose edges run
diagonally across the area (the tilted edges of :func:`utils.synthetic.sky.orbit_zones`, at pixel level, as in real
granules). Outside its swath a date is 0 (nodata) in every band; a 20 or 60 m cell is 0 when its centre lies outside.
Every archived acquisition of the year is written (not the per-tile subsets of the dataset's records).

The area is rendered tile by tile (48 px) and each band file is written in whole rows of 256 px blocks, so memory
holds a row of blocks of every band file (about 210 MB at 960 px and 50 dates), not the whole area.

:func:`native`, :func:`write_raster` and :func:`write_safe` also write the tests' fixtures (``tests/s2fixtures.py``).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from utils.bands import BANDS, GROUPS, level_bands
from utils.classes import ORIGINAL_CLASSES
from utils.cli import UserError
from utils.fsio import atomic_dir
from utils.georef import GeoRef
from utils.rasters import BLOCK, write_geotiff
from utils.synthetic.landscape import BLOCK as WORLD_BLOCK
from utils.synthetic.landscape import MARGIN_PX, TILE
from utils.synthetic.render import World, make_world, render_tile, to_tile
from utils.synthetic.sky import schedule
from utils.synthetic.writer import EPSG, ORIGIN, PIXEL, VERSION

NATIVE = {band: group.factor for group in GROUPS for band in group.bands}  # native pixel size in 10 m pixels
DEFAULT_SIZE = 960
DEFAULT_YEAR = 2016
YEAR_RANGE = (2016, 2099)  # the synthetic sky starts with Sentinel-2A's first full year
BASELINE = "04.00"
OFFSET = -1000  # RADIO_ADD_OFFSET of processing baseline 04.00
RELATIVE_ORBITS = (65, 22)  # relative orbit numbers of the sky's orbits 0 (west) and 1 (east) in product names
TIFF_OPTIONS = {"tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "predictor": 2}
SCENE_VERSION = 1  # bump when the scene layout changes
STAMP = "scene.json"
GRID = GeoRef((ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL), EPSG)  # the 10 m grid of the synthetic dataset


# --- rasters and SAFE products --------------------------------------------------------------------------------------


def native(image: np.ndarray, factor: int) -> np.ndarray:
    """A 10 m image (H, W) at ``factor`` times coarser pixels: the mean of the 10 m pixels each covers that are not
    NaN (no data; cells at the bottom and right edges cover fewer), rounded; NaN where none is."""
    if factor == 1:
        return image
    h, w = image.shape
    rows, cols = -(-h // factor), -(-w // factor)
    padded = np.full((rows * factor, cols * factor), np.nan)
    padded[:h, :w] = image
    blocks = padded.reshape(rows, factor, cols, factor)
    count = (~np.isnan(blocks)).sum(axis=(1, 3))
    total = np.nansum(blocks, axis=(1, 3))
    return np.where(count > 0, np.rint(total / np.maximum(count, 1)), np.nan)


def raster_profile(path: Path, height: int, width: int, grid: GeoRef, factor: int, nodata: float | None = None,
                   dtype: str = "uint16") -> dict:
    """The rasterio profile of a one-band raster on ``grid.scaled(factor)``: lossless JPEG 2000 when ``path`` ends in
    ``.jp2``, else GeoTIFF."""
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": dtype,
               "crs": CRS.from_epsg(grid.epsg), "transform": Affine.from_gdal(*grid.scaled(factor).transform),
               "nodata": nodata}
    if path.suffix == ".jp2":
        profile.update(driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE="YES")
    return profile


def write_raster(path: Path, image: np.ndarray, grid: GeoRef, factor: int, nodata: float | None = None,
                 dtype: str = "uint16") -> Path:
    """One band as GeoTIFF, or lossless JPEG 2000 when ``path`` ends in ``.jp2``; NaN (no data) is written as
    ``nodata``, or 0 without one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **raster_profile(path, *image.shape, grid, factor, nodata, dtype)) as dst:
        dst.write(np.nan_to_num(image, nan=0 if nodata is None else nodata).astype(dtype), 1)
    return path


@dataclass(frozen=True)
class Names:
    """What the file names of an acquisition hold besides its date: the MGRS tile, the satellite, the sensing time
    (HHMMSS) and the relative orbit."""

    tile: str = "T32UQU"
    satellite: str = "S2A"
    time: str = "102021"
    orbit: int = RELATIVE_ORBITS[0]

    def band_file(self, date: datetime.date, band: str) -> str:
        """The stem of a band file: ``T32UQU_20160403T102021_B8A``."""
        return f"{self.tile}_{date:%Y%m%d}T{self.time}_{band}"


def _metadata(level: str, date: datetime.date, baseline: str, offset: float | None, granule: str,
              bands: dict[str, str], names: Names) -> str:
    """``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` with the fields of the product specification that matter here."""
    hms = f"{names.time[:2]}:{names.time[2:4]}:{names.time[4:6]}"
    stamp = f"{date:%Y-%m-%d}T{hms}.026Z"
    files = "".join(f"<IMAGE_FILE>GRANULE/{granule}/IMG_DATA/{name}</IMAGE_FILE>" for name in bands.values())
    if level == "L1C":
        quantification = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offsets = ("<Radiometric_Offset_List>" + "".join(
            f'<RADIO_ADD_OFFSET band_id="{k}">{offset:g}</RADIO_ADD_OFFSET>' for k in range(13)) +
            "</Radiometric_Offset_List>") if offset is not None else ""
    else:
        quantification = ('<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000'
                          '</BOA_QUANTIFICATION_VALUE><AOT_QUANTIFICATION_VALUE unit="none">1000.0'
                          '</AOT_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>')
        offsets = ("<BOA_ADD_OFFSET_VALUES_LIST>" + "".join(
            f'<BOA_ADD_OFFSET band_id="{k}">{offset:g}</BOA_ADD_OFFSET>' for k in range(13)) +
            "</BOA_ADD_OFFSET_VALUES_LIST>") if offset is not None else ""
    kind = "1C" if level == "L1C" else "2A"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-{kind}_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{kind}.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{stamp}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{stamp}</PRODUCT_STOP_TIME>
      <PROCESSING_LEVEL>Level-{kind}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{kind}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="G{names.satellite}_{date:%Y%m%d}T{names.time}_000123_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-{names.satellite[1:]}</SPACECRAFT_NAME>
        <DATATAKE_SENSING_START>{stamp}</DATATAKE_SENSING_START>
      </Datatake>
      <Product_Organisation><Granule_List><Granule granuleIdentifier="{granule}" imageFormat="JPEG2000">
        {files}
      </Granule></Granule_List></Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      {quantification}
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-{kind}_User_Product>
"""


def write_safe(parent: Path, date: datetime.date, images: Mapping[str, np.ndarray], grid: GeoRef,
               level: str = "L1C", baseline: str = BASELINE, offset: float | None = OFFSET, as_zip: bool = False,
               names: Names = Names()) -> Path:
    """A miniature SAFE product of one granule from ``images`` (``{band: DN at its native resolution}``, NaN = no
    data; each is read once): DN − ``offset``, NaN as 0 (no data), JPEG 2000 band files (L2A: in
    ``R10m``/``R20m``/``R60m`` with every band also at the coarser resolutions, as sen2cor writes them)."""
    kind = "1C" if level == "L1C" else "2A"
    day = f"{date:%Y%m%d}"
    name = (f"{names.satellite}_MSIL{kind}_{day}T{names.time}_N{baseline.replace('.', '')}_R{names.orbit:03d}_"
            f"{names.tile}_{day}T120000")
    product = parent / f"{name}.SAFE"
    granule = f"L{kind}_{names.tile}_A000123_{day}T{names.time}"
    shift = -(offset or 0)
    files = {}
    for band in level_bands(level):
        image = images[band] + shift
        factors = [NATIVE[band]] if level == "L1C" else [f for f in (1, 2, 6) if f >= NATIVE[band]]
        for factor in factors:
            stem = names.band_file(date, band) + ("" if level == "L1C" else f"_{10 * factor}m")
            folder = "" if level == "L1C" else f"R{10 * factor}m/"
            coarse = native(image, factor // NATIVE[band])
            write_raster(product / "GRANULE" / granule / "IMG_DATA" / f"{folder}{stem}.jp2", coarse, grid, factor)
            files[f"{band}_{factor}"] = f"{folder}{stem}"
    (product / f"MTD_MSIL{kind}.xml").write_text(_metadata(level, date, baseline, offset, granule, files, names))
    (product / "GRANULE" / granule / "QI_DATA").mkdir()
    if not as_zip:
        return product
    archive = shutil.make_archive(str(parent / name), "zip", root_dir=parent, base_dir=product.name)
    shutil.rmtree(product)
    return Path(archive)


class _BandFiles(Mapping):
    """``{band: DN}`` of a per-date folder of band GeoTIFFs, NaN where 0 (no data); a band is read when asked for."""

    def __init__(self, folder: Path, date: datetime.date, names: Names):
        self._paths = {band: folder / f"{names.band_file(date, band)}.tif" for band in BANDS}

    def __getitem__(self, band: str) -> np.ndarray:
        with rasterio.open(self._paths[band]) as src:
            raw = src.read(1)
        return np.where(raw == 0, np.nan, raw.astype(np.float64))

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


# --- the scene ------------------------------------------------------------------------------------------------------


def swath(orbit: np.ndarray, y: np.ndarray, x: np.ndarray, size: int) -> np.ndarray:
    """Whether the points ``(y, x)`` (10 m pixels from the top-left corner of a ``size`` px square area; arrays that
    broadcast) lie in the swath of ``orbit`` 0 (west) or 1 (east): the tilted edges of ``sky.orbit_zones``."""
    tilt = 0.2 * (y - size / 2)
    return np.where(orbit == 0, x < 0.68 * size + tilt, x > 0.36 * size + tilt)


def check_scene_arguments(path: Path, size: int, year: int, seed: int) -> None:
    """Raise a :class:`UserError` for an existing ``path``, a size that is no positive multiple of 48, a year
    outside the synthetic sky's or a negative seed."""
    if path.exists():
        raise UserError(f"{path}: already exists; the scene is written into a new folder only")
    if size < TILE or size % TILE:
        raise UserError(f"--size {size}: must be a positive multiple of {TILE} px (the tile size)")
    if not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise UserError(f"--year {year}: the synthetic sky has the years {YEAR_RANGE[0]} to {YEAR_RANGE[1]}")
    if seed < 0:
        raise UserError(f"--seed {seed}: must be >= 0")


def scene_world(seed: int, size: int, year: int) -> tuple[World, np.ndarray]:
    """The simulated world of a scene (ceil(size / 192) blocks a side; two at least, which the landscape needs) and
    the indices of the year's archived acquisitions, in date order (every acquisition an archive query returns)."""
    blocks = -(-size // WORLD_BLOCK)
    world = make_world(seed, (blocks, max(blocks, 2)), (year,), nobs=len(schedule(year)[0]))
    return world, np.unique(np.concatenate(world.skies[year].dates))


def acquisition_date(year: int, doy: int) -> datetime.date:
    """The date of day of year ``doy`` (1 = 1 January)."""
    return datetime.date(year, 1, 1) + datetime.timedelta(days=int(doy) - 1)


def offset_date(cloudiness: np.ndarray) -> int:
    """The position of the SAFE product's date among dates with this ``cloudiness``: the median date of the clearer
    half."""
    clearer = np.sort(np.argsort(cloudiness, kind="stable")[:(len(cloudiness) + 1) // 2])
    return int(clearer[len(clearer) // 2])


class _GroupWriter:
    """The band files of one resolution group on every date, written down the area in whole rows of blocks: the rows
    of tiles are kept until a row of blocks is complete, then each file is opened to write it, so that every block is
    written once, whole and in order (hundreds of DEFLATE GeoTIFFs held open would take about 0.6 MB each)."""

    def __init__(self, paths: list[list[Path]], side: int, tile: int):
        self.paths = paths  # [date][band], created empty
        self.side = side
        self.rows = np.zeros((len(paths), BLOCK + tile, side, len(paths[0])), np.uint16)
        self.top = 0

    def put(self, row: int, col: int, values: np.ndarray) -> None:
        """Values ``(T, h, w, C)`` of the tile whose top-left cell is ``(row, col)``."""
        h, w = values.shape[1:3]
        self.rows[:, row - self.top:row - self.top + h, col:col + w] = values

    def done(self, end: int) -> None:
        """The rows above ``end`` are complete: write the rows of blocks among them (the last one at the bottom)."""
        while end - self.top >= BLOCK or self.top < end == self.side:
            n = min(BLOCK, self.side - self.top)
            window = Window(0, self.top, self.side, n)
            for paths, values in zip(self.paths, self.rows, strict=True):
                for k, path in enumerate(paths):
                    with rasterio.open(path, "r+") as dst:
                        dst.write(values[:n, :, k], 1, window=window)
            self.rows[:, :-BLOCK] = self.rows[:, BLOCK:]
            self.top += n


def _render(world: World, year: int, acquisitions: np.ndarray, size: int, folders: list[Path],
            dates: list[datetime.date], names: list[Names]) -> None:
    """Render the area tile by tile and write the band GeoTIFFs of every acquisition into its folder."""
    orbit = world.skies[year].orbit[acquisitions][:, None, None]
    writers = {}
    for group in GROUPS:
        side = size // group.factor
        paths = []
        for folder, date, name in zip(folders, dates, names, strict=True):
            folder.mkdir(exist_ok=True)
            paths.append([folder / f"{name.band_file(date, band)}.tif" for band in group.bands])
            for path in paths[-1]:
                profile = raster_profile(path, side, side, GRID, group.factor, nodata=0)
                rasterio.open(path, "w", **profile, **TIFF_OPTIONS, sparse_ok=True).close()
        writers[group.name] = _GroupWriter(paths, side, TILE // group.factor)
    for row in range(size // TILE):
        for col in range(size // TILE):
            tile = to_tile(render_tile(world, year, row, col, acquisitions), slice(None), slice(None),
                           len(acquisitions))
            for group in GROUPS:
                f = group.factor
                centres = (np.arange(TILE // f) + 0.5) * f
                observed = swath(orbit, row * TILE + centres[:, None], col * TILE + centres[None, :], size)
                values = np.where(observed[..., None], getattr(tile, group.name), 0)
                writers[group.name].put(row * TILE // f, col * TILE // f, values)
        for group in GROUPS:
            writers[group.name].done((row + 1) * TILE // group.factor)


def write_scene(path: str | os.PathLike, *, size: int = DEFAULT_SIZE, year: int = DEFAULT_YEAR, seed: int = 0) -> dict:
    """Simulate a ``size`` px square area at 10 m in ``year`` and write it into the new folder ``path`` as Sentinel-2
    data as users have them (module docstring); return what ``scene.json`` holds. The folder appears only when
    complete; the same arguments always give byte-identical files."""
    path = Path(path)
    check_scene_arguments(path, size, year, seed)
    world, acquisitions = scene_world(seed, size, year)
    sky = world.skies[year]
    yy, xx = np.ogrid[0:size, 0:size]
    share = np.array([swath(np.array(o), yy + 0.5, xx + 0.5, size).mean() for o in (0, 1)])
    acquisitions = acquisitions[share[sky.orbit[acquisitions]] > 0]
    dates = [acquisition_date(year, sky.doy[a]) for a in acquisitions]
    names = [Names(satellite=str(sky.satellite[a]), orbit=RELATIVE_ORBITS[sky.orbit[a]]) for a in acquisitions]
    safe_at = offset_date(sky.cloudiness[acquisitions])
    with atomic_dir(path) as tmp:
        folders = [tmp / f"{name.satellite}_{date:%Y%m%d}" for date, name in zip(dates, names, strict=True)]
        _render(world, year, acquisitions, size, folders, dates, names)
        product = write_safe(tmp, dates[safe_at], _BandFiles(folders[safe_at], dates[safe_at], names[safe_at]),
                             GRID, names=names[safe_at])
        shutil.rmtree(folders[safe_at])
        inside = slice(MARGIN_PX, MARGIN_PX + size)
        write_geotiff(tmp / "truth.tif", world.landscape.labels(0, inside, inside), GRID, dtype=np.uint16,
                      descriptions=["raw class id"])
        (tmp / "classes.txt").write_text(ORIGINAL_CLASSES.text())
        info = {
            "generator": "utils.synthetic --scene", "version": VERSION, "scene_version": SCENE_VERSION,
            "seed": seed, "size": size, "year": year, "epsg": EPSG, "transform": list(GRID.transform),
            "safe": {"date": f"{dates[safe_at]}", "product": product.name, "baseline": BASELINE,
                     "radio_add_offset": OFFSET},
            "dates": [{"date": f"{date}", "satellite": name.satellite, "orbit": int(sky.orbit[a]),
                       "delivery": "SAFE" if t == safe_at else "plain",
                       "source": product.name if t == safe_at else folder.name,
                       "cloudiness": round(float(sky.cloudiness[a]), 4),
                       "observed": round(float(share[sky.orbit[a]]), 4)}
                      for t, (a, date, name, folder) in enumerate(zip(acquisitions, dates, names, folders,
                                                                      strict=True))],
        }
        (tmp / STAMP).write_text(json.dumps(info, indent=1) + "\n")
    return info


def summary(path: Path, info: dict, seconds: float) -> str:
    """The one-line summary of a written scene."""
    size = info["size"]
    plain = sum(date["delivery"] == "plain" for date in info["dates"])
    observed = np.mean([date["observed"] for date in info["dates"]])
    megabytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    return (f"{path}: {size} x {size} px ({size * size * PIXEL * PIXEL / 1e6:.2f} km²), {len(info['dates'])} dates "
            f"({plain} plain, {len(info['dates']) - plain} SAFE), {observed:.0%} of the area observed per date on "
            f"average, {seconds:.1f} s, {megabytes:.1f} MB")

