"""The reader of Sentinel-2 observations as people have them, on one 10 m grid and in windows.

Sources (any mix, see :func:`find_observations`):

- **SAFE products** of level 1C or 2A, as ``.SAFE`` folders or ``.zip`` files (:mod:`utils.safe`): the date, level,
  quantification value, processing-baseline offsets and nodata value come from the product metadata;
- **per-date folders** whose name contains ``YYYYMMDD``, holding one raster per band named after it (``B02.tif``,
  ``T33TVM_20150711T100008_B8A.jp2``, ``B05_20m.vrt`` …), at the band's native 10/20/60 m or finer;
- **13-band stacks** (12 for L2A, without B10) whose file name contains ``YYYYMMDD``, bands in the L1C order;
- a **folder of such entries** (an area folder).

Any raster format rasterio reads (GeoTIFF, JPEG 2000, VRT …). Every source must be georeferenced in one CRS with
10 m pixels for the 10 m bands and pixels aligned with one grid; the area is the union of the sources' 10 m extents.

**Values.** The records hold L1C DN = top-of-atmosphere reflectance × 10,000 without offset, as the network was
trained. A SAFE product's DN become ``(DN + offset) × 10,000 / quantification``; plain rasters ``value × scale +
offset`` (``--scale``, ``--offset``). Corrected values of −1,000..0 (dark pixels under the offset) become 0; values
outside −1,000..20,000 are an error naming the file (a wrong scale or offset); the ``SATURATED`` value of a product
stays as it is. L2A data get B10 = 0.

**Nodata.** A band value is missing where it equals the file's nodata tag, ``--nodata`` or the product's
``NODATA`` value, where it is NaN, or outside the file; a pixel of a resolution group (10, 20, 60 m) is missing when
any of its bands is, or when every band of the group is 0. Observations of one day (granules or products of one
datatake) are merged: each pixel from the first source that has it.

**Windows.** :meth:`Area.read` reads a window of every date (it never needs a whole scene); :meth:`Block.cleaned`
then drops the dates without any valid 10 m pixel in the window and fills every missing pixel from the nearest
date (in days; the earlier on a tie) on which that pixel is valid. The network has no mask input and was trained on
complete series; a filled pixel repeats a real observation of the same place, which the recurrent cell reads as a
date without news, whereas a zero or an interpolated value would be a spectrum that never existed.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from utils import safe
from utils.bands import BANDS, GROUPS, LEVELS, level_bands
from utils.cli import UserError, note, warn
from utils.georef import GeoRef
from utils.rasters import open_raster, read_window
from utils.series import Series, parse_date

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
MAX_DN = 20000  # the largest top-of-atmosphere DN real data reach (reflectance 2); more means a wrong scale
MIN_DN = -1000  # the largest offset of the processing baselines: corrected values down to it are dark pixels
OFFSET_FROM = datetime.date(2022, 1, 25)  # products from this day on are processing baseline 04.00 or later
PIXEL = 10.0  # metres of the 10 m grid
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{8})(?!\d)")
_BAND_IN_STEM = re.compile(r"(?:^|[^A-Z0-9])(B(?:0[1-9]|1[0-2]|8A))(?:_\d+M)?$")
BLOCK_BYTES = 256 << 20  # memory of the arrays of one block read at once (:meth:`Area.block_side`)
# Bytes per 10 m pixel and date of a block: the uint16 bands of x10, x20 and x60 and their masks.
_PIXEL_BYTES = sum(len(group.bands) * 2 / group.factor ** 2 + 1 / group.factor ** 2 for group in GROUPS)


@dataclass(frozen=True)
class SourceOptions:
    """How to read plain rasters (not SAFE products, which carry all of this in their metadata)."""

    level: str | None = None
    scale: float = 1.0
    offset: float | None = None
    nodata: float | None = None


@dataclass(frozen=True)
class Radiometry:
    """Raster value → record DN: ``value × gain + bias[band]``; ``nodata`` and ``saturated`` raster values."""

    gain: float
    bias: dict[str, float]
    nodata: float | None
    saturated: float | None


@dataclass(frozen=True)
class BandSource:
    """One band of an observation: a raster rasterio opens (``path``) and the band's 1-based ``index`` in it."""

    path: str
    index: int = 1


