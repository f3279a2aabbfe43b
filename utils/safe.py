"""Sentinel-2 SAFE products of level 1C and 2A, as a ``.SAFE`` folder or a ``.zip`` of one: the product metadata
and the band files of their granules.

From the product metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``; ``*_MTD_SAFL1C_*.xml`` / ``*_MTD_SAFL2A_*.xml``
in products of the format before December 2016) come the level, the processing baseline, the sensing date, the
quantification value, the additive offsets of processing baseline 04.00 and later (``RADIO_ADD_OFFSET`` in L1C,
``BOA_ADD_OFFSET`` in L2A, one per ``band_id`` 0..12 in the order of :data:`utils.bands.BANDS`) and the special
values (``NODATA``, ``SATURATED``). Reflectance = (DN + offset) / quantification value.

The band files are the JPEG 2000 images under ``GRANULE/<granule>/IMG_DATA/`` (L2A: ``R10m/``, ``R20m/``,
``R60m/``; each band is taken at the finest resolution the product has). A product of the old format may hold
several granules; each is a separate raster of the same date.
"""

from __future__ import annotations

import datetime
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from utils.bands import BANDS
from utils.cli import UserError

_METADATA = re.compile(r"(?:MTD_MSIL(1C|2A)|S2[A-D]_[A-Z]{4}_MTD_SAFL(1C|2A)_.*)\.xml", re.IGNORECASE)
_BAND_FILE = re.compile(r"(?:^|_)(B(?:0[1-9]|1[0-2]|8A))(?:_(\d+)m)?\.jp2", re.IGNORECASE)
_TILE_IN_NAME = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")
OFFSET_BASELINE = (4, 0)  # processing baseline from which the DN carry the additive offset


@dataclass(frozen=True)
class Granule:
    """One granule of a product: its name (the MGRS tile, e.g. ``T32UQU``, where known) and ``{band: raster path}``
    (paths rasterio opens; ``/vsizip/…`` inside a zip)."""

    name: str
    bands: dict[str, str]


@dataclass(frozen=True)
class Product:
    """The metadata and granules of one SAFE product."""

    path: Path
    level: str
    baseline: str
    date: datetime.date
    quantification: float
    offsets: dict[str, float]
    nodata: int | None
    saturated: int | None
    granules: tuple[Granule, ...]


def is_product(path: Path) -> bool:
    """Whether ``path`` looks like a SAFE product: a ``.SAFE`` folder, a folder with product metadata, or a zip."""
    if path.is_file():
        return path.suffix.lower() == ".zip"
    return path.is_dir() and (path.suffix.upper() == ".SAFE" or any(
        _METADATA.fullmatch(entry.name) for entry in path.iterdir()))


