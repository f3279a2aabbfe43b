"""Raster outputs: GeoTIFF write/read, the TUM class colour map, PNG maps and plots, and COG mosaics of tiles.

PNG class maps take class *indices* (line numbers of ``classes.txt``, 0 = unknown), not raw ids; convert raw ids
with :meth:`utils.classes.ClassList.to_index`. Small tiles are upscaled by an integer factor with nearest-neighbour
pixels (no blur) so that the image is at least :data:`MIN_PNG_SIZE` pixels wide or high.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import rasterio
import rasterio.merge
import rasterio.shutil
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine

from utils.cli import UserError
from utils.fsio import atomic_file
from utils.georef import GeoRef

# The colour list of the 2018_IJGI notebook ("tum", ORIGINAL.md §8.3): class index k gets colour k, index 0 is white.
TUM_COLORS = np.array(
    [[0, 101, 189], [0, 0, 0], [79, 76, 76], [0, 82, 147], [152, 198, 234], [100, 160, 200], [218, 215, 203],
     [162, 173, 0], [227, 114, 34], [105, 8, 90], [15, 27, 95], [0, 119, 138], [0, 124, 48], [103, 154, 29],
     [255, 220, 0], [249, 186, 0], [214, 76, 19], [196, 72, 27], [156, 13, 22]],
    dtype=np.uint8,
)
UNKNOWN_COLOR = (255, 255, 255)
# Error map colours (Okabe-Ito, readable with colour-vision deficiencies); unknown pixels are white as in class maps.
ERROR_COLORS = {"correct": (0, 158, 115), "wrong": (213, 94, 0), "unknown": UNKNOWN_COLOR}
MIN_PNG_SIZE = 240
BLOCK = 256  # GeoTIFF tile size for rasters larger than one block, and the COG block size

# Tiles without a geotransforms.csv row are written and read without georeference on purpose. The filter is set
# once for the process: warnings.catch_warnings is not thread-safe, and tiles are written from worker threads.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def _as_bands(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        return array[np.newaxis]
    if array.ndim == 3:
        return array
    raise ValueError(f"expected a (H, W) or (bands, H, W) array, got shape {array.shape}")


def _cast(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast to ``dtype``; integer targets must hold every value (no silent wrap-around)."""
    if np.issubdtype(dtype, np.integer) and array.size and array.dtype != bool:
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise ValueError(f"cannot write NaN or infinite values as {dtype}")
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise ValueError(f"values {low}..{high} do not fit {dtype}")
    return array.astype(dtype, copy=False)


