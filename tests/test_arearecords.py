"""tif2tfrecord.py on an area (utils/arearecords.py): records that cover every pixel of the real Slovenia scenes from
GeoTIFF, JPEG 2000 and SAFE sources alike, edge pad and drop, label checks and label maps, all-or-nothing output,
and the README's own-data recipe from scenes to an evaluation on a one-year dataset root."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio

import evaluate
import init_graph
import tif2tfrecord
from modelzoo import seqencmodel
from tests.s2fixtures import band_images, write_band_folder
from utils.arearecords import TileGrid
from utils.cli import run
from utils.dataset import summarize
from utils.georef import format_geotransform_row, read_geotransforms
from utils.records import read_tile

RECORD_X10 = [3, 2, 1, 7]  # B04 B03 B02 B08 in the order of BANDS


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(tif2tfrecord.main, [str(arg) for arg in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


def _mosaic(folder, grid: TileGrid, name: str) -> np.ndarray:
    """The records of a tile grid put back together: ``name`` (T, H, W, C) over all dates, or the labels (H, W)."""
    rows = []
    for r in range(grid.rows):
        tiles = [read_tile(folder / f"{r * grid.cols + c}.tfrecord.gz") for c in range(grid.cols)]
        rows.append(np.concatenate([t.labels[:1, ..., None] if name == "labels" else getattr(t, name)
                                    for t in tiles], axis=2))
    out = np.concatenate(rows, axis=1)
    return out[0, ..., 0] if name == "labels" else out


def test_grid_pad_and_drop():
    pad, drop = TileGrid.of(101, 100, 48, "pad"), TileGrid.of(101, 100, 48, "drop")
    assert (pad.rows, pad.cols, pad.padded, pad.dropped) == (3, 3, (43, 44), 0)
    assert (drop.rows, drop.cols, drop.padded, drop.dropped) == (2, 2, (0, 0), 101 * 100 - 96 * 96)


def test_records_cover_every_pixel_alike_from_geotiff_jp2_and_safe(slovenia_sources, tmp_path, capsys):
    sources, scenes = slovenia_sources.root, slovenia_sources.scenes
    outs = {}
    for kind in ("tif", "jp2", "safe"):
        outs[kind] = tmp_path / kind / "data15"
        tif2tfrecord.main([str(sources / kind), "--outdir", str(outs[kind]), "--labels", str(sources / "lulc.tif"),
                           "--tileids", str(tmp_path / kind / "tileids" / "eval.tileids")])
    out = capsys.readouterr().out
    assert out.count("area 101 x 100 px at 10 m (1.01 km², EPSG:32633), 5 dates of 2015 (L1C)") == 3
    assert out.count("9 tiles of 48 px written") == 3 and "dates kept per tile 5 / 5.0 / 5 (min / mean / max)" in out
    assert "edge pad: the last tile row and column reach 43 and 44 px beyond the area (no data, label 0)" in out
    for k in range(9):
        first = read_tile(outs["tif"] / f"{k}.tfrecord.gz")
        for kind in ("jp2", "safe"):
            other = read_tile(outs[kind] / f"{k}.tfrecord.gz")
            for name, array in first.arrays().items():
                np.testing.assert_array_equal(getattr(other, name), array, err_msg=f"{kind} {k} {name}")
    grid = TileGrid.of(101, 100, 48, "pad")
    x10 = _mosaic(outs["safe"], grid, "x10")
    np.testing.assert_array_equal(x10[:5, :101, :100], scenes.dn[..., RECORD_X10])
    assert not x10[:, 101:].any() and not x10[:, :, 100:].any() and not x10[5:].any()
    labels = _mosaic(outs["safe"], grid, "labels")
    np.testing.assert_array_equal(labels[:101, :100], scenes.labels)
    assert not labels[101:].any() and not labels[:, 100:].any()
    x60 = _mosaic(outs["safe"], grid, "x60")
    assert x60[:5, :17, :17].all() and not x60[:, 17:].any()  # 60 m cells that reach into the area have data
    rows = read_geotransforms(tmp_path / "safe" / "geotransforms.csv")
    assert rows == {r * 3 + c: scenes.grid.shifted(48 * r, 48 * c) for r in range(3) for c in range(3)}
    assert (tmp_path / "safe" / "tileids" / "eval.tileids").read_text() == "".join(f"{k}\n" for k in range(9))


def test_edge_drop_keeps_whole_tiles_as_the_derived_mtlcc_tiles(slovenia_sources, realdata, tmp_path, capsys):
    sources = slovenia_sources.root
    out = tmp_path / "root" / "data15"
    tif2tfrecord.main([str(sources / "tif"), "--outdir", str(out), "--labels", str(sources / "lulc.tif"),
                       "--edge", "drop"])
    assert "edge drop: 884 px of the area lie outside the whole tiles and were dropped" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"{k}.tfrecord.gz" for k in range(4)]
    for k in range(4):  # tiles 0..3 are rows/cols [0:48] and [48:96] of the 101 x 100 px patch, row by row
        ours = read_tile(out / f"{k}.tfrecord.gz")
        derived = read_tile(realdata / "derived_mtlcc_format_slovenia" / f"{k}.tfrecord.gz")
        assert ours.x10.shape == (46, 48, 48, 4) and not ours.x10[5:].any()
        # the derived tiles store x10 as B02 B03 B04 B08; the records' order is B04 B03 B02 B08
        np.testing.assert_array_equal(ours.x10[:5], derived.x10[..., [2, 1, 0, 3]])
        # 2x2 and 6x6 block means of rounded DN here, of reflectance there: ties round differently
        assert np.abs(ours.x20[:5] - derived.x20).max() <= 1 and np.mean(ours.x20[:5] != derived.x20) < 0.01
        assert np.abs(ours.x60[:5] - derived.x60).max() <= 1 and np.mean(ours.x60[:5] != derived.x60) < 0.05
        np.testing.assert_array_equal(ours.doy[:6], [192, 212, 232, 242, 252, 0])
        np.testing.assert_array_equal(ours.year[:6], [2015] * 5 + [0])
        np.testing.assert_array_equal(ours.labels, np.broadcast_to(derived.labels[0], (46, 48, 48)))
    # the same area as 13-band reflectance stacks at 10 m gives the same tiles
    tif2tfrecord.main([str(sources / "stacks"), "--outdir", str(tmp_path / "stacks"), "--scale", "10000",
                       "--tileid", "10", "--tilesize", "24", "--nobs", "5", "--edge", "drop"])
    small = read_tile(tmp_path / "stacks" / "15.tfrecord.gz")  # row 1, column 1 of the 4 x 4 grid of 24 px tiles
    np.testing.assert_array_equal(small.x10, read_tile(out / "0.tfrecord.gz").x10[:5, 24:48, 24:48])
    capsys.readouterr()


def test_tiles_without_any_observation_are_not_written(slovenia_sources, tmp_path, capsys):
    scenes = slovenia_sources.scenes
    for dn, date in zip(scenes.dn, scenes.dates, strict=True):
        dn = dn.copy()
        dn[48:96, :48] = np.nan  # no data on any date in tile 3
        write_band_folder(tmp_path / "area" / f"{date:%Y%m%d}", band_images(dn), scenes.grid)
    tif2tfrecord.main([str(tmp_path / "area"), "--outdir", str(tmp_path / "out"), "--tileids",
                       str(tmp_path / "eval.tileids")])
    assert "1 tiles without any valid observation were not written" in capsys.readouterr().out
    assert sorted(int(p.name.split(".")[0]) for p in (tmp_path / "out").iterdir()) == [0, 1, 2, 4, 5, 6, 7, 8]
    assert (tmp_path / "eval.tileids").read_text() == "0\n1\n2\n4\n5\n6\n7\n8\n"


def test_label_ids_of_another_legend_are_reported_and_mapped(slovenia_sources, synthetic_root, tmp_path, capsys):
    sources = slovenia_sources.root
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(synthetic_root / "480" / "classes.txt", root / "classes.txt")
    args = [str(sources / "safe"), "--labels", str(sources / "lulc.tif")]
    tif2tfrecord.main([*args, "--outdir", str(root / "data15")])
    err = capsys.readouterr().err
    # LULC: 1 cultivated (11 px), 2 forest (7,601), 3 grassland (1,777), 4 shrubland (358), 8 artificial (198);
    # the crop classes list 1, 2, 3 and 8 (sugar beet, summer oat, meadow, hop), not 4
    assert f"warning: {sources / 'lulc.tif'}: label ids not in {root / 'classes.txt'} are unknown (0) to the " \
           "network: 4 (358 px): 358 of 9,945 labelled px (3.6 %); map your legend with --labelmap" in err
    (tmp_path / "legend.csv").write_text("lulc,mtlcc  # grassland is meadow\n3,3\n2,0\n1,0\n")
    tif2tfrecord.main([*args, "--outdir", str(root / "mapped"), "--labelmap", str(tmp_path / "legend.csv")])
    err = capsys.readouterr().err
    assert "ids not in --labelmap" in err and "became 0 (unknown): 4 (358 px), 8 (198 px): 556 of 9,945 labelled" \
                                              " px (5.6 %)" in err
    assert "label ids not in" not in err
    mapped = read_tile(root / "mapped" / "0.tfrecord.gz").labels[0]
    original = slovenia_sources.scenes.labels[:48, :48]
    np.testing.assert_array_equal(mapped, np.where(original == 3, 3, 0))
    (tmp_path / "bad.csv").write_text("a,b\n3,x\n")
    assert "bad.csv:2: expected 'own_id,class_id'" in _error([*args, "--outdir", tmp_path / "x", "--labelmap",
                                                              tmp_path / "bad.csv"], capsys)


def test_bad_input_writes_nothing(slovenia_sources, tmp_path, capsys):
    sources = slovenia_sources.root
    out = tmp_path / "root" / "data15"
    err = _error([sources / "tif", "--outdir", out, "--scale", "10000"], capsys)
    assert "B" in err and "after scaling (value x 10000 + 0); L1C DN lie in 0..20000" in err
    assert not list(out.glob("*.tfrecord.gz")) and not (tmp_path / "root" / "geotransforms.csv").exists()
    assert "5 dates do not fit into nobs = 4" in _error([sources / "safe", "--outdir", out, "--nobs", "4"], capsys)
    assert not list(out.iterdir())
    err = _error([sources / "stacks", "--outdir", out], capsys)
    assert "20150711.tif: band B04 has float values up to 0.152, which look like reflectance 0..1" in err
    assert err.endswith("(pass --scale 10000)\n")
    assert "--tilesize 50: must be a positive multiple of 6" in _error(
        [sources / "tif", "--tilesize", "50", "--outdir", out], capsys)
    assert "smaller than one tile of --tilesize 102 (use --edge pad)" in _error(
        [sources / "tif", "--tilesize", "102", "--edge", "drop", "--outdir", out], capsys)
    assert "--labelmap: give --labels with it" in _error([sources / "tif", "--labelmap", "x.csv", "--outdir", out],
                                                         capsys)
    err = _error([sources / "tif", "--labels", sources / "stacks" / "20150711.tif", "--outdir", out], capsys)
    assert "20150711.tif: 13 bands, expected one band of class ids" in err
    folder = tmp_path / "mytile" / "10m"
    folder.mkdir(parents=True)
    assert "the folder name is no tile id" in _error([folder.parent, "--outdir", out], capsys)
    assert "a tile folder among the sources of an area" in _error([folder.parent, sources / "tif", "--outdir", out],
                                                                  capsys)
    assert "--year 2016: the sources hold 2015 (5 observations)" in _error(
        [sources / "safe", "--year", "2016", "--outdir", out], capsys)
    assert not list(out.iterdir())


def test_the_readme_recipe_from_scenes_to_an_evaluated_map(slovenia_sources, synthetic_root, tmp_path, capsys):
    """README "Your own Sentinel-2 data": a one-year root (dataset.ini with both sections copied), records of an
    area, the dataset check, a model folder, and evaluate.py with mosaics on the area."""
    root = tmp_path / "myroot"
    root.mkdir()
    for name in ("dataset.ini", "classes.txt"):
        shutil.copy(synthetic_root / "480" / name, root / name)
    sources = slovenia_sources.root
    tif2tfrecord.main([str(sources / "safe"), "--outdir", str(root / "data16"), "--labels",
                       str(sources / "lulc.tif"), "--tileids", str(root / "tileids" / "eval.tileids")])
    capsys.readouterr()
    summary = summarize(root)
    assert "[2016] datadir data16/, pix10 48, nobs 46, bands 4/6/3" in summary
    assert "  eval                9        0     5 / 5.0 / 5" in summary
    assert f"[2017] datadir data17/, pix10 48, nobs 46, bands 4/6/3\n  no data: the data folder {root / 'data17'} " \
           "does not exist" in summary
    assert f"warning: {root / 'classes.txt'}: label ids of section [2016] that it does not list count as unknown " \
           "(index 0): 4 (358 px)" in capsys.readouterr().err
    model = tmp_path / "convgru8_48px"
    seqencmodel.main(["--modelfolder", str(model), "--convrnn_filters", "8", "--num_classes", "17", "--pix10m", "48"])
    init_graph.main([str(model)])
    evaluate.main([str(model), "--datadir", str(root), "--storedir", str(tmp_path / "map"), "--dataset", "2016",
                   "--mosaic", "--batchsize", "4"])
    with rasterio.open(tmp_path / "map" / "prediction.tif") as src:
        assert (src.width, src.height, src.crs.to_epsg()) == (144, 144, 32633)
        assert src.transform.to_gdal() == slovenia_sources.scenes.grid.transform
    rows = (root / "geotransforms.csv").read_text().splitlines()
    assert rows[4] == format_geotransform_row(4, slovenia_sources.scenes.grid.shifted(48, 48))
    capsys.readouterr()