@dataclass(frozen=True)
class Observation:
    """One acquisition of one source: its date, level, band rasters and radiometry; ``source`` names it;
    ``from_product``: level and radiometry come from product metadata."""

    date: datetime.date
    level: str
    bands: dict[str, BandSource]
    radiometry: Radiometry
    source: str
    from_product: bool = False


# --- finding the observations --------------------------------------------------------------------------------------


def _plain_radiometry(options: SourceOptions) -> Radiometry:
    return Radiometry(gain=options.scale, bias=dict.fromkeys(BANDS, options.offset or 0.0), nodata=options.nodata,
                      saturated=None)


def _product_observations(path: Path, options: SourceOptions) -> list[Observation]:
    product = safe.read_product(path)
    if options.level is not None and options.level != product.level:
        raise UserError(f"{path}: an {product.level} product, but --level {options.level} was given")
    gain = 10000.0 / product.quantification
    radiometry = Radiometry(gain=gain, bias={band: offset * gain for band, offset in product.offsets.items()},
                            nodata=product.nodata, saturated=product.saturated)
    observations = []
    for granule in product.granules:
        missing = [band for band in level_bands(product.level) if band not in granule.bands]
        if missing:
            raise UserError(f"{path}: granule {granule.name} has no file for band {', '.join(missing)}")
        bands = {band: BandSource(granule.bands[band]) for band in level_bands(product.level)}
        observations.append(Observation(product.date, product.level, bands, radiometry, f"{path} ({granule.name})",
                                        from_product=True))
    return observations


def _folder_observation(folder: Path, date: datetime.date, options: SourceOptions) -> Observation:
    level = options.level or "L1C"
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        match = _BAND_IN_STEM.search(path.stem.upper()) if path.suffix.lower() in RASTER_SUFFIXES else None
        if match is None:
            continue
        band = match.group(1)
        if band in files:
            raise UserError(f"{folder}: two files for band {band}: {files[band].name} and {path.name}")
        files[band] = path
    missing = [band for band in level_bands(level) if band not in files]
    if missing:
        raise UserError(f"{folder}: no file for band {', '.join(missing)} (expected the {level} bands "
                        f"{' '.join(level_bands(level))} as files named like B02.tif)")
    bands = {band: BandSource(str(files[band])) for band in level_bands(level)}
    return Observation(date, level, bands, _plain_radiometry(options), str(folder))


def _stack_observation(path: Path, date: datetime.date, options: SourceOptions) -> Observation:
    level = options.level or "L1C"
    names = level_bands(level)
    count = _info(str(path)).count
    if count != len(names):
        hint = " (or the 12 L2A bands, without B10, with --level L2A)" if level == "L1C" else ""
        raise UserError(f"{path}: {count} bands, a stack needs the {len(names)} {level} bands in the order "
                        f"{' '.join(names)}{hint}")
    bands = {band: BandSource(str(path), k + 1) for k, band in enumerate(names)}
    return Observation(date, level, bands, _plain_radiometry(options), str(path))


def _entry_observations(entry: Path, options: SourceOptions) -> list[Observation] | None:
    """The observations of one source, or None when ``entry`` is none (a file or folder without a date)."""
    if safe.is_product(entry):
        return _product_observations(entry, options)
    match = _DATE_IN_NAME.search(entry.name)
    if match is None or (entry.is_file() and entry.suffix.lower() not in RASTER_SUFFIXES):
        return None
    date = parse_date(match.group(1), entry)
    if entry.is_dir():
        return [_folder_observation(entry, date, options)]
    return [_stack_observation(entry, date, options)]


