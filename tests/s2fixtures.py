"""Sentinel-2 data as users have them, written by the tests from the real eo-learn Slovenia scenes: per-date band
files at each band's native resolution (GeoTIFF or JPEG 2000) and miniature SAFE products (the folder layout and
metadata fields of the ESA product specification, PSD 14.x), as folders or zips."""

from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from utils.bands import BANDS, level_bands
from utils.georef import GeoRef

SLOVENIA_ORIGIN = (465181.0522318204, 5080254.63349641)  # top-left corner of bbox.geojson, EPSG:32633
SCENE_ORDER = [2, 1, 4, 3, 0]  # REFERENCE_SCENES.npy scene i is timestamp index SCENE_ORDER[i]
NATIVE = {**dict.fromkeys(("B02", "B03", "B04", "B08"), 1), **dict.fromkeys(("B01", "B09", "B10"), 6),
          **dict.fromkeys(("B05", "B06", "B07", "B8A", "B11", "B12"), 2)}
TILE = "T33TVM"


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


def band_images(dn: np.ndarray) -> dict[str, np.ndarray]:
    """One scene (H, W, 13) as ``{band: image at its native resolution}``."""
    return {band: native(dn[..., k], NATIVE[band]) for k, band in enumerate(BANDS)}


def write_raster(path: Path, image: np.ndarray, grid: GeoRef, factor: int, nodata: float | None = None,
                 dtype: str = "uint16") -> Path:
    """One band as GeoTIFF, or lossless JPEG 2000 when ``path`` ends in ``.jp2``; NaN (no data) is written as
    ``nodata``, or 0 without one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    jp2 = path.suffix == ".jp2"
    profile = {"driver": "JP2OpenJPEG" if jp2 else "GTiff", "width": image.shape[1], "height": image.shape[0],
               "count": 1, "dtype": dtype, "crs": CRS.from_epsg(grid.epsg),
               "transform": Affine.from_gdal(*grid.scaled(factor).transform), "nodata": nodata}
    if jp2:
        profile.update(QUALITY=100, REVERSIBLE="YES")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.nan_to_num(image, nan=0 if nodata is None else nodata).astype(dtype), 1)
    return path


def write_band_folder(folder: Path, images: dict[str, np.ndarray], grid: GeoRef, suffix: str = ".tif",
                      nodata: float | None = None, date: datetime.date | None = None) -> Path:
    """A per-date folder of band files named like ``T33TVM_20150711T100008_B8A.tif``."""
    stamp = f"{TILE}_{date:%Y%m%d}T100008_" if date else ""
    for band, image in images.items():
        write_raster(folder / f"{stamp}{band}{suffix}", image, grid, NATIVE[band], nodata)
    return folder


def _metadata(level: str, date: datetime.date, baseline: str, offset: float | None, granule: str,
              bands: dict[str, str]) -> str:
    """``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` with the fields of the product specification that matter here."""
    stamp = f"{date:%Y-%m-%d}T10:00:08.026Z"
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
      <Datatake datatakeIdentifier="GS2A_{date:%Y%m%d}T100008_000123_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
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


def write_safe(parent: Path, date: datetime.date, images: dict[str, np.ndarray], grid: GeoRef, level: str = "L1C",
               baseline: str = "04.00", offset: float | None = -1000, as_zip: bool = False) -> Path:
    """A miniature SAFE product of one granule: DN − ``offset``, NaN as 0 (no data), JPEG 2000 band files
    (L2A: in ``R10m``/``R20m``/``R60m`` with every band also at the coarser resolutions, as sen2cor writes them)."""
    kind = "1C" if level == "L1C" else "2A"
    name = f"S2A_MSIL{kind}_{date:%Y%m%d}T100008_N{baseline.replace('.', '')}_R122_{TILE}_{date:%Y%m%d}T120000"
    product = parent / f"{name}.SAFE"
    granule = f"L{kind}_{TILE}_A000123_{date:%Y%m%d}T100008"
    shift = -(offset or 0)
    files = {}
    for band in level_bands(level):
        image = images[band] + shift
        factors = [NATIVE[band]] if level == "L1C" else [f for f in (1, 2, 6) if f >= NATIVE[band]]
        for factor in factors:
            stem = f"{TILE}_{date:%Y%m%d}T100008_{band}" + ("" if level == "L1C" else f"_{10 * factor}m")
            folder = "" if level == "L1C" else f"R{10 * factor}m/"
            coarse = native(image, factor // NATIVE[band])
            write_raster(product / "GRANULE" / granule / "IMG_DATA" / f"{folder}{stem}.jp2", coarse, grid, factor)
            files[f"{band}_{factor}"] = f"{folder}{stem}"
    (product / f"MTD_MSIL{kind}.xml").write_text(_metadata(level, date, baseline, offset, granule, files))
    (product / "GRANULE" / granule / "QI_DATA").mkdir()
    if not as_zip:
        return product
    archive = shutil.make_archive(str(parent / name), "zip", root_dir=parent, base_dir=product.name)
    shutil.rmtree(product)
    return Path(archive)