class _Container:
    """The files of a product, relative to its top folder, in a folder or a zip."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self.names = [p.relative_to(path).as_posix() for p in sorted(path.rglob("*")) if p.is_file()]
            self._zip = None
            self._top = ""
            return
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"{path}: not a readable zip file ({err})") from None
        members = [name for name in self._zip.namelist() if not name.endswith("/")]
        tops = {PurePosixPath(name).parts[0] for name in members if len(PurePosixPath(name).parts) > 1}
        metadata_at_top = any(_METADATA.fullmatch(name) for name in members)
        self._top = "" if metadata_at_top or len(tops) != 1 else f"{tops.pop()}/"
        self.names = sorted(name[len(self._top):] for name in members if name.startswith(self._top))

    def read(self, name: str) -> bytes:
        if self._zip is None:
            return (self.path / name).read_bytes()
        return self._zip.read(self._top + name)

    def raster(self, name: str) -> str:
        if self._zip is None:
            return str(self.path / name)
        return f"/vsizip/{self.path.resolve()}/{self._top}{name}"

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _elements(root: ElementTree.Element, tag: str) -> list[ElementTree.Element]:
    return [element for element in root.iter() if _local(element.tag) == tag]


def _first_text(root: ElementTree.Element, *tags: str) -> str | None:
    for tag in tags:
        for element in _elements(root, tag):
            if element.text and element.text.strip():
                return element.text.strip()
    return None


def _number(text: str, what: str, source: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{source}: {what} {text!r} is not a number") from None


def _baseline(text: str | None) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _special_values(root: ElementTree.Element, source: str) -> dict[str, int]:
    values = {}
    for element in _elements(root, "Special_Values"):
        text = _first_text(element, "SPECIAL_VALUE_TEXT")
        index = _first_text(element, "SPECIAL_VALUE_INDEX")
        if text and index:
            values[text.upper()] = int(_number(index, f"special value {text}", source))
    return values


def _offsets(root: ElementTree.Element, level: str, baseline: str, source: str) -> dict[str, float]:
    tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    offsets = {}
    for element in _elements(root, tag):
        band_id = element.get("band_id")
        if band_id is None or not band_id.isdigit() or int(band_id) >= len(BANDS):
            raise UserError(f"{source}: {tag} with band_id {band_id!r}; expected 0..{len(BANDS) - 1}")
        offsets[BANDS[int(band_id)]] = _number(element.text or "", tag, source)
    version = _baseline(baseline)
    if not offsets and version is not None and version >= OFFSET_BASELINE:
        raise UserError(f"{source}: processing baseline {baseline} but no {tag} values: the DN offset of "
                        "baseline 04.00 and later cannot be known")
    if offsets and len(offsets) != len(BANDS):
        missing = [band for band in BANDS if band not in offsets]
        raise UserError(f"{source}: no {tag} for band {', '.join(missing)}")
    return offsets or dict.fromkeys(BANDS, 0.0)


def _sensing_date(root: ElementTree.Element, source: str) -> datetime.date:
    text = _first_text(root, "PRODUCT_START_TIME", "DATATAKE_SENSING_START", "SENSING_TIME")
    if text is None:
        raise UserError(f"{source}: no PRODUCT_START_TIME or DATATAKE_SENSING_START: the sensing date is unknown")
    try:
        return datetime.date.fromisoformat(text[:10])
    except ValueError:
        raise UserError(f"{source}: sensing time {text!r} is not a date") from None


def _granules(container: _Container) -> tuple[Granule, ...]:
    """The band files of every granule, each band at the finest resolution present."""
    found: dict[str, dict[str, tuple[int, str]]] = {}
    for name in container.names:
        parts = PurePosixPath(name).parts
        if len(parts) < 4 or parts[0] != "GRANULE" or "IMG_DATA" not in parts[2:-1]:
            continue
        match = _BAND_FILE.search(parts[-1])
        if match is None:
            continue
        band = match.group(1).upper()
        resolution = int(match.group(2)) if match.group(2) else 0
        bands = found.setdefault(parts[1], {})
        if band not in bands or resolution < bands[band][0]:
            bands[band] = (resolution, container.raster(name))
    granules = []
    for folder, bands in sorted(found.items()):
        tile = _TILE_IN_NAME.search(folder)
        granules.append(Granule(f"T{tile.group(1)}" if tile else folder,
                                {band: path for band, (_, path) in bands.items()}))
    return tuple(granules)


def read_product(path: str | Path) -> Product:
    """Read the metadata and find the band files of a SAFE product (folder or zip)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    container = _Container(path)
    try:
        metadata = [name for name in container.names if "/" not in name and _METADATA.fullmatch(name)]
        if len(metadata) != 1:
            what = "no product metadata" if not metadata else f"{len(metadata)} product metadata files"
            raise UserError(f"{path}: {what} (MTD_MSIL1C.xml or MTD_MSIL2A.xml): not a Sentinel-2 L1C/L2A SAFE "
                            "product")
        source = f"{path}/{metadata[0]}" if path.is_dir() else f"{path}!{metadata[0]}"
        match = _METADATA.fullmatch(metadata[0])
        level = "L" + (match.group(1) or match.group(2)).upper()
        try:
            root = ElementTree.fromstring(container.read(metadata[0]))
        except ElementTree.ParseError as err:
            raise UserError(f"{source}: not readable XML ({err})") from None
        baseline = _first_text(root, "PROCESSING_BASELINE") or "unknown"
        quantification = _first_text(root, "QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE")
        quantification = 10000.0 if quantification is None else _number(quantification, "quantification value",
                                                                         source)
        if quantification <= 0:
            raise UserError(f"{source}: quantification value {quantification:g} must be positive")
        special = _special_values(root, source)
        granules = _granules(container)
        if not granules:
            raise UserError(f"{path}: no band files under GRANULE/*/IMG_DATA/")
        return Product(path=path, level=level, baseline=baseline, date=_sensing_date(root, source),
                       quantification=quantification, offsets=_offsets(root, level, baseline, source),
                       nodata=special.get("NODATA", 0), saturated=special.get("SATURATED"), granules=granules)
    finally:
        container.close()