def find_observations(inputs: Sequence[str | os.PathLike], options: SourceOptions = SourceOptions()
                      ) -> list[Observation]:
    """Every observation of the sources (module docstring), sorted by date then source; one-line errors for
    sources that are none, a warning for plain rasters of dates that may carry the baseline-04.00 offset."""
    if options.level is not None and options.level not in LEVELS:
        raise UserError(f"--level {options.level}: expected one of {', '.join(LEVELS)}")
    if not options.scale > 0:
        raise UserError(f"--scale {options.scale:g}: must be positive")
    observations: list[Observation] = []
    for name in inputs:
        path = Path(name)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
        found = _entry_observations(path, options)
        if found is None and path.is_dir():
            found = [obs for entry in sorted(path.iterdir()) for obs in _entry_observations(entry, options) or []]
            if not found:
                raise UserError(f"{path}: no observations: expected SAFE products (.SAFE folders or .zip), "
                                "per-date folders of band files or band stacks whose names contain YYYYMMDD")
        elif found is None:
            raise UserError(f"{path}: not a SAFE product (.zip) and no YYYYMMDD date in a raster file name")
        observations += found
    levels = sorted({obs.level for obs in observations})
    if len(levels) > 1:
        first = {level: next(obs.source for obs in observations if obs.level == level) for level in levels}
        raise UserError(f"the sources mix levels: {', '.join(f'{lv} ({src})' for lv, src in first.items())}; a "
                        "series holds one level")
    late = sorted({obs.date for obs in observations if not obs.from_product and obs.date >= OFFSET_FROM})
    if late and options.offset is None:
        warn(f"{len(late)} dates of plain rasters from {late[0]} on: products of processing baseline 04.00 and later "
             "(all from 2022-01-25) store DN + 1000; pass --offset -1000 unless the offset was removed, or "
             "--offset 0 if it was")
    return sorted(observations, key=lambda obs: (obs.date, obs.source))


def select_year(observations: list[Observation], year: int | None) -> list[Observation]:
    """The observations of ``year``; without a year, all of them if they lie in one year, else an error."""
    years: dict[int, int] = {}
    for obs in observations:
        years[obs.date.year] = years.get(obs.date.year, 0) + 1
    listing = ", ".join(f"{y} ({n} observations)" for y, n in sorted(years.items()))
    if year is None:
        if len(years) > 1:
            raise UserError(f"the sources hold several years: {listing}; a series is one year: pass --year")
        return observations
    if year not in years:
        raise UserError(f"--year {year}: the sources hold {listing}")
    return [obs for obs in observations if obs.date.year == year]


# --- rasters -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RasterInfo:
    count: int
    dtype: str
    height: int
    width: int
    crs: rasterio.crs.CRS | None
    transform: tuple[float, ...]
    nodata: float | None


def _info(path: str) -> _RasterInfo:
    with open_raster(path) as src:
        return _RasterInfo(src.count, src.dtypes[0], src.height, src.width, src.crs, tuple(src.transform.to_gdal()),
                           src.nodata)


def _grid_of(path: str, info: _RasterInfo) -> tuple[rasterio.crs.CRS, float, float, float]:
    """CRS, pixel size, left and top of a raster; errors for rasters that are no north-up square grid."""
    xmin, xres, rot1, ymax, rot2, yres = info.transform
    if info.crs is None:
        raise UserError(f"{path}: not georeferenced (no CRS): the area's grid cannot be known")
    if rot1 or rot2 or xres <= 0 or not np.isclose(-yres, xres, rtol=1e-9):
        raise UserError(f"{path}: not a north-up grid of square pixels (geotransform {info.transform})")
    return info.crs, xres, xmin, ymax


@dataclass(frozen=True)
class _Placement:
    """Where a band raster lies on the area's grid: its top-left 10 m pixel and its pixel size in 10 m pixels."""

    row: int
    col: int
    factor: int


