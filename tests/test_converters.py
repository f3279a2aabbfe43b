"""tfrecord2tif.py and tif2tfrecord.py: the GeoTIFF layout, the exact round trip, a user's own Sentinel-2 band files
(real imagery from Slovenia against the derived MTLCC-format tiles), and one-line errors for bad input."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
import rasterio

import tfrecord2tif
import tif2tfrecord
from utils.cli import UserError, run
from utils.georef import GeoRef, read_geotransforms
from utils.geotiffs import date_of, date_stems, read_series
from utils.rasters import write_geotiff
from utils.records import Tile, read_tile, write_tile
from utils.synthetic.spectra import BANDS

SLOVENIA_ORIGIN = (465181.0522318204, 5080254.63349641)  # top-left corner of bbox.geojson, EPSG:32633
SCENE_ORDER = [2, 1, 4, 3, 0]  # REFERENCE_SCENES.npy scene i is timestamp index SCENE_ORDER[i]


def _error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


def _padded_tile(root, section="data16"):
    """(tile id, file) of the first tile of a data folder with fewer observations than nobs."""
    for path in sorted((root / section).glob("*.tfrecord.gz"), key=lambda p: int(p.name.split(".")[0])):
        tile = read_tile(path)
        if 0 < (tile.doy > 0).sum() < len(tile.doy):
            return int(path.name.split(".")[0]), path
    raise AssertionError("no padded tile")


def test_dates_and_file_stems():
    assert date_of(2016, 366, "f") == datetime.date(2016, 12, 31)
    assert date_of(2017, 32, "f") == datetime.date(2017, 2, 1)
    for year, doy in ((2017, 366), (2016, 0), (2016, -3), (0, 5)):
        with pytest.raises(UserError, match=f"f: day of year {doy} of year {year} is not a date"):
            date_of(year, doy, "f")
    day = datetime.date(2016, 5, 3)
    assert date_stems([day, day, datetime.date(2016, 5, 4), day]) == ["20160503", "20160503_1", "20160504",
                                                                      "20160503_2"]


def test_round_trip_is_exact_and_the_geotiffs_are_georeferenced(synthetic_root, tmp_path, capsys):
    root = synthetic_root / "480"
    tileid, path = _padded_tile(root)
    tile = read_tile(path)
    georef = read_geotransforms(root / "geotransforms.csv")[tileid]
    tfrecord2tif.main([str(path), "--outdir", str(tmp_path / "tif")])  # geotransforms.csv found in the root
    folder = tmp_path / "tif" / str(tileid)
    valid = tile.doy > 0
    stems = [date_of(y, d, "").strftime("%Y%m%d") for y, d in zip(tile.year[valid], tile.doy[valid], strict=True)]
    for name, factor, bands, array in (("10m", 1, 4, tile.x10), ("20m", 2, 6, tile.x20), ("60m", 6, 3, tile.x60)):
        assert sorted(p.stem for p in (folder / name).iterdir()) == sorted(stems)
        with rasterio.open(folder / name / f"{stems[3]}.tif") as src:
            assert (src.count, src.dtypes[0], src.crs.to_epsg()) == (bands, "uint16", georef.epsg)
            assert src.transform.to_gdal() == georef.scaled(factor).transform
            np.testing.assert_array_equal(np.moveaxis(src.read(), 0, -1), array[3])
    with rasterio.open(folder / "labels.tif") as src:
        assert src.dtypes[0] == "uint16"
        np.testing.assert_array_equal(src.read(1), tile.labels[0])

    out = tmp_path / "root" / "data16"
    tif2tfrecord.main([str(folder), "--outdir", str(out), "--tileids", str(tmp_path / "root" / "eval.tileids")])
    back = read_tile(out / f"{tileid}.tfrecord.gz")
    for name, array in tile.arrays().items():
        np.testing.assert_array_equal(getattr(back, name), array, err_msg=name)
    row = next(line for line in (root / "geotransforms.csv").read_text().splitlines()
               if line.startswith(f"{tileid},"))
    assert (tmp_path / "root" / "geotransforms.csv").read_text() == row + "\n"
    assert (tmp_path / "root" / "eval.tileids").read_text() == f"{tileid}\n"
    capsys.readouterr()


def test_a_folder_of_tiles_and_rows_are_replaced(synthetic_root, tmp_path, capsys):
    data = synthetic_root / "240" / "data17"
    files = sorted(data.glob("*.tfrecord.gz"), key=lambda p: int(p.name.split(".")[0]))[:3]
    for file in files:
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / file.name).write_bytes(file.read_bytes())
    csv = tmp_path / "g.csv"
    csv.write_text((synthetic_root / "240" / "geotransforms.csv").read_text())
    tfrecord2tif.main([str(tmp_path / "in"), "--outdir", str(tmp_path / "tif"), "--geotransforms", str(csv)])
    ids = sorted(int(p.name) for p in (tmp_path / "tif").iterdir())
    assert ids == [int(f.name.split(".")[0]) for f in files]
    # an existing geotransforms.csv keeps its other rows; the converted tiles' rows are replaced, not repeated
    tif2tfrecord.main([str(tmp_path / "tif" / str(i)) for i in ids] + ["--outdir", str(tmp_path / "out"),
                                                                        "--geotransforms", str(csv)])
    lines = csv.read_text().splitlines()
    assert sorted(lines) == sorted((synthetic_root / "240" / "geotransforms.csv").read_text().splitlines())
    capsys.readouterr()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_without_geotransforms_the_geotiffs_have_no_crs(tmp_path, capsys):
    steps = np.array([1, 0, 0])[:, None, None, None]
    tile = Tile(x10=np.full((3, 6, 6, 4), 7) * steps, x20=np.ones((3, 3, 3, 6)) * steps, x60=steps * np.ones(3),
                doy=np.array([5, 0, 0]), year=np.array([2016, 0, 0]), labels=np.full((3, 6, 6), 4))
    write_tile(tmp_path / "data" / "12.tfrecord", tile)
    tfrecord2tif.main([str(tmp_path / "data" / "12.tfrecord"), "--outdir", str(tmp_path / "tif")])
    with rasterio.open(tmp_path / "tif" / "12" / "10m" / "20160105.tif") as src:
        assert src.crs is None
    series = read_series(tmp_path / "tif" / "12")
    assert series.georef is None and series.dates == [datetime.date(2016, 1, 5)]
    tif2tfrecord.main([str(tmp_path / "tif" / "12"), "--outdir", str(tmp_path / "out"), "--nobs", "3"])
    assert not (tmp_path / "geotransforms.csv").exists()
    for name, array in tile.arrays().items():
        np.testing.assert_array_equal(getattr(read_tile(tmp_path / "out" / "12.tfrecord.gz"), name), array)
    capsys.readouterr()


def test_tfrecord2tif_bad_input(synthetic_root, tmp_path, capsys):
    root = synthetic_root / "240"
    first = root / "data16" / "0.tfrecord.gz"
    assert "nope.tfrecord.gz: no such file or folder" in _error(tfrecord2tif.main, [str(tmp_path / "nope.tfrecord.gz")],
                                                                 capsys)
    (tmp_path / "a.tfrecord.gz").write_bytes(first.read_bytes())
    assert "not named <tileid>.tfrecord.gz" in _error(tfrecord2tif.main, [str(tmp_path / "a.tfrecord.gz")], capsys)
    (tmp_path / "g.csv").write_text("1,0.0,10,0,0.0,0,-10,32632\n")
    err = _error(tfrecord2tif.main, [str(first), "--geotransforms", str(tmp_path / "g.csv")], capsys)
    assert "g.csv: no row for tile 0" in err
    err = _error(tfrecord2tif.main, [str(first), str(synthetic_root / "480" / "data16" / "0.tfrecord.gz")], capsys)
    assert "tile 0 is also given as" in err
    bad = Tile(x10=np.full((2, 6, 6, 4), 70000), x20=np.ones((2, 3, 3, 6)), x60=np.ones((2, 1, 1, 3)),
               doy=np.array([366, 0]), year=np.array([2017, 0]), labels=np.zeros((2, 6, 6)))
    write_tile(tmp_path / "d" / "3.tfrecord.gz", bad)
    assert "day of year 366 of year 2017 is not a date" in _error(
        tfrecord2tif.main, [str(tmp_path / "d" / "3.tfrecord.gz"), "--outdir", str(tmp_path / "o")], capsys)
    bad.doy[0] = 365
    write_tile(tmp_path / "d" / "3.tfrecord.gz", bad)
    err = _error(tfrecord2tif.main, [str(tmp_path / "d" / "3.tfrecord.gz"), "--outdir", str(tmp_path / "o")], capsys)
    assert "cannot write 10m/20171231.tif as uint16" in err
    assert not (tmp_path / "o" / "3").exists()


@pytest.fixture(scope="module")
def slovenia(realdata, tmp_path_factory):
    """The eo-learn patch as a user would have it: per-date folders of 13 band files in DN (uint16) with the
    20 m and 60 m bands at their native resolution, a 13-band stack per date, and the land-cover raster."""
    source = realdata / "eolearn_testeopatch_slovenia"
    scenes = np.load(source / "REFERENCE_SCENES.npy").astype(np.float64)
    stamps = json.loads((source / "timestamps.json").read_text())
    dates = [stamps[index][:10].replace("-", "") for index in SCENE_ORDER]
    grid = GeoRef((SLOVENIA_ORIGIN[0], 10.0, 0.0, SLOVENIA_ORIGIN[1], 0.0, -10.0), 32633)
    out = tmp_path_factory.mktemp("slovenia")
    native = {band: 2 for band in ("B05", "B06", "B07", "B8A", "B11", "B12")} | {"B01": 6, "B09": 6, "B10": 6}
    for scene, date in zip(scenes, dates, strict=True):
        dn = np.rint(scene * 1e4)
        for k, band in enumerate(BANDS):
            f = native.get(band, 1)
            h, w = dn.shape[0] // f * f, dn.shape[1] // f * f
            image = np.rint(dn[:h, :w, k].reshape(h // f, f, w // f, f).mean(axis=(1, 3)))
            write_geotiff(out / "bands" / f"S2A_{date}" / f"T33TVM_{date}T100008_{band}.tif", image,
                          grid.scaled(f), dtype=np.uint16)
        write_geotiff(out / "stacks" / f"{date}.tif", np.moveaxis(scene, -1, 0), grid, dtype=np.float32)
    labels = np.load(source / "mask_timeless" / "LULC.npy")[..., 0]
    write_geotiff(out / "lulc.tif", labels, grid, dtype=np.uint16)
    return out


def test_own_band_files_equal_the_derived_mtlcc_tiles(slovenia, realdata, tmp_path, capsys):
    out = tmp_path / "root" / "data15"
    tif2tfrecord.main([str(slovenia / "bands"), "--outdir", str(out), "--labels", str(slovenia / "lulc.tif"),
                       "--tileids", str(tmp_path / "root" / "tileids" / "eval.tileids")])
    assert sorted(p.name for p in out.iterdir()) == [f"{k}.tfrecord.gz" for k in range(4)]
    for k in range(4):  # tiles 0..3 are rows/cols [0:48] and [48:96] of the 101 x 100 px patch, row by row
        ours, derived = read_tile(out / f"{k}.tfrecord.gz"), read_tile(realdata / "derived_mtlcc_format_slovenia" /
                                                                       f"{k}.tfrecord.gz")
        assert ours.x10.shape == (46, 48, 48, 4) and not ours.x10[5:].any()
        # the derived tiles store x10 as B02 B03 B04 B08; the records' order is B04 B03 B02 B08
        np.testing.assert_array_equal(ours.x10[:5], derived.x10[..., [2, 1, 0, 3]])
        # 2x2 and 6x6 block means of rounded DN here, of reflectance there: ties round differently
        assert np.abs(ours.x20[:5] - derived.x20).max() <= 1 and np.mean(ours.x20[:5] != derived.x20) < 0.01
        assert np.abs(ours.x60[:5] - derived.x60).max() <= 1 and np.mean(ours.x60[:5] != derived.x60) < 0.05
        np.testing.assert_array_equal(ours.doy[:6], [192, 212, 232, 242, 252, 0])
        np.testing.assert_array_equal(ours.year[:6], [2015] * 5 + [0])
        np.testing.assert_array_equal(ours.labels, np.broadcast_to(derived.labels[0], (46, 48, 48)))
    rows = read_geotransforms(tmp_path / "root" / "geotransforms.csv")
    assert rows[3] == GeoRef((SLOVENIA_ORIGIN[0] + 480, 10.0, 0.0, SLOVENIA_ORIGIN[1] - 480, 0.0, -10.0), 32633)
    assert (tmp_path / "root" / "tileids" / "eval.tileids").read_text() == "0\n1\n2\n3\n"

    # the same area as 13-band reflectance stacks at 10 m gives the same tiles
    tif2tfrecord.main([str(slovenia / "stacks"), "--outdir", str(tmp_path / "stacks"), "--scale", "10000",
                       "--labels", str(slovenia / "lulc.tif"), "--tileid", "10", "--tilesize", "24", "--nobs", "5"])
    small = read_tile(tmp_path / "stacks" / "15.tfrecord.gz")  # row 1, column 1 of the 4 x 4 grid of 24 px tiles
    np.testing.assert_array_equal(small.x10, read_tile(out / "0.tfrecord.gz").x10[:5, 24:48, 24:48])
    capsys.readouterr()


def test_own_band_files_bad_input(slovenia, tmp_path, capsys):
    args = ["--outdir", str(tmp_path / "out")]
    err = _error(tif2tfrecord.main, [str(slovenia / "stacks"), *args], capsys)
    assert "look like reflectance 0..1" in err and "--scale 10000" in err
    assert "--tilesize 50: must be a positive multiple of 6" in _error(
        tif2tfrecord.main, [str(slovenia / "bands"), "--tilesize", "50", *args], capsys)
    assert "smaller than one tile of --tilesize 102" in _error(
        tif2tfrecord.main, [str(slovenia / "bands"), "--tilesize", "102", *args], capsys)
    assert "5 dates do not fit into nobs = 4" in _error(
        tif2tfrecord.main, [str(slovenia / "bands"), "--nobs", "4", *args], capsys)
    err = _error(tif2tfrecord.main, [str(slovenia / "bands"), "--labels", str(slovenia / "stacks" / "20150711.tif"),
                                     *args], capsys)
    assert "20150711.tif: 13 bands, expected one band of class ids" in err
    broken = tmp_path / "area" / "20160501"
    broken.mkdir(parents=True)
    for band in BANDS[:-2]:
        source = next((slovenia / "bands" / "S2A_20150711").glob(f"*_{band}.tif"))
        (broken / f"{band}.tif").write_bytes(source.read_bytes())
    assert "no file for band B11, B12" in _error(tif2tfrecord.main, [str(tmp_path / "area"), *args], capsys)
    (broken / "B11.tif").write_bytes((broken / "B04.tif").read_bytes())  # a 10 m file for a 20 m band is fine,
    (broken / "B12.tif").write_bytes((broken / "B01.tif").read_bytes())  # a 60 m file for a 20 m band is not
    assert "B12.tif: band B12 has 60 m pixels" in _error(tif2tfrecord.main, [str(tmp_path / "area"), *args], capsys)
    (tmp_path / "empty").mkdir()
    assert "empty: no observations" in _error(tif2tfrecord.main, [str(tmp_path / "empty"), *args], capsys)
    assert "the folder name is no tile id" in _error(tif2tfrecord.main, [str(_tile_folder(tmp_path)), *args], capsys)
    assert not (tmp_path / "out").exists()


def _tile_folder(tmp_path):
    folder = tmp_path / "mytile" / "10m"
    folder.mkdir(parents=True)
    return folder.parent
