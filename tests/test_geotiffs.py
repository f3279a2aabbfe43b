"""tfrecord2tif.py and tif2tfrecord.py: the GeoTIFF layout, the exact round trip, a user's own Sentinel-2 band files
(real imagery from Slovenia against the derived MTLCC-format tiles), and one-line errors for bad input."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import rasterio

import tfrecord2tif
import tif2tfrecord
from utils.bands import GROUPS
from utils.cli import UserError, run
from utils.georef import read_geotransforms
from utils.geotiffs import read_series
from utils.records import Tile, read_tile, write_tile
from utils.series import date_of, date_stems


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
            assert (src.count, src.dtypes[0], src.crs.to_epsg(), src.nodata) == (bands, "uint16", georef.epsg, 0)
            assert src.descriptions == GROUPS[("10m", "20m", "60m").index(name)].bands
            assert src.transform.to_gdal() == georef.scaled(factor).transform
            np.testing.assert_array_equal(np.moveaxis(src.read(), 0, -1), array[3])
    with rasterio.open(folder / "labels.tif") as src:
        assert (src.dtypes[0], src.nodata, src.descriptions) == ("uint16", None, ("raw class id",))
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
    (tmp_path / "file").write_text("x")
    err = _error(tfrecord2tif.main, [str(first), "--outdir", str(tmp_path / "file")], capsys)
    assert err.strip().endswith("file: exists and is not a folder")


def _tile_folder(tmp_path):
    folder = tmp_path / "mytile" / "10m"
    folder.mkdir(parents=True)
    return folder.parent