def block_side(dates: int, multiple: int) -> int:
    """The side in 10 m px, a multiple of ``multiple`` (and of 6), of the square blocks of ``dates`` dates whose
    arrays take about :data:`BLOCK_BYTES`; at least one ``multiple``. Larger blocks decode the tiles of JPEG 2000
    files fewer times (a tile cut by a block border is decoded for each block)."""
    step = math.lcm(multiple, 6)
    side = math.sqrt(BLOCK_BYTES / (_PIXEL_BYTES * max(dates, 1)))
    return max(step, int(side // step) * step)


# --- the area -------------------------------------------------------------------------------------------------------


@dataclass
class Block:
    """A window of an area on every date: ``arrays`` x10 (T,h,w,4), x20 (T,h/2,w/2,6), x60 (T,h/6,w/6,3) in DN
    (uint16), ``valid`` (T, h/f, w/f) per group, the ``dates`` and the 10 m ``georef`` of the window."""

    arrays: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    dates: list[datetime.date]
    georef: GeoRef

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in 10 m pixels."""
        return self.arrays["x10"].shape[1:3]

    @property
    def coverage(self) -> np.ndarray:
        """(h, w) bool: the 10 m pixels observed on at least one date."""
        return self.valid["x10"].any(axis=0)

    def window(self, row: int, col: int, height: int, width: int) -> Block:
        """The part of the block whose top-left 10 m pixel is ``(row, col)``; all four numbers multiples of 6."""
        arrays, valid = {}, {}
        for group in GROUPS:
            f = group.factor
            rows, cols = slice(row // f, (row + height) // f), slice(col // f, (col + width) // f)
            arrays[group.name] = self.arrays[group.name][:, rows, cols]
            valid[group.name] = self.valid[group.name][:, rows, cols]
        return Block(arrays, valid, self.dates, self.georef.shifted(row, col))

    def cleaned(self) -> Block:
        """The dates with a valid 10 m pixel, every missing pixel filled from its nearest valid date (module
        docstring); pixels never valid stay 0. ``valid`` keeps what was observed."""
        keep = self.valid["x10"].any(axis=(1, 2))
        days = np.array([date.toordinal() for date, k in zip(self.dates, keep, strict=True) if k], dtype=np.float64)
        arrays = {name: _fill(values[keep], self.valid[name][keep], days) for name, values in self.arrays.items()}
        valid = {name: mask[keep] for name, mask in self.valid.items()}
        return Block(arrays, valid, [date for date, k in zip(self.dates, keep, strict=True) if k], self.georef)

    def series(self, labels: np.ndarray) -> Series:
        """The block as a :class:`Series` (call :meth:`cleaned` first); labels are 0 where nothing was observed."""
        return Series(**self.arrays, dates=list(self.dates), labels=np.where(self.coverage, labels, 0),
                      georef=self.georef)


def _fill(values: np.ndarray, valid: np.ndarray, days: np.ndarray) -> np.ndarray:
    """(T, h, w, C) values with every invalid (t, i, j) taken from the valid date of (i, j) nearest in days."""
    steps = len(days)
    if steps == 0 or valid.all():
        return values
    t = np.arange(steps)[:, None, None]
    before = np.maximum.accumulate(np.where(valid, t, -1), axis=0)
    after = np.minimum.accumulate(np.where(valid, t, steps)[::-1], axis=0)[::-1]
    gap_before = np.where(before >= 0, days[t] - days[np.maximum(before, 0)], np.inf)
    gap_after = np.where(after < steps, days[np.minimum(after, steps - 1)] - days[t], np.inf)
    source = np.where(gap_before <= gap_after, before, after)
    never = ~valid.any(axis=0)
    source = np.where(valid | never, t, source)
    filled = np.take_along_axis(values, source[..., None], axis=0)
    filled[:, never] = 0
    return filled


class Area:
    """The observations of the sources on their common 10 m grid: ``georef`` (top-left corner and EPSG),
    ``height`` × ``width`` 10 m pixels, the ``dates`` (one per day) and windows of them (:meth:`read`)."""

    def __init__(self, observations: list[Observation]):
        if not observations:
            raise UserError("no observations")
        self.level = observations[0].level
        self.sources = sorted({obs.source for obs in observations})
        self._infos = {source.path: _info(source.path) for obs in observations for source in obs.bands.values()}
        reference = observations[0].bands["B02"].path
        crs = self._grid_of(reference)[0]
        if crs.to_epsg() is None:
            raise UserError(f"{reference}: its CRS has no EPSG code")
        corners = []
        for obs in observations:
            for band in ("B04", "B03", "B02", "B08"):
                path = obs.bands[band].path
                band_crs, size, left, top = self._grid_of(path)
                if band_crs != crs:
                    raise UserError(f"{path}: CRS {band_crs} differs from {crs} of {reference}; the sources "
                                    "must share one CRS")
                if not np.isclose(size, PIXEL, rtol=1e-9):
                    raise UserError(f"{path}: pixels of {size:g} x {size:g} CRS units; the network reads 10 m "
                                    "pixels (band B02 etc. on a 10 m grid)")
                info = self._infos[path]
                corners.append((left, top, left + info.width * PIXEL, top - info.height * PIXEL))
        left, top = min(c[0] for c in corners), max(c[1] for c in corners)
        right, bottom = max(c[2] for c in corners), min(c[3] for c in corners)
        self.georef = GeoRef((left, PIXEL, 0.0, top, 0.0, -PIXEL), crs.to_epsg())
        self.height, self.width = round((top - bottom) / PIXEL), round((right - left) / PIXEL)
        self._placements = {source.path: self._placement(source.path, band, crs)
                            for obs in observations for band, source in obs.bands.items()}
        self._by_date: dict[datetime.date, list[Observation]] = {}
        for obs in observations:
            self._by_date.setdefault(obs.date, []).append(obs)
        self.dates = sorted(self._by_date)
        self._pool: ThreadPoolExecutor | None = None
        if self.level == "L2A":
            note("L2A input (bottom-of-atmosphere reflectance): B10 does not exist in L2A products and is filled "
                 "with 0; the released models were trained on L1C top-of-atmosphere data, so fine-tune a model on "
                 "L2A records before trusting its maps")

    def _grid_of(self, path: str) -> tuple[rasterio.crs.CRS, float, float, float]:
        return _grid_of(path, self._infos[path])

    def _placement(self, path: str, band: str, crs) -> _Placement:
        band_crs, size, left, top = self._grid_of(path)
        if band_crs != crs:
            raise UserError(f"{path}: CRS {band_crs} differs from {crs} of the 10 m bands")
        factor = round(size / PIXEL)
        group = next(g for g in GROUPS if band in g.bands)
        if not np.isclose(size, factor * PIXEL, rtol=1e-6) or factor < 1 or group.factor % factor:
            raise UserError(f"{path}: band {band} has {size:g} m pixels; the records store it at {group.folder}, "
                            f"so its pixel size must be a multiple of 10 m that divides {10 * group.factor} m")
        corner = self.georef.corner_pixel(left, top, factor)
        if corner is None:
            raise UserError(f"{path}: its {size:g} m pixels are not aligned with the grid of the other sources "
                            f"(top-left corner {left:.2f}, {top:.2f})")
        return _Placement(*corner, factor)

    def close(self) -> None:
        """Stop the reading threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Area:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def block_side(self, multiple: int) -> int:
        """See :func:`block_side`."""
        return block_side(len(self.dates), multiple)

    @property
    def area_km2(self) -> float:
        """Area of the grid in km²."""
        return self.height * self.width * PIXEL * PIXEL / 1e6

    def read(self, row: int, col: int, height: int, width: int) -> Block:
        """Every date in the window whose top-left 10 m pixel is ``(row, col)`` (all four numbers multiples of 6;
        the window may extend beyond the area, where nothing is valid)."""
        if any(value % 6 for value in (row, col, height, width)):
            raise ValueError(f"window {row}, {col}, {height}, {width}: not multiples of 6")
        steps = len(self.dates)
        arrays, valid = {}, {}
        for group in GROUPS:
            h, w = height // group.factor, width // group.factor
            arrays[group.name] = np.zeros((steps, h, w, len(group.bands)), np.uint16)
            valid[group.name] = np.zeros((steps, h, w), bool)
        window = (row, col, height, width)
        jobs = [(t, obs, group) for t, date in enumerate(self.dates) for obs in self._by_date[date] for group in GROUPS]
        workers = os.cpu_count() or 1
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sentinel2")
        for start in range(0, len(jobs), 2 * workers):  # a few groups in flight, not a second copy of the block
            chunk = jobs[start:start + 2 * workers]
            results = self._pool.map(lambda job: self._read_group(job[1], job[2], window), chunk)
            for (t, _, group), (values, ok) in zip(chunk, results, strict=True):
                take = ok & ~valid[group.name][t]
                arrays[group.name][t][take] = values[take]
                valid[group.name][t] |= ok
        return Block(arrays, valid, list(self.dates), self.georef.shifted(row, col))

    def _read_group(self, obs: Observation, group, window: tuple[int, int, int, int]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """One group of one observation: values (h, w, C) uint16 and valid (h, w) on the group's grid."""
        row, col, height, width = window
        f = group.factor
        shape = (height // f, width // f)
        values = np.zeros((*shape, len(group.bands)), np.uint16)
        valid = np.ones(shape, bool)
        zero = np.ones(shape, bool)
        for k, band in enumerate(group.bands):
            if band not in obs.bands:  # B10 of L2A
                continue
            band_values, band_valid, band_zero = self._read_band(obs, band, f, window)
            values[..., k] = band_values
            valid &= band_valid
            zero &= band_zero
        return values, valid & ~zero

    def _read_band(self, obs: Observation, band: str, group_factor: int, window: tuple[int, int, int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One band on the group's grid: rounded DN, valid, and raw value 0 everywhere in the cell."""
        source = obs.bands[band]
        place = self._placements[source.path]
        row, col, height, width = window
        f = place.factor
        info = self._infos[source.path]
        # float32 holds DN exactly and reflectance x 10000 to 0.001 DN
        with open_raster(source.path) as src:  # opening is cheap; open JPEG 2000 files hold about 1 MiB each
            raw = read_window(src, source.index, (row - place.row) // f, (col - place.col) // f, height // f,
                              width // f, np.nan)
        radiometry = obs.radiometry
        valid = ~np.isnan(raw)
        for nodata in (info.nodata, radiometry.nodata):
            if nodata is not None:
                valid &= ~(np.isnan(raw) if np.isnan(nodata) else raw == nodata)
        zero = raw == 0
        saturated = valid & (raw == radiometry.saturated) if radiometry.saturated is not None else None
        dn = raw * radiometry.gain + radiometry.bias[band]
        checked = valid if saturated is None else valid & ~saturated
        if checked.any() and np.issubdtype(np.dtype(info.dtype), np.floating) and radiometry.gain == 1 and \
                np.abs(raw[checked]).max() <= 2:
            raise UserError(f"{source.path}: band {band} has float values up to {np.abs(raw[checked]).max():.3g}, "
                            "which look like reflectance 0..1; the records hold DN = reflectance x 10000 (pass "
                            "--scale 10000)")
        if checked.any():
            low, high = dn[checked].min(), dn[checked].max()
            if low < MIN_DN or high > MAX_DN:
                bias = radiometry.bias[band]
                raise UserError(f"{source.path}: band {band} gives DN {low:.0f}..{high:.0f} after scaling (value x "
                                f"{radiometry.gain:g} {'-' if bias < 0 else '+'} {abs(bias):g}); L1C DN lie in "
                                f"0..{MAX_DN} (reflectance x 10000): check --scale and --offset")
        dn = np.clip(np.where(valid, dn, 0.0), 0.0, None)
        if saturated is not None:
            dn[saturated] = radiometry.saturated
        k = group_factor // f
        if k > 1:
            dn, valid, zero = _block_reduce(dn, valid, zero, k)
        return np.rint(dn).astype(np.uint16), valid, zero


def _block_reduce(dn: np.ndarray, valid: np.ndarray, zero: np.ndarray, k: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of the valid values over k × k blocks; a block is valid with one valid value, zero when all are 0."""
    h, w = dn.shape[0] // k, dn.shape[1] // k

    def blocks(a: np.ndarray) -> np.ndarray:
        return a.reshape(h, k, w, k)

    count = blocks(valid).sum(axis=(1, 3))
    total = blocks(np.where(valid, dn, 0.0)).sum(axis=(1, 3))
    mean = np.divide(total, count, out=np.zeros((h, w)), where=count > 0)
    return mean, count > 0, blocks(zero).all(axis=(1, 3))


def open_area(inputs: Sequence[str | os.PathLike], options: SourceOptions = SourceOptions(),
              year: int | None = None) -> Area:
    """The :class:`Area` of the observations of ``inputs`` in ``year`` (see :func:`select_year`)."""
    return Area(select_year(find_observations(inputs, options), year))