def write_geotiff(path: str | os.PathLike, array: np.ndarray, georef: GeoRef | None, dtype=None,
                  nodata: float | None = None, descriptions: Sequence[str] | None = None) -> Path:
    """Write a (H, W) or (bands, H, W) array as a DEFLATE-compressed GeoTIFF, atomically.

    ``dtype=None`` follows the original ``evaluate.py``: integer arrays become Int16, all others (float, bool)
    Float32. ``georef`` gives the geotransform and ``EPSG:<epsg>``; ``None`` writes no georeference.
    ``descriptions`` names the bands. Rasters larger than 256 px are tiled in 256×256 blocks.
    """
    bands = _as_bands(array)
    if dtype is None:
        dtype = np.int16 if np.issubdtype(bands.dtype, np.integer) else np.float32
    dtype = np.dtype(dtype)
    data = _cast(bands, dtype)
    count, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype.name,
               "nodata": nodata, "compress": "deflate",
               "predictor": 2 if np.issubdtype(dtype, np.integer) else 3}
    if max(height, width) > BLOCK:
        profile.update(tiled=True, blockxsize=BLOCK, blockysize=BLOCK)
    if georef is not None:
        profile.update(crs=CRS.from_epsg(georef.epsg), transform=Affine.from_gdal(*georef.transform))
    if descriptions is not None and len(descriptions) != count:
        raise ValueError(f"{len(descriptions)} band descriptions for {count} bands")
    with atomic_file(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        for band, description in enumerate(descriptions or (), start=1):
            dst.set_band_description(band, description)
    return Path(path)


def _unreadable(path: Path, err: Exception) -> UserError:
    reason = " ".join(str(err).split())
    return UserError(f"{path}: not a readable GeoTIFF ({reason})")


def _open(path: Path):
    """Open a GeoTIFF for reading; a missing or unreadable file is a one-line :class:`UserError`."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return rasterio.open(path, driver="GTiff")
    except RasterioError as err:
        raise _unreadable(path, err) from None


def open_raster(path: str | os.PathLike):
    """Open a raster of any format rasterio reads (a path or a GDAL name such as ``/vsizip/…``); an unreadable one is
    a one-line :class:`UserError`."""
    try:
        return rasterio.open(path)
    except RasterioError as err:
        raise UserError(f"{path}: not a readable raster ({' '.join(str(err).split())})") from None


def read_window(src, index: int, row: int, col: int, height: int, width: int, fill: float,
                dtype: np.dtype = np.float32) -> np.ndarray:
    """Band ``index`` of the open raster ``src`` as ``dtype`` in the window whose top-left pixel is ``(row, col)``;
    the window may reach beyond the raster, where it holds ``fill``."""
    out = np.full((height, width), fill, dtype)
    r_lo, r_hi = max(row, 0), min(row + height, src.height)
    c_lo, c_hi = max(col, 0), min(col + width, src.width)
    if r_lo < r_hi and c_lo < c_hi:
        try:
            out[r_lo - row:r_hi - row, c_lo - col:c_hi - col] = src.read(index, window=((r_lo, r_hi), (c_lo, c_hi)))
        except RasterioError as err:
            raise UserError(f"{src.name}: cannot be read ({' '.join(str(err).split())})") from None
    return out


def read_geotiff(path: str | os.PathLike) -> tuple[np.ndarray, GeoRef | None]:
    """Read a GeoTIFF: a (H, W) array for one band, else (bands, H, W), and its :class:`GeoRef` (None without CRS)."""
    path = Path(path)
    with _open(path) as src:
        try:
            data = src.read()
        except RasterioError as err:
            raise _unreadable(path, err) from None
        crs, transform = src.crs, src.transform
    georef = None
    if crs is not None:
        epsg = crs.to_epsg()
        if epsg is None:
            raise UserError(f"{path}: its CRS has no EPSG code")
        georef = GeoRef(tuple(float(value) for value in transform.to_gdal()), epsg)
    return (data[0] if data.shape[0] == 1 else data), georef


def class_colors(num_entries: int) -> np.ndarray:
    """The project's class colour map: (num_entries, 3) uint8, entry k = TUM colour k (cycled), entry 0 white."""
    colors = TUM_COLORS[np.arange(num_entries) % len(TUM_COLORS)]
    if num_entries:
        colors[0] = UNKNOWN_COLOR
    return colors


def _class_indices(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"class index maps must be integers, got {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError("class index maps must not be negative")
    return array


def colorize(class_index_map: np.ndarray) -> np.ndarray:
    """RGB uint8 image (..., 3) of a class-index map with :func:`class_colors`."""
    indices = _class_indices(class_index_map)
    return class_colors(int(indices.max()) + 1 if indices.size else 1)[indices]


def png_scale(height: int, width: int) -> int:
    """The integer upscaling factor that makes the longer side at least :data:`MIN_PNG_SIZE` pixels."""
    return max(1, math.ceil(MIN_PNG_SIZE / max(height, width, 1)))


def write_png(path: str | os.PathLike, rgb: np.ndarray, scale: int | None = None) -> Path:
    """Write an (H, W, 3) uint8 image as PNG, upscaled ``scale`` times (default :func:`png_scale`) without blur."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
    scale = png_scale(*rgb.shape[:2]) if scale is None else scale
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    with atomic_file(path) as tmp:
        Image.fromarray(big).save(tmp, format="PNG")
    return Path(path)


def write_class_png(path: str | os.PathLike, class_index_map: np.ndarray, scale: int | None = None) -> Path:
    """PNG of a (H, W) class-index map (prediction or ground truth) in the TUM colours."""
    return write_png(path, colorize(class_index_map), scale)


def error_rgb(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours of correct / wrong / unknown pixels (:data:`ERROR_COLORS`) of two class-index maps."""
    y_true, y_pred = _class_indices(y_true), _class_indices(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"expected two (H, W) maps of equal shape, got {y_true.shape} and {y_pred.shape}")
    rgb = np.empty(y_true.shape + (3,), dtype=np.uint8)
    rgb[...] = ERROR_COLORS["wrong"]
    rgb[y_true == y_pred] = ERROR_COLORS["correct"]
    rgb[y_true == 0] = ERROR_COLORS["unknown"]
    return rgb


def write_error_png(path: str | os.PathLike, y_true: np.ndarray, y_pred: np.ndarray,
                    scale: int | None = None) -> Path:
    """PNG of correct / wrong / unknown pixels (:data:`ERROR_COLORS`) of two (H, W) class-index maps."""
    return write_png(path, error_rgb(y_true, y_pred), scale)


def write_colormapped_png(path: str | os.PathLike, array: np.ndarray, cmap: str | Colormap, vmin: float,
                          vmax: float, scale: int | None = None) -> Path:
    """PNG of a (H, W) array through a matplotlib colour map on the fixed range vmin..vmax (clipped; NaN white)."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a (H, W) array, got shape {array.shape}")
    if not vmax > vmin:
        raise ValueError(f"vmax ({vmax}) must be greater than vmin ({vmin})")
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    rgb = colormap(np.clip((array - vmin) / (vmax - vmin), 0.0, 1.0), bytes=True)[..., :3]
    rgb[np.isnan(array)] = UNKNOWN_COLOR
    return write_png(path, rgb, scale)


def write_confidence_png(path: str | os.PathLike, scores: np.ndarray, scale: int | None = None) -> Path:
    """PNG of the confidence (max softmax score) in ``inferno`` on 0..1; ``scores`` is (H, W) or (H, W, classes)."""
    scores = np.asarray(scores)
    confidence = scores.max(axis=-1) if scores.ndim == 3 else scores
    return write_colormapped_png(path, confidence, "inferno", 0.0, 1.0, scale)


def _save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.1)
    return Path(path)


def write_legend_png(path: str | os.PathLike, names: Sequence[str], ids: Sequence[int] | None = None) -> Path:
    """PNG legend: a swatch and the name (and raw id) of every class of ``classes.txt``, unknown included."""
    labels = [str(name) for name in names] if ids is None else [
        f"{name} (id {i})" for i, name in zip(ids, names, strict=True)]
    colors = class_colors(len(names)) / 255.0
    row_height = 0.3  # inches
    figure = Figure(figsize=(3.2, row_height * len(names)), dpi=150)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, 3.2)
    axes.set_ylim(len(names), 0)
    axes.set_axis_off()
    for k, label in enumerate(labels):
        axes.add_patch(Rectangle((0.05, k + 0.15), 0.35, 0.7, facecolor=colors[k], edgecolor="black",
                                 linewidth=0.6))
        axes.text(0.55, k + 0.5, label, va="center", ha="left", fontsize=10)
    return _save_figure(figure, path)


def write_map_png(path: str | os.PathLike, class_index_map: np.ndarray, present: Sequence[int],
                  labels: Sequence[str], title: str) -> Path:
    """A class-index map in the TUM colours (index 0 white: no data or unknown) beside a legend of the class indices
    ``present`` with their ``labels``."""
    index = _class_indices(class_index_map)
    colors = class_colors(max(int(index.max()) + 1 if index.size else 1, max(present, default=0) + 1))
    height, width = index.shape
    longer = max(height, width)
    figure = Figure(figsize=(8.0 * width / longer + 3.0, 8.0 * height / longer + 0.5),
                    dpi=max(100, min(300, longer // 8)))
    axes = figure.add_axes((0.0, 0.0, 8.0 * width / longer / figure.get_figwidth(), 1.0 - 0.5 / figure.get_figheight()))
    axes.imshow(colors[index], interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(title, fontsize=10)
    axes.legend(handles=[Rectangle((0, 0), 1, 1, facecolor=colors[k] / 255.0, edgecolor="black", linewidth=0.5)
                         for k in present], labels=list(labels), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                fontsize=8, frameon=False)
    return _save_figure(figure, path)


def write_confusion_png(path: str | os.PathLike, matrix: np.ndarray, names: Sequence[str],
                        title: str = "Confusion matrix, row-normalised (recall, %)") -> Path:
    """Plot of a K×K confusion matrix normalised per true class (row), annotated in %, with class names on both axes.

    ``names`` is the ``classes.txt`` list (index 0 = unknown, not plotted). Cells without pixels stay blank; rows
    without support are grey. The y labels give the support of each true class in pixels.
    """
    counts = np.asarray(matrix, dtype=np.float64)
    k = counts.shape[0]
    if counts.shape != (k, k) or len(names) != k + 1:
        raise ValueError(f"expected a square matrix and {k + 1} class names, got {counts.shape} and {len(names)}")
    support = counts.sum(axis=1)
    percent = np.full(counts.shape, np.nan)
    np.divide(100 * counts, support[:, None], out=percent, where=support[:, None] > 0)
    figure = Figure(figsize=(0.5 * k + 3.5, 0.45 * k + 2.5), dpi=150)
    axes = figure.add_subplot()
    colormap = matplotlib.colormaps["Blues"].with_extremes(bad="0.85")
    image = axes.imshow(np.ma.masked_invalid(percent), cmap=colormap, vmin=0, vmax=100)
    fontsize = 7 if k > 12 else 9
    for (row, col), value in np.ndenumerate(percent):
        if counts[row, col] > 0:
            text = f"{value:.0f}" if value >= 0.5 else "<1"
            axes.text(col, row, text, ha="center", va="center", fontsize=fontsize,
                      color="white" if value > 60 else "black")
    class_names = [str(name) for name in names[1:]]
    axes.set_xticks(range(k), class_names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(k), [f"{name} ({int(n):,})" for name, n in zip(class_names, support, strict=True)])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class (support in pixels)")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.03, label="% of the true class")
    return _save_figure(figure, path)


def _grid(path: Path) -> dict:
    """The properties that every tile of a mosaic must share."""
    with _open(path) as src:
        if src.crs is None:
            raise UserError(f"{path}: not georeferenced (no CRS), cannot be placed in a mosaic")
        return {"CRS": src.crs, "resolution": src.res, "data type": src.dtypes[0], "band count": src.count,
                "nodata": src.nodata}


def _same(name: str, a, b) -> bool:
    if name == "resolution":
        return all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(a, b, strict=True))
    if name == "nodata" and a is not None and b is not None:
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def mosaic(tile_paths: Sequence[str | os.PathLike], out_path: str | os.PathLike,
           nodata: float | None = None) -> Path:
    """Merge GeoTIFF tiles, placed by their geotransforms, into one Cloud-Optimized GeoTIFF (replaces gdal_merge.py).

    All tiles must share CRS, resolution, data type, band count and nodata; the output keeps them. Gaps get
    ``nodata`` (default: the tiles' nodata value, or 0 as gdal_merge.py when they have none). Overviews are built
    with nearest-neighbour resampling for integer rasters (class maps) and averaging for float rasters.
    """
    paths = [Path(p) for p in tile_paths]
    out_path = Path(out_path)
    if not paths:
        raise UserError(f"{out_path}: no tiles to merge")
    reference = _grid(paths[0])
    for path in paths[1:]:
        grid = _grid(path)
        for name, value in grid.items():
            if not _same(name, value, reference[name]):
                raise UserError(f"{path}: {name} {value} differs from {reference[name]} of {paths[0]}")
    integer = np.issubdtype(np.dtype(reference["data type"]), np.integer)
    with (warnings.catch_warnings(), atomic_file(out_path) as tmp,
          tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".mosaic.") as work):
        merged = Path(work) / "merged.tif"
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # rasterio's own use of the affine package
        rasterio.merge.merge(paths, nodata=nodata, dst_path=merged,
                             dst_kwds={"driver": "GTiff", "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK,
                                       "compress": "deflate", "BIGTIFF": "IF_SAFER"})
        rasterio.shutil.copy(merged, tmp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=BLOCK,
                             RESAMPLING="NEAREST" if integer else "AVERAGE", BIGTIFF="IF_SAFER",
                             NUM_THREADS="ALL_CPUS")
    return out_path
