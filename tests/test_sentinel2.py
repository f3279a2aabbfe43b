"""utils/sentinel2.py, the reader of Sentinel-2 observations: GeoTIFF, JPEG 2000 and SAFE sources give the same
arrays; offsets, nodata, L2A, same-day granules, the fill rule, and one-line errors for sources that do not fit."""

from __future__ import annotations

import datetime
import shutil

import numpy as np
import pytest
import rasterio

from tests.s2fixtures import NATIVE, band_images, native, write_band_folder, write_raster, write_safe
from utils.bands import BANDS, GROUPS
from utils.cli import UserError
from utils.georef import GeoRef
from utils.rasters import write_geotiff
from utils.sentinel2 import Area, SourceOptions, _fill, find_observations, open_area

WORLDCEREAL_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")
# Bands the WorldCereal cube lacks, written by the tests from a neighbouring band (scaffolding, not physics).
WORLDCEREAL_STAND_INS = {"B01": "B02", "B8A": "B08", "B09": "B08"}


def _whole(area: Area):
    """The whole area on every date, read in one window."""
    return area.read(0, 0, -(-area.height // 6) * 6, -(-area.width // 6) * 6)


def _group_image(images: dict[str, np.ndarray], group) -> np.ndarray:
    """The native images of a group's bands as (h, w, C) on the group's grid."""
    return np.stack([native(images[band], group.factor // NATIVE[band]) for band in group.bands], axis=-1)


def test_fill_takes_the_nearest_valid_date_of_each_pixel():
    rng = np.random.default_rng(3)
    days = np.array([0, 10, 20, 30, 45, 50], dtype=float)  # date 1 is as far from 0 as from 2: the earlier wins
    values = rng.integers(1, 100, (6, 5, 4, 2))
    valid = rng.random((6, 5, 4)) < 0.5
    valid[:, 0, 0] = False  # never observed: stays 0
    filled = _fill(values, valid, days)
    for t in range(6):
        for i in range(5):
            for j in range(4):
                good = np.flatnonzero(valid[:, i, j])
                if valid[t, i, j]:
                    expected = values[t, i, j]
                elif good.size == 0:
                    expected = 0
                else:
                    gaps = np.abs(days[good] - days[t])
                    expected = values[good[np.flatnonzero(gaps == gaps.min())[0]], i, j]
                np.testing.assert_array_equal(filled[t, i, j], expected)
    assert _fill(values, np.ones(valid.shape, bool), days) is values


def test_geotiff_jp2_and_safe_sources_give_the_same_arrays(slovenia_sources):
    scenes = slovenia_sources.scenes
    blocks = {}
    for kind in ("tif", "jp2", "safe"):
        with open_area([slovenia_sources.root / kind]) as area:
            assert (area.height, area.width, area.dates, area.level) == (101, 100, scenes.dates, "L1C")
            assert area.georef == scenes.grid
            blocks[kind] = _whole(area)
    for group in GROUPS:
        for kind in ("jp2", "safe"):
            np.testing.assert_array_equal(blocks[kind].arrays[group.name], blocks["tif"].arrays[group.name])
            np.testing.assert_array_equal(blocks[kind].valid[group.name], blocks["tif"].valid[group.name])
        for t, dn in enumerate(scenes.dn):
            expected = _group_image(band_images(dn), group)
            h, w = expected.shape[:2]
            np.testing.assert_array_equal(blocks["tif"].arrays[group.name][t, :h, :w], expected)
            valid = blocks["tif"].valid[group.name][t]
            assert valid[:h, :w].all() and not valid[h:].any() and not valid[:, w:].any()
    assert blocks["tif"].coverage.sum() == 101 * 100


def test_the_offset_of_baseline_04_00_is_removed_and_saturation_kept(tmp_path):
    grid = GeoRef((300000.0, 10.0, 0.0, 5000040.0, 0.0, -10.0), 32632)
    rng = np.random.default_rng(0)
    dn = rng.integers(1, 9000, (12, 12, 13)).astype(float)
    dn[0, 0, BANDS.index("B04")] = 0  # a dark pixel: DN 1000 in the product, 0 after the offset
    images = band_images(dn)
    write_safe(tmp_path / "new", datetime.date(2022, 6, 1), images, grid, baseline="04.00", offset=-1000)
    write_safe(tmp_path / "old", datetime.date(2016, 6, 1), images, grid, baseline="02.04", offset=None)
    saturated = next((tmp_path / "new").rglob("*_B08.jp2"))
    with rasterio.open(saturated) as src:
        data = src.read(1)
    data[5, 5] = 65535
    write_raster(saturated, data, grid, 1)
    new, old = _whole(open_area([tmp_path / "new"])), _whole(open_area([tmp_path / "old"]))
    # DN 0 is no data in either baseline; with the offset a dark pixel is DN 1000, reflectance 0
    assert new.valid["x10"].all() and not old.valid["x10"][0, 0, 0] and old.valid["x10"].sum() == 143
    np.testing.assert_array_equal(new.arrays["x10"][0, 0, 0], [0, *dn[0, 0, [BANDS.index(b) for b in ("B03", "B02",
                                                                                                      "B08")]]])
    assert new.arrays["x10"][0, 5, 5, 3] == 65535  # the SATURATED value is kept
    expected = new.arrays["x10"].copy()
    expected[0, 5, 5, 3] = dn[5, 5, BANDS.index("B08")]
    np.testing.assert_array_equal(expected[:, 1:], old.arrays["x10"][:, 1:])
    np.testing.assert_array_equal(new.arrays["x60"], old.arrays["x60"])


def test_same_day_granules_are_merged_and_swath_gaps_filled_from_the_nearest_date(slovenia_sources, tmp_path):
    scenes = slovenia_sources.scenes
    swath = np.add.outer(np.arange(101), np.arange(100)) > 110  # a diagonal swath edge: no data beyond it
    for t, (dn, date) in enumerate(zip(scenes.dn, scenes.dates, strict=True)):
        images = band_images(dn)
        if t != 2:
            write_safe(tmp_path / "gap", date, images, scenes.grid)
            continue
        # date 2 (2015-08-20) comes as two products of one datatake, split along the diagonal, and only the first
        # for the gap test: the second has no data before the diagonal, the first none beyond it
        first = {band: np.where(native(swath.astype(float), NATIVE[band]) >= 0.5, np.nan, image)
                 for band, image in images.items()}
        second = {band: np.where(np.isnan(first[band]), image, np.nan) for band, image in images.items()}
        write_safe(tmp_path / "gap", date, first, scenes.grid)
        write_safe(tmp_path / "split" / "a", date, first, scenes.grid)
        (tmp_path / "split" / "b").mkdir(parents=True)
        product = write_safe(tmp_path / "split" / "b", date, second, scenes.grid)
        product.rename(product.with_name(product.name.replace("T120000", "T120001")))
    for t, date in enumerate(scenes.dates):
        if t != 2:
            for product in (tmp_path / "gap").glob(f"*_{date:%Y%m%d}T100008_*"):
                shutil.copytree(product, tmp_path / "split" / "a" / product.name)
    whole = _whole(open_area([slovenia_sources.root / "safe"]))
    split = _whole(open_area([tmp_path / "split" / "a", tmp_path / "split" / "b"]))
    for group in GROUPS:
        np.testing.assert_array_equal(split.arrays[group.name], whole.arrays[group.name])
        np.testing.assert_array_equal(split.valid[group.name], whole.valid[group.name])

    gap = _whole(open_area([tmp_path / "gap"]))
    cleaned = gap.cleaned()
    assert cleaned.dates == scenes.dates  # date 2 has valid pixels: kept
    for group in GROUPS:
        missing = ~gap.valid[group.name][2] & whole.valid[group.name][2]
        assert missing.any() and (~missing & whole.valid[group.name][2]).any()
        # 2015-08-20 is 10 days from 08-30 and 20 from 07-31: its gap takes the values of 08-30
        np.testing.assert_array_equal(cleaned.arrays[group.name][2][missing], whole.arrays[group.name][3][missing])
        np.testing.assert_array_equal(cleaned.arrays[group.name][2][~missing], whole.arrays[group.name][2][~missing])
        for t in (0, 1, 3, 4):
            np.testing.assert_array_equal(cleaned.arrays[group.name][t], whole.arrays[group.name][t])


def _worldcereal(realdata, folder, skip=()):
    """The WorldCereal L2A cube (100 x 100 px, 12 months, two of them all 65535) as per-date folders of band files
    tagged nodata=65535; B01, B8A and B09, which the cube lacks, are stand-ins from neighbouring bands."""
    cube = f"netcdf:{realdata / 'worldcereal' / 'worldcereal_preprocessed_inputs.nc'}:S2-L2A-"
    data = {}
    for band in WORLDCEREAL_BANDS:
        with rasterio.open(cube + band) as src:
            data[band] = src.read()
            grid = GeoRef(tuple(src.transform.to_gdal()), src.crs.to_epsg())
            days = [int(v) for v in src.tags()["NETCDF_DIM_t_VALUES"].strip("{}").split(",")]
    dates = [datetime.date(1990, 1, 1) + datetime.timedelta(days=d) for d in days]  # t: days since 1990-01-01
    for t, date in enumerate(dates):
        if date in skip:
            continue
        images = {band: data[band][t].astype(float) for band in WORLDCEREAL_BANDS}
        images |= {band: images[source] for band, source in WORLDCEREAL_STAND_INS.items()}
        images = {band: native(np.where(image == 65535, np.nan, image), NATIVE[band])
                  for band, image in images.items()}
        write_band_folder(folder / f"S2_{date:%Y%m%d}", images, grid, nodata=65535, date=date)
    return dates, data


def test_worldcereal_l2a_months_without_data_are_dropped(realdata, tmp_path, capsys):
    dates, data = _worldcereal(realdata, tmp_path / "all")
    empty = [date for t, date in enumerate(dates) if (data["B04"][t] == 65535).all()]
    assert empty == [datetime.date(2020, 12, 1), datetime.date(2021, 1, 1)]
    _worldcereal(realdata, tmp_path / "kept", skip=empty)
    options = SourceOptions(level="L2A")
    for year in (2020, 2021):
        with open_area([tmp_path / "all"], options, year) as area:
            assert area.level == "L2A" and len(area.dates) == sum(d.year == year for d in dates)
            block = _whole(area).cleaned()
        with open_area([tmp_path / "kept"], options, year) as area:
            expected = _whole(area).cleaned()
        assert block.dates == expected.dates == [d for d in dates if d.year == year and d not in empty]
        for group in GROUPS:
            np.testing.assert_array_equal(block.arrays[group.name], expected.arrays[group.name])
        assert not block.arrays["x60"][..., 2].any()  # B10 of L2A is 0
        t = dates.index(block.dates[-1])
        x10 = np.stack([data[band][t] for band in ("B04", "B03", "B02", "B08")], axis=-1)
        np.testing.assert_array_equal(block.arrays["x10"][-1, :100, :100], x10)
    assert "note: L2A input" in capsys.readouterr().err
    with pytest.raises(UserError, match=r"several years: 2020 \(2 observations\), 2021 \(10 observations\); .*"
                                        "pass --year"):
        open_area([tmp_path / "all"], options)
    with pytest.raises(UserError, match=r"no file for band B10 \(expected the L1C bands"):
        open_area([tmp_path / "all"], SourceOptions(), 2021)


def test_plain_rasters_scale_offset_and_nodata(tmp_path, capsys):
    grid = GeoRef((300000.0, 10.0, 0.0, 5000040.0, 0.0, -10.0), 32632)
    rng = np.random.default_rng(1)
    dn = rng.integers(1, 9000, (12, 12, 13)).astype(float)
    date = datetime.date(2022, 7, 1)
    write_band_folder(tmp_path / "dn" / f"{date:%Y%m%d}", band_images(dn), grid)
    write_band_folder(tmp_path / "shifted" / f"{date:%Y%m%d}", band_images(dn + 1000), grid, nodata=9999)
    plain = _whole(open_area([tmp_path / "dn"]))
    assert "warning: 1 dates of plain rasters from 2022-07-01 on" in capsys.readouterr().err
    shifted = _whole(open_area([tmp_path / "shifted"], SourceOptions(offset=-1000)))
    assert capsys.readouterr().err == ""
    for group in GROUPS:
        np.testing.assert_array_equal(shifted.arrays[group.name], plain.arrays[group.name])
    nodata = _whole(open_area([tmp_path / "shifted"], SourceOptions(offset=-1000, nodata=float(dn[3, 4, 3] + 1000))))
    assert not nodata.valid["x10"][0, 3, 4] and nodata.valid["x10"].sum() == 143
    with pytest.raises(UserError, match=r"B\d\d.tif: band B\d\d gives DN \d+\.\.\d+ after scaling \(value x 10000 "
                                        r"\+ 0\); L1C DN lie in 0\.\.20000 .*check --scale and --offset"):
        _whole(open_area([tmp_path / "dn"], SourceOptions(scale=10000, offset=0)))
    with pytest.raises(UserError, match=r"gives DN -\d+\.\.-\d+ after scaling \(value x 1 - 10000\)"):
        _whole(open_area([tmp_path / "dn"], SourceOptions(offset=-10000)))


def test_sources_that_do_not_fit(slovenia_sources, tmp_path):
    scenes = slovenia_sources.scenes
    images = band_images(scenes.dn[0])
    date = scenes.dates[0]
    with pytest.raises(UserError, match="nothing: no such file or folder"):
        find_observations([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: no observations: expected SAFE products"):
        find_observations([tmp_path / "empty"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="notes.txt: not a SAFE product"):
        find_observations([tmp_path / "notes.txt"])
    utm34 = GeoRef(scenes.grid.transform, 32634)
    write_band_folder(tmp_path / "crs" / "a" / f"{date:%Y%m%d}", images, scenes.grid)
    write_band_folder(tmp_path / "crs" / "b" / f"{scenes.dates[1]:%Y%m%d}", images, utm34)
    with pytest.raises(UserError, match="differs from EPSG:32633 .* the sources must share one CRS"):
        open_area([tmp_path / "crs" / "a", tmp_path / "crs" / "b"])
    coarse = GeoRef((scenes.grid.transform[0], 20.0, 0.0, scenes.grid.transform[3], 0.0, -20.0), 32633)
    write_band_folder(tmp_path / "coarse" / f"{date:%Y%m%d}", images, coarse)
    with pytest.raises(UserError, match="pixels of 20 x 20 CRS units; the network reads 10 m pixels"):
        open_area([tmp_path / "coarse"])
    moved = GeoRef(scenes.grid.shifted(0, 3).transform, 32633)
    write_band_folder(tmp_path / "moved" / "a" / f"{date:%Y%m%d}", images, scenes.grid)
    write_band_folder(tmp_path / "moved" / "b" / f"{scenes.dates[1]:%Y%m%d}", images, moved)
    with pytest.raises(UserError, match="B0[15]_?.*tif: its [26]0 m pixels are not aligned with the grid"):
        open_area([tmp_path / "moved" / "a", tmp_path / "moved" / "b"])
    folder = write_band_folder(tmp_path / "nocrs" / f"{date:%Y%m%d}", images, scenes.grid)
    write_geotiff(folder / "B02.tif", images["B02"], None, dtype=np.uint16)
    with pytest.raises(UserError, match="B02.tif: not georeferenced"):
        open_area([tmp_path / "nocrs"])
    stacks = slovenia_sources.root / "stacks"
    with pytest.raises(UserError, match="20150711.tif: 13 bands, a stack needs the 12 L2A bands"):
        open_area([stacks], SourceOptions(level="L2A", scale=10000))
    with pytest.raises(UserError, match="an L1C product, but --level L2A was given"):
        open_area([slovenia_sources.root / "safe"], SourceOptions(level="L2A"))
    with pytest.raises(UserError, match=r"the sources mix levels: L1C \(.*\), L2A \(.*\)"):
        find_observations([slovenia_sources.root / "safe", write_safe(tmp_path / "l2a", scenes.dates[1], images,
                                                                      scenes.grid, level="L2A")])
    product = write_safe(tmp_path / "b12", date, images, scenes.grid)
    next(product.rglob("*_B12.jp2")).unlink()
    with pytest.raises(UserError, match="granule T33TVM has no file for band B12"):
        open_area([product])
