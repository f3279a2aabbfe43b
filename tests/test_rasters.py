"""GeoTIFF output, the TUM colour map, PNG maps and plots, and COG mosaics."""

import matplotlib
import numpy as np
import pytest
import rasterio
from PIL import Image

from utils.classes import lookup
from utils.cli import UserError
from utils.georef import GeoRef
from utils.rasters import (
    ERROR_COLORS,
    TUM_COLORS,
    class_colors,
    colorize,
    error_rgb,
    mosaic,
    png_scale,
    read_geotiff,
    write_class_png,
    write_colormapped_png,
    write_confidence_png,
    write_confusion_png,
    write_error_png,
    write_geotiff,
    write_legend_png,
    write_png,
)

GEOREF = GeoRef((600000.0, 10.0, 0.0, 5300000.0, 0.0, -10.0), 32632)
NAMES = ["unknown", "sugar beet", "summer oat", "meadow", "rape", "hop", "winter spelt", "winter triticale", "beans",
         "peas", "potatoe", "soybeans", "asparagus", "winter wheat", "winter barley", "winter rye", "summer barley",
         "maize"]
IDS = [0, 1, 2, 3, 5, 8, 9, 12, 13, 15, 16, 17, 19, 22, 23, 24, 25, 26]


def shifted(georef: GeoRef, rows: int, cols: int) -> GeoRef:
    """The georeference of a grid whose top-left pixel is (rows, cols) pixels from ``georef``'s."""
    xmin, xres, rot1, ymax, rot2, yres = georef.transform
    return GeoRef((xmin + cols * xres, xres, rot1, ymax + rows * yres, rot2, yres), georef.epsg)


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def no_partial_files(folder) -> bool:
    return not any(".part" in p.name or p.name.startswith(".") for p in folder.iterdir())


def test_geotiff_dtype_rule_transform_and_crs(tmp_path):
    labels = np.arange(24 * 24, dtype=np.int64).reshape(24, 24) % 27
    write_geotiff(tmp_path / "prediction.tif", labels, GEOREF)
    write_geotiff(tmp_path / "mask.tif", labels > 3, GEOREF)
    write_geotiff(tmp_path / "loss.tif", labels / 7.0, GEOREF)
    with rasterio.open(tmp_path / "prediction.tif") as src:
        assert src.dtypes == ("int16",)
        assert src.crs.to_epsg() == 32632
        assert src.transform.to_gdal() == GEOREF.transform
        assert (src.width, src.height, src.count) == (24, 24, 1)
        assert src.nodata is None
        assert src.compression.name.lower() == "deflate"
        np.testing.assert_array_equal(src.read(1), labels)
    with rasterio.open(tmp_path / "mask.tif") as src:
        assert src.dtypes == ("float32",)  # bool is not an integer type: Float32 as in the original
        np.testing.assert_array_equal(src.read(1), (labels > 3).astype(np.float32))
    with rasterio.open(tmp_path / "loss.tif") as src:
        assert src.dtypes == ("float32",)
        np.testing.assert_allclose(src.read(1), labels / 7.0, rtol=1e-7)
    assert no_partial_files(tmp_path)


def test_geotiff_explicit_dtype_multiband_nodata_and_tiling(tmp_path):
    bands = np.random.default_rng(0).integers(0, 12000, size=(4, 48, 48))
    georef = GeoRef((465181.0, 20.0, 0.0, 5080255.0, 0.0, -20.0), 32633)
    write_geotiff(tmp_path / "20m.tif", bands, georef, dtype=np.uint16, nodata=0)
    with rasterio.open(tmp_path / "20m.tif") as src:
        assert src.dtypes == ("uint16",) * 4
        assert src.nodata == 0
        assert src.res == (20.0, 20.0)
        np.testing.assert_array_equal(src.read(), bands)
    write_geotiff(tmp_path / "large.tif", np.zeros((300, 520), np.float32), GEOREF)
    with rasterio.open(tmp_path / "large.tif") as src:
        assert src.block_shapes == [(256, 256)]


