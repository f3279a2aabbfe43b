"""The files of a map (``predict.py``): tiled GeoTIFFs written band of rows by band of rows while the map is computed,
finished as Cloud-Optimized GeoTIFFs with overviews, and the whole-area quick look.

- ``classes.tif``: raw class ids (uint8, or uint16 for ids above 255), 0 = no data, a colour table in the TUM colours
  and the class names in the metadata (``class_<id>=<name>``); overviews by mode;
- ``confidence.tif``: the highest blended score (float32, NaN = no data); overviews by average;
- ``probabilities.tif`` (optional): one float32 band per class, named after it, NaN = no data;
- ``classes.png``: the class map of the whole area (at most :data:`PNG_SIDE` px) with a legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine

from utils.classes import ClassList
from utils.georef import GeoRef
from utils.rasters import BLOCK, class_colors, write_map_png

CLASSES_TIF, CONFIDENCE_TIF, PROBABILITIES_TIF, CLASSES_PNG = ("classes.tif", "confidence.tif", "probabilities.tif",
                                                               "classes.png")
PNG_SIDE = 2048
COG_BLOCK = 512


def class_dtype(classes: ClassList) -> str:
    """The smallest unsigned type of the raw class ids."""
    return "uint8" if max(classes.ids) <= 255 else "uint16"


def colormap(classes: ClassList) -> dict[int, tuple[int, int, int, int]]:
    """Raw id → RGBA of its class index in the TUM colours; 0 (no data) transparent white."""
    colors = class_colors(len(classes.ids))
    table = {raw: (*map(int, colors[index]), 255) for index, raw in enumerate(classes.ids)}
    table[0] = (255, 255, 255, 0)
    return table


class MapFiles:
    """The map's GeoTIFFs in ``folder`` covering ``height`` × ``width`` px from the top-left corner ``georef``."""

    def __init__(self, folder: Path, georef: GeoRef, height: int, width: int, classes: ClassList,
                 probabilities: bool):
        self.folder = folder
        self.classes = classes
        self.names = [CLASSES_TIF, CONFIDENCE_TIF] + ([PROBABILITIES_TIF] if probabilities else [])
        base = {"driver": "GTiff", "width": width, "height": height, "crs": CRS.from_epsg(georef.epsg),
                "transform": Affine.from_gdal(*georef.transform), "tiled": True, "blockxsize": BLOCK,
                "blockysize": BLOCK, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        self.profiles = {
            CLASSES_TIF: {**base, "count": 1, "dtype": class_dtype(classes), "nodata": 0, "predictor": 2},
            CONFIDENCE_TIF: {**base, "count": 1, "dtype": "float32", "nodata": float("nan"), "predictor": 3},
            PROBABILITIES_TIF: {**base, "count": classes.num_classes, "dtype": "float32", "nodata": float("nan"),
                                "predictor": 3},
        }

    def create(self) -> None:
        """Create the empty GeoTIFFs with their colour table, band names and class names."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            with rasterio.open(self.folder / name, "w", **self.profiles[name]) as dst:
                if name == CLASSES_TIF:
                    dst.write_colormap(1, colormap(self.classes))
                    dst.set_band_description(1, "class (raw id of classes.txt)")
                    dst.update_tags(**{f"class_{raw}": name for raw, name in zip(self.classes.ids[1:],
                                                                                  self.classes.names[1:],
                                                                                  strict=True)})
                elif name == CONFIDENCE_TIF:
                    dst.set_band_description(1, "highest blended class score")
                else:
                    for band, class_name in enumerate(self.classes.names[1:], start=1):
                        dst.set_band_description(band, class_name)

    def write(self, row: int, scores: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Write rows ``row..`` from blended ``scores`` (h, w, K) and the ``observed`` mask (h, w); returns the raw
        class ids written (0 = no data)."""
        index = np.where(observed, np.nan_to_num(scores, nan=-1.0).argmax(axis=-1) + 1, 0)
        raw = self.classes.to_raw(index)
        window = ((row, row + len(raw)), (0, raw.shape[1]))
        outputs = {CLASSES_TIF: raw[None].astype(self.profiles[CLASSES_TIF]["dtype"]),
                   CONFIDENCE_TIF: np.where(observed, np.nanmax(np.where(observed[..., None], scores, -1.0),
                                                                axis=-1), np.nan)[None].astype(np.float32),
                   PROBABILITIES_TIF: np.moveaxis(scores, -1, 0)}
        for name in self.names:
            with rasterio.open(self.folder / name, "r+") as dst:
                dst.write(outputs[name], window=window)
        return raw

    def finish(self, outdir: Path) -> list[Path]:
        """Copy every GeoTIFF into ``outdir`` as a Cloud-Optimized GeoTIFF with overviews (mode for the classes,
        average for the scores)."""
        done = []
        for name in self.names:
            resampling = "MODE" if name == CLASSES_TIF else "AVERAGE"
            rasterio.shutil.copy(self.folder / name, outdir / name, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                                 BLOCKSIZE=COG_BLOCK, OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER",
                                 NUM_THREADS="ALL_CPUS")
            done.append(outdir / name)
        return done


def write_quicklook(classes_tif: Path, path: Path, classes: ClassList, hectares: Sequence[float],
                    title: str) -> Path:
    """The whole class map at most :data:`PNG_SIDE` px wide or high (from the COG's overviews), with a legend of the
    classes present and their hectares."""
    with rasterio.open(classes_tif) as src:
        scale = max(1, -(-max(src.height, src.width) // PNG_SIDE))
        raw = src.read(1, out_shape=(-(-src.height // scale), -(-src.width // scale)), resampling=Resampling.mode)
    index = classes.to_index(raw)
    present = [k for k in range(1, len(classes.ids)) if hectares[k - 1] > 0]
    labels = [f"{classes.names[k]} ({hectares[k - 1]:,.1f} ha)" for k in present]
    return write_map_png(path, index, present, labels, title)

