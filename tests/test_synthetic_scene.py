"""Tests of the synthetic scene (utils/synthetic/scene.py, ``python -m utils.synthetic --scene``): Sentinel-2 data as
users have them, read back by the one reader (utils.sentinel2) and compared with the rendering."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from utils.bands import BANDS, GROUPS
from utils.classes import ORIGINAL_CLASSES
from utils.cli import run
from utils.safe import read_product
from utils.sentinel2 import open_area
from utils.synthetic import render_tile, to_tile
from utils.synthetic.__main__ import main
from utils.synthetic.landscape import MARGIN_PX, TILE
from utils.synthetic.scene import NATIVE, RELATIVE_ORBITS, scene_world, swath, write_scene
from utils.synthetic.sky import orbit_zones

SIZE, YEAR, SEED = 192, 2016, 3
ORIGIN = (690000.0, 5370000.0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, str]:
    """The scene written by the command line, and what it printed."""
    path = tmp_path_factory.mktemp("scene") / "area"
    with contextlib.redirect_stdout(io.StringIO()) as out:
        run(main, ["--scene", str(path), "--size", str(SIZE), "--year", str(YEAR), "--seed", str(SEED)])
    return path, out.getvalue()


@pytest.fixture(scope="module")
def scene(generated) -> Path:
    return generated[0]


@pytest.fixture(scope="module")
def info(scene) -> dict:
    return json.loads((scene / "scene.json").read_text())


@pytest.fixture(scope="module")
def world():
    return scene_world(SEED, SIZE, YEAR)


@pytest.fixture(scope="module")
def block(scene):
    with open_area([scene]) as area:
        assert (area.height, area.width, area.georef.epsg) == (SIZE, SIZE, 32632)
        assert area.georef.transform == (*ORIGIN[:1], 10.0, 0.0, ORIGIN[1], 0.0, -10.0)
        return area.read(0, 0, SIZE, SIZE)


def observed(orbit: int, factor: int) -> np.ndarray:
    """The cells of one resolution whose centres lie in the swath of ``orbit``."""
    centres = (np.arange(SIZE // factor) + 0.5) * factor
    return swath(np.array(orbit), centres[:, None], centres[None, :], SIZE)


def test_layout_and_summary(generated, info, world):
    scene, printed = generated
    _, acquisitions = world
    sky = world[0].skies[YEAR]
    dates = [d["date"] for d in info["dates"]]
    n = len(acquisitions)
    assert len(dates) == n > 40 and dates == sorted(dates)
    assert [d["satellite"] for d in info["dates"]] == list(sky.satellite[acquisitions])
    assert [d["delivery"] for d in info["dates"]].count("SAFE") == 1
    safe = info["safe"]
    assert safe == {"date": safe["date"], "product": safe["product"], "baseline": "04.00", "radio_add_offset": -1000}
    day = safe["date"].replace("-", "")
    orbit = RELATIVE_ORBITS[next(d["orbit"] for d in info["dates"] if d["delivery"] == "SAFE")]
    assert safe["product"] == f"S2A_MSIL1C_{day}T102021_N0400_R{orbit:03d}_T32UQU_{day}T120000.SAFE"
    plain = sorted(f"{d['satellite']}_{d['date'].replace('-', '')}" for d in info["dates"] if d["delivery"] == "plain")
    expected = sorted([*plain, safe["product"], "truth.tif", "classes.txt", "scene.json"])
    assert sorted(p.name for p in scene.iterdir()) == expected
    assert [p.name for p in scene.parent.iterdir()] == ["area"]  # no staging folder left
    assert (info["seed"], info["size"], info["year"], info["epsg"]) == (SEED, SIZE, YEAR, 32632)
    assert info["transform"] == [ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0]
    assert {d["observed"] for d in info["dates"]} == {round(float(observed(o, 1).mean()), 4) for o in (0, 1)}
    assert (scene / "classes.txt").read_text() == ORIGINAL_CLASSES.text()
    day = plain[0].split("_")[1]
    assert sorted(p.name for p in (scene / plain[0]).iterdir()) == sorted(
        f"T32UQU_{day}T102021_{band}.tif" for band in BANDS)
    share = np.mean([d["observed"] for d in info["dates"]])
    assert printed.count("\n") == 1 and printed.startswith(
        f"{scene}: 192 x 192 px (3.69 km²), {n} dates ({n - 1} plain, 1 SAFE), {share:.0%} of the area observed per "
        "date on average, ")


def test_band_files_at_native_resolution(scene, info):
    folder = next(scene / d["source"] for d in info["dates"] if d["delivery"] == "plain")
    product = read_product(scene / info["safe"]["product"])
    assert (product.level, product.baseline, str(product.date)) == ("L1C", "04.00", info["safe"]["date"])
    assert product.offsets == dict.fromkeys(BANDS, -1000.0) and product.nodata == 0
    (granule,) = product.granules
    assert granule.name == "T32UQU" and sorted(granule.bands) == sorted(BANDS)
    for band in BANDS:
        f = NATIVE[band]
        (tif,) = folder.glob(f"*_{band}.tif")
        for path, driver in ((tif, "GTiff"), (Path(granule.bands[band]), "JP2OpenJPEG")):
            with rasterio.open(path) as src:
                assert src.driver == driver and src.dtypes == ("uint16",) and src.crs.to_epsg() == 32632
                assert (src.width, src.height) == (SIZE // f, SIZE // f)
                assert src.transform.to_gdal() == (ORIGIN[0], 10.0 * f, 0.0, ORIGIN[1], 0.0, -10.0 * f)
        with rasterio.open(tif) as src:
            assert src.nodata == 0 and src.compression.name == "deflate" and src.block_shapes == [(256, 256)]


def test_reader_gives_the_rendering_and_swath_masks(info, world, block):
    w, acquisitions = world
    assert [str(d) for d in block.dates] == [d["date"] for d in info["dates"]]
    orbits = [d["orbit"] for d in info["dates"]]
    for group in GROUPS:
        for t, orbit in enumerate(orbits):
            np.testing.assert_array_equal(block.valid[group.name][t], observed(orbit, group.factor))
            assert (block.arrays[group.name][t][~block.valid[group.name][t]] == 0).all()
    safe_t = [d["delivery"] for d in info["dates"]].index("SAFE")
    for row, col in ((0, 0), (1, 2), (3, 3)):
        tile = to_tile(render_tile(w, YEAR, row, col, acquisitions), slice(None), slice(None), len(acquisitions))
        for group in GROUPS:
            f = group.factor
            cells = slice(row * TILE // f, (row + 1) * TILE // f), slice(col * TILE // f, (col + 1) * TILE // f)
            for t in (safe_t, 0, len(orbits) - 1):
                valid = block.valid[group.name][t][cells]
                rendered = getattr(tile, group.name)[t]
                np.testing.assert_array_equal(block.arrays[group.name][t][cells][valid], rendered[valid])


def test_safe_band_files_hold_the_offset(scene, info, block):
    safe_t = [d["delivery"] for d in info["dates"]].index("SAFE")
    (granule,) = read_product(scene / info["safe"]["product"]).granules
    with rasterio.open(granule.bands["B04"]) as src:
        raw = src.read(1).astype(np.int64)
    dn = block.arrays["x10"][safe_t, ..., 0].astype(np.int64)  # B04
    np.testing.assert_array_equal(raw, np.where(dn > 0, dn + 1000, 0))
    assert block.valid["x10"][safe_t].any() and not block.valid["x10"][safe_t].all()


def test_swath_edges_are_diagonal_and_match_the_orbit_zones():
    for orbit in (0, 1):
        inside = observed(orbit, 1)
        edge = np.argmax(inside != inside[:, :1], axis=1)  # first column on the other side of the edge, per row
        assert 0 < edge.min() < edge.max() < SIZE and (np.diff(edge) >= 0).all()
        assert edge.max() - edge.min() == pytest.approx(0.2 * SIZE, abs=2)
    tiles = 20
    centres = (np.arange(tiles) + 0.5) * TILE
    west, east = (swath(np.array(o), centres[:, None], centres[None, :], tiles * TILE) for o in (0, 1))
    np.testing.assert_array_equal(np.where(west & east, 1, np.where(west, 0, 2)), orbit_zones(tiles, tiles))


def test_truth(scene, world):
    with rasterio.open(scene / "truth.tif") as src:
        truth = src.read(1)
        assert src.dtypes == ("uint16",) and src.descriptions == ("raw class id",)
        assert src.transform.to_gdal() == (ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0)
    inside = slice(MARGIN_PX, MARGIN_PX + SIZE)
    np.testing.assert_array_equal(truth, world[0].landscape.labels(0, inside, inside))
    assert set(np.unique(truth)) >= {0, 3, 22, 26}


def test_determinism(scene, info, tmp_path):
    again = tmp_path / "again"
    write_scene(again, size=SIZE, year=YEAR, seed=SEED)
    first = info["dates"][0]
    day = first["date"].replace("-", "")
    product = info["safe"]["product"]
    granule = f"L1C_T32UQU_A000123_{info['safe']['date'].replace('-', '')}T102021"
    files = ["scene.json", "truth.tif", f"{first['source']}/T32UQU_{day}T102021_B02.tif",
             f"{first['source']}/T32UQU_{day}T102021_B09.tif", f"{product}/MTD_MSIL1C.xml",
             f"{product}/GRANULE/{granule}/IMG_DATA/T32UQU_{info['safe']['date'].replace('-', '')}T102021_B8A.jp2"]
    for name in files:
        assert (again / name).read_bytes() == (scene / name).read_bytes(), name


@pytest.mark.parametrize("arguments, message", [
    (["--size", "100"], "--size 100: must be a positive multiple of 48"),
    (["--size", "0"], "--size 0: must be a positive multiple of 48"),
    (["--year", "2015"], "--year 2015: the synthetic sky has the years 2016 to 2099"),
    (["--nobs", "5"], "--nobs: only with --outdir"),
])
def test_bad_arguments(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        run(main, ["--scene", str(tmp_path / "new"), *arguments])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "new").exists()


def test_existing_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "area").mkdir()
    (tmp_path / "area" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        run(main, ["--scene", str(tmp_path / "area"), "--size", "48"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'area'}: already exists" in err
    assert [p.name for p in (tmp_path / "area").iterdir()] == ["keep.txt"]
    with pytest.raises(SystemExit):
        run(main, ["--scene", str(tmp_path / "x"), "--outdir", str(tmp_path / "y")])
    assert "not allowed with argument" in capsys.readouterr().err


def test_dates_are_those_of_the_sky(info, world):
    w, acquisitions = world
    sky = w.skies[YEAR]
    expected = [str(datetime.date(YEAR, 1, 1) + datetime.timedelta(days=int(sky.doy[a]) - 1)) for a in acquisitions]
    assert [d["date"] for d in info["dates"]] == expected
    assert [d["orbit"] for d in info["dates"]] == list(sky.orbit[acquisitions])