def test_read_geotiff_round_trip(tmp_path):
    single = np.array([[1, -2], [300, 4]], dtype=np.int16)
    write_geotiff(tmp_path / "one.tif", single, GEOREF)
    array, georef = read_geotiff(tmp_path / "one.tif")
    assert georef == GEOREF and array.dtype == np.int16
    np.testing.assert_array_equal(array, single)
    multi = np.arange(3 * 5 * 6, dtype=np.uint16).reshape(3, 5, 6)
    write_geotiff(tmp_path / "multi.tif", multi, None, dtype="uint16")
    array, georef = read_geotiff(tmp_path / "multi.tif")
    assert georef is None
    np.testing.assert_array_equal(array, multi)


def test_geotiff_bad_input(tmp_path):
    with pytest.raises(ValueError, match="do not fit int16"):
        write_geotiff(tmp_path / "x.tif", np.array([[40000]]), GEOREF)
    with pytest.raises(ValueError, match="do not fit uint16"):
        write_geotiff(tmp_path / "x.tif", np.array([[-1]]), GEOREF, dtype=np.uint16)
    with pytest.raises(ValueError, match="NaN"):
        write_geotiff(tmp_path / "x.tif", np.array([[np.nan]]), GEOREF, dtype=np.int16)
    with pytest.raises(ValueError, match="shape"):
        write_geotiff(tmp_path / "x.tif", np.zeros(5), GEOREF)
    assert not (tmp_path / "x.tif").exists() and no_partial_files(tmp_path)
    with pytest.raises(UserError, match="missing.tif: no such file"):
        read_geotiff(tmp_path / "missing.tif")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 this is not a tiff")
    with pytest.raises(UserError, match="broken.tif: not a readable GeoTIFF") as err:
        read_geotiff(tmp_path / "broken.tif")
    assert "\n" not in str(err.value)
    write_png(tmp_path / "image.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(UserError, match="image.png: not a readable GeoTIFF"):
        read_geotiff(tmp_path / "image.png")


def test_class_colors_and_colorize():
    colors = class_colors(18)
    assert colors.shape == (18, 3) and colors.dtype == np.uint8
    assert tuple(colors[0]) == (255, 255, 255)
    assert tuple(colors[1]) == (0, 0, 0) and tuple(colors[13]) == (103, 154, 29) and tuple(colors[17]) == (196, 72, 27)
    np.testing.assert_array_equal(class_colors(40)[18:21], TUM_COLORS[[18, 0, 1]])  # cycled beyond 19 entries
    np.testing.assert_array_equal(colorize(np.array([[0, 2], [17, 1]])), [[colors[0], colors[2]],
                                                                          [colors[17], colors[1]]])
    with pytest.raises(ValueError, match="integers"):
        colorize(np.array([0.5]))
    with pytest.raises(ValueError, match="negative"):
        colorize(np.array([-1]))


def test_class_png_is_upscaled_without_blur(tmp_path):
    indices = np.random.default_rng(1).integers(0, 18, size=(24, 24))
    write_class_png(tmp_path / "prediction.png", indices)
    with Image.open(tmp_path / "prediction.png") as png:
        assert (png.format, png.mode) == ("PNG", "RGB")
    image = read_png(tmp_path / "prediction.png")
    assert image.shape == (240, 240, 3) and png_scale(24, 24) == 10
    blocks = image.reshape(24, 10, 24, 10, 3)
    expected = class_colors(18)[indices]
    np.testing.assert_array_equal(blocks, np.broadcast_to(expected[:, None, :, None], blocks.shape))
    write_class_png(tmp_path / "native.png", indices, scale=1)
    np.testing.assert_array_equal(read_png(tmp_path / "native.png"), expected)
    assert png_scale(48, 48) == 5 and png_scale(101, 100) == 3 and png_scale(480, 480) == 1


def test_real_land_cover_map_png(tmp_path, realdata):
    lulc = np.load(realdata / "eolearn_testeopatch_slovenia" / "mask_timeless" / "LULC.npy")[..., 0]
    indices = lookup([0, 1, 2, 3, 4, 8], range(6), lulc)
    write_class_png(tmp_path / "lulc.png", indices)
    image = read_png(tmp_path / "lulc.png")
    assert image.shape == (303, 300, 3)
    np.testing.assert_array_equal(image[::3, ::3], class_colors(6)[indices])
    forest = np.all(image == class_colors(6)[2], axis=-1).sum()
    assert forest == 7601 * 9  # every forest pixel of the LULC layer, 3×3 upscaled


def test_error_png_colours(tmp_path):
    y_true = np.array([[0, 1], [2, 3]])
    y_pred = np.array([[1, 1], [3, 3]])
    write_error_png(tmp_path / "error.png", y_true, y_pred, scale=2)
    image = read_png(tmp_path / "error.png")
    assert image.shape == (4, 4, 3)
    assert tuple(image[0, 0]) == ERROR_COLORS["unknown"]
    assert tuple(image[1, 3]) == ERROR_COLORS["correct"] and tuple(image[3, 3]) == ERROR_COLORS["correct"]
    assert tuple(image[2, 1]) == ERROR_COLORS["wrong"]
    assert len(set(ERROR_COLORS.values())) == 3
    with pytest.raises(ValueError, match="equal shape"):
        write_error_png(tmp_path / "bad.png", y_true, y_pred[:1])


def test_confidence_and_colormapped_png(tmp_path):
    scores = np.zeros((2, 3, 17))
    scores[..., 0] = [[0.0, 0.25, 0.5], [0.75, 1.0, 1.0]]
    scores[1, 2, 3] = 1.7  # above the fixed 0..1 range: clipped
    write_confidence_png(tmp_path / "confidence.png", scores, scale=1)
    inferno = matplotlib.colormaps["inferno"]
    expected = inferno(np.clip(scores.max(axis=-1), 0, 1), bytes=True)[..., :3]
    np.testing.assert_array_equal(read_png(tmp_path / "confidence.png"), expected)
    gate = np.array([[-1.0, 0.0], [1.0, np.nan]])
    write_colormapped_png(tmp_path / "gate.png", gate, "RdBu_r", -1, 1, scale=3)
    image = read_png(tmp_path / "gate.png")
    assert image.shape == (6, 6, 3)
    rdbu = matplotlib.colormaps["RdBu_r"]
    assert tuple(image[0, 0]) == tuple(rdbu(0.0, bytes=True)[:3])
    assert tuple(image[0, 5]) == tuple(rdbu(0.5, bytes=True)[:3])
    assert tuple(image[5, 0]) == tuple(rdbu(1.0, bytes=True)[:3])
    assert tuple(image[5, 5]) == (255, 255, 255)  # NaN
    with pytest.raises(ValueError, match="greater than vmin"):
        write_colormapped_png(tmp_path / "bad.png", gate, "inferno", 1, 1)


def test_legend_png_shows_every_class_colour(tmp_path):
    write_legend_png(tmp_path / "legend.png", NAMES, IDS)
    image = read_png(tmp_path / "legend.png")
    height, width, _ = image.shape
    assert 700 < height < 1000 and 300 < width < 700
    pixels = set(map(tuple, image.reshape(-1, 3)))
    assert all(tuple(color) in pixels for color in class_colors(len(NAMES)))
    with pytest.raises(ValueError):
        write_legend_png(tmp_path / "bad.png", NAMES, IDS[1:])


def test_confusion_png(tmp_path):
    rng = np.random.default_rng(3)
    matrix = rng.integers(0, 50, size=(17, 17)) + np.diag(rng.integers(500, 5000, size=17))
    matrix[8] = 0  # a class without support: a grey row
    write_confusion_png(tmp_path / "confusion.png", matrix, NAMES)
    image = read_png(tmp_path / "confusion.png")
    assert image.shape[0] > 1000 and image.shape[1] > 1000
    assert (image < 100).all(axis=-1).sum() > 1000  # dark diagonal cells and text
    with pytest.raises(ValueError, match="18 class names"):
        write_confusion_png(tmp_path / "bad.png", matrix, NAMES[1:])


def test_mosaic_places_tiles_and_is_a_cog(tmp_path):
    # 2×2 grid of 160 px tiles; the bottom-right tile is missing (a gap)
    paths = []
    for value, (row, col) in enumerate([(0, 0), (0, 160), (160, 0)], start=1):
        tile = np.full((160, 160), value, dtype=np.int16)
        tile[0, 0] = 10 * value
        paths.append(write_geotiff(tmp_path / "tiles" / f"{value}.tif", tile, shifted(GEOREF, row, col),
                                   nodata=-1))
    out = mosaic(paths, tmp_path / "prediction.tif")
    with rasterio.open(out) as src:
        assert (src.width, src.height) == (320, 320)
        assert src.transform.to_gdal() == GEOREF.transform and src.crs.to_epsg() == 32632
        assert src.dtypes == ("int16",) and src.nodata == -1
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.block_shapes == [(256, 256)] and src.overviews(1) == [2]
        data = src.read(1)
    assert (data[0, 0], data[0, 160], data[160, 0]) == (10, 20, 30)
    assert (data[1:160, 1:160] == 1).all() and (data[1:160, 161:] == 2).all() and (data[161:, 1:160] == 3).all()
    assert (data[160:, 160:] == -1).all()
    assert no_partial_files(tmp_path)


def test_mosaic_of_real_tiles_restores_the_raster(tmp_path, realdata):
    lulc = np.load(realdata / "eolearn_testeopatch_slovenia" / "mask_timeless" / "LULC.npy")[..., 0]
    georef = GeoRef((465181.0, 10.0, 0.0, 5080255.0, 0.0, -10.0), 32633)
    paths = [write_geotiff(tmp_path / f"{r}_{c}.tif", lulc[r:r + 48, c:c + 48], shifted(georef, r, c),
                           dtype=np.uint16)
             for r in (0, 48, 96) for c in (0, 48, 96)]
    array, mosaic_georef = read_geotiff(mosaic(paths, tmp_path / "lulc.tif"))
    assert mosaic_georef == georef and array.dtype == np.uint16
    np.testing.assert_array_equal(array, lulc)


def test_float_mosaic_without_nodata_fills_gaps_with_zero(tmp_path):
    paths = [write_geotiff(tmp_path / "a.tif", np.full((24, 24), 0.5), GEOREF),
             write_geotiff(tmp_path / "b.tif", np.full((24, 24), 0.25), shifted(GEOREF, 48, 0))]
    array, georef = read_geotiff(mosaic(paths, tmp_path / "loss.tif"))
    assert array.dtype == np.float32 and array.shape == (72, 24) and georef == GEOREF
    assert (array[:24] == 0.5).all() and (array[24:48] == 0).all() and (array[48:] == 0.25).all()


def test_mosaic_bad_input(tmp_path):
    tile = np.ones((24, 24), np.int16)
    first = write_geotiff(tmp_path / "a.tif", tile, GEOREF)
    other_crs = write_geotiff(tmp_path / "b.tif", tile, GeoRef(GEOREF.transform, 32633))
    coarse = write_geotiff(tmp_path / "c.tif", tile, GEOREF.scaled(2))
    floats = write_geotiff(tmp_path / "d.tif", tile.astype(float), GEOREF)
    plain = write_geotiff(tmp_path / "e.tif", tile, None)
    (tmp_path / "f.tif").write_text("not a tiff")
    cases = [
        ([first, other_crs], "b.tif: CRS EPSG:32633 differs from EPSG:32632 of .*a.tif"),
        ([first, coarse], "c.tif: resolution"),
        ([first, floats], "d.tif: data type float32 differs from int16"),
        ([first, plain], "e.tif: not georeferenced"),
        ([first, tmp_path / "f.tif"], "f.tif: not a readable GeoTIFF"),
        ([], "out.tif: no tiles to merge"),
    ]
    for paths, message in cases:
        with pytest.raises(UserError, match=message):
            mosaic(paths, tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()


def test_error_rgb_colours_correct_wrong_and_unlabelled_pixels():
    labels = np.array([[0, 1], [2, 3]])
    prediction = np.array([[1, 1], [3, 3]])
    expected = [[ERROR_COLORS["unknown"], ERROR_COLORS["correct"]], [ERROR_COLORS["wrong"], ERROR_COLORS["correct"]]]
    np.testing.assert_array_equal(error_rgb(labels, prediction), np.array(expected, dtype=np.uint8))
