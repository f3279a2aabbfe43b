"""predict.py (utils/mapping.py, utils/prediction.py, utils/mapfiles.py): windows and blending against numpy,
coverage and georeference of a real area, stride = tile against the records' scores, resume, parts and their merge,
bounded accumulation, and one-line errors for bad input."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

import init_graph
import predict
import tif2tfrecord
from modelzoo import seqencmodel
from tests.s2fixtures import band_images, write_band_folder
from utils import mapping, prediction
from utils.cli import run
from utils.georef import GeoRef, read_geotransforms
from utils.mapping import Plan, batch_arrays, blend_weights, window_starts
from utils.modelfolder import ModelFolder
from utils.records import read_tile
from utils.sentinel2 import open_area

FILTERS = 4
REPO = Path(__file__).resolve().parents[1]


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(predict.main, [str(arg) for arg in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.strip().count("\n") == 0, err
    return err


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small ConvGRU for 48 px tiles with random weights and a checkpoint."""
    folder = tmp_path_factory.mktemp("models") / "convgru4_48px"
    seqencmodel.main(["--modelfolder", str(folder), "--convrnn_filters", str(FILTERS), "--num_classes", "17",
                      "--pix10m", "48"])
    init_graph.main([str(folder), "--seed", "3"])
    return folder


@pytest.fixture(scope="module")
def network(model):
    folder = ModelFolder(model)
    return folder.load_network()[0]


@pytest.fixture(scope="module")
def crop(slovenia_sources, tmp_path_factory):
    """The first 96 x 96 px of the Slovenia scenes as per-date band files: 2 x 2 tiles, windows never reach beyond."""
    scenes = slovenia_sources.scenes
    out = tmp_path_factory.mktemp("crop")
    for dn, date in zip(scenes.dn, scenes.dates, strict=True):
        write_band_folder(out / "area" / f"S2A_{date:%Y%m%d}", band_images(dn[:96, :96]), scenes.grid, date=date)
    return out / "area"


def _read(path):
    with rasterio.open(path) as src:
        return src.read(), src


def _softmax(logits: np.ndarray) -> np.ndarray:
    scores = np.exp(logits - logits.max(-1, keepdims=True))
    return scores / scores.sum(-1, keepdims=True)


def _record_scores(network, path) -> np.ndarray:
    """The softmax scores (48, 48, 17) of the network on a record, as the input pipeline feeds it."""
    tile = read_tile(path)
    batch = {name: getattr(tile, name)[None].astype(np.float32) * np.float32(1e-4) for name in ("x10", "x20", "x60")}
    batch["doy"] = tile.doy[None].astype(np.float32) / np.float32(365)
    batch["year"] = tile.year[None].astype(np.float32) - np.float32(2016)
    return _softmax(network(batch, training=False).numpy()[0].astype(np.float64))


def _scores(network, blocks):
    return _softmax(network(batch_arrays(blocks, len(blocks), 48), training=False).numpy().astype(np.float64))


def test_windows_cover_every_pixel_and_weights_blend_to_a_constant():
    assert window_starts(101, 48, 24) == [0, 24, 48, 54]
    assert window_starts(96, 48, 48) == [0, 48]
    assert window_starts(30, 48, 24) == [0]
    for length in range(48, 200, 7):
        starts = window_starts(length, 48, 24)
        assert all(s % 6 == 0 for s in starts) and starts[-1] + 48 >= length > starts[-1] + 48 - 6 - 24
    weights = blend_weights(48)
    assert weights.min() > 0 and np.isclose(weights.max(), np.sin(np.pi * 23.5 / 48) ** 4)
    total = np.zeros((96, 96))
    for r in (0, 24, 48):
        for c in (0, 24, 48):
            total[r:r + 48, c:c + 48] += weights
    np.testing.assert_allclose(total[24:72, 24:72], 1.0, rtol=1e-6)  # sin² + cos² = 1 where four windows overlap


def test_map_covers_the_real_area_with_its_georeference(model, slovenia_sources, tmp_path, capsys):
    out = tmp_path / "map"
    predict.main([str(model), str(slovenia_sources.root / "safe"), "--outdir", str(out), "--batchsize", "5"])
    printed = capsys.readouterr()
    assert "map of 101 x 100 px (1.01 km²): 10,100 px classified, 0 px without data" in printed.out
    assert "warning: year 2015" in printed.err and "warning: the dates run from 2015-07-11 to 2015-09-09" in printed.err
    classes, src = _read(out / "classes.tif")
    assert (src.width, src.height, src.crs.to_epsg()) == (100, 101, 32633)
    assert GeoRef(tuple(src.transform.to_gdal()), 32633) == slovenia_sources.scenes.grid
    assert classes.shape == (1, 101, 100) and classes.min() > 0
    summary = json.loads((out / "summary.json").read_text())
    assert sum(c["pixels"] for c in summary["classes"]) == 10100 and summary["nodata_pixels"] == 0
    assert summary["dates"] == [str(d) for d in slovenia_sources.scenes.dates] and summary["windows"] == 16
    assert sorted(p.name for p in out.iterdir()) == ["classes.png", "classes.tif", "confidence.tif", "summary.json"]
    assert not list(tmp_path.glob(".map.part"))


def test_stride_of_a_tile_gives_the_scores_of_the_records(model, network, crop, tmp_path, capsys):
    tif2tfrecord.main([str(crop), "--outdir", str(tmp_path / "root" / "data15"), "--edge", "drop"])
    out = tmp_path / "map"
    predict.main([str(model), str(crop), "--outdir", str(out), "--stride", "48", "--probabilities"])
    capsys.readouterr()
    probabilities, _ = _read(out / "probabilities.tif")
    for k, (row, col) in enumerate([(0, 0), (0, 48), (48, 0), (48, 48)]):  # the tiles of the area, row by row
        scores = _record_scores(network, tmp_path / "root" / "data15" / f"{k}.tfrecord.gz")
        np.testing.assert_allclose(np.moveaxis(probabilities[:, row:row + 48, col:col + 48], 0, -1), scores,
                                   atol=1e-5)


def test_blended_scores_equal_numpy_blending_of_the_windows(model, network, crop, tmp_path, capsys):
    out = tmp_path / "map"
    predict.main([str(model), str(crop), "--outdir", str(out), "--probabilities", "--batchsize", "3"])
    capsys.readouterr()
    probabilities, _ = _read(out / "probabilities.tif")
    classes, _ = _read(out / "classes.tif")
    w = np.sin(np.pi * (np.arange(48) + 0.5) / 48) ** 2
    weights = np.outer(w, w)
    total = np.zeros((96, 96, 17))
    weight = np.zeros((96, 96))
    with open_area([crop]) as area:
        for row in (0, 24, 48):
            for col in (0, 24, 48):
                window = area.read(row, col, 48, 48).cleaned()
                total[row:row + 48, col:col + 48] += _scores(network, [mapping.WindowInput(row, col, window,
                                                                                           weights)])[0] * \
                    weights[..., None]
                weight[row:row + 48, col:col + 48] += weights
    expected = total / weight[..., None]
    np.testing.assert_allclose(np.moveaxis(probabilities, 0, -1), expected, atol=2e-5)
    ids = np.array([0, 1, 2, 3, 5, 8, 9, 12, 13, 15, 16, 17, 19, 22, 23, 24, 25, 26])
    np.testing.assert_array_equal(classes[0], ids[expected.argmax(-1) + 1])
    confidence, _ = _read(out / "confidence.tif")
    np.testing.assert_allclose(confidence[0], expected.max(-1), atol=2e-5)


@pytest.mark.slow
def test_a_resumed_run_and_merged_parts_equal_the_whole_map(model, slovenia_sources, tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.setattr(mapping, "ACC_BYTES", 72 * 124 * 18 * 4)  # bands of one window row (72 rows of 124 px)
    source = str(slovenia_sources.root / "tif")
    args = ["--probabilities", "--batchsize", "4", "--labels", str(slovenia_sources.root / "lulc.tif")]
    predict.main([str(model), source, "--outdir", str(tmp_path / "whole"), *args])
    whole = {name: _read(tmp_path / "whole" / name)[0] for name in ("classes.tif", "confidence.tif",
                                                                    "probabilities.tif")}
    saves = []
    original = prediction._Run.save

    def stop_after_two(self, *a, **k):
        original(self, *a, **k)
        saves.append(1)
        if len(saves) == 3:  # the empty start, then two bands
            raise KeyboardInterrupt

    monkeypatch.setattr(prediction._Run, "save", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        predict.main([str(model), source, "--outdir", str(tmp_path / "resumed"), *args])
    assert not (tmp_path / "resumed").exists() and (tmp_path / ".resumed.part" / "state.json").is_file()
    monkeypatch.setattr(prediction._Run, "save", original)
    predict.main([str(model), source, "--outdir", str(tmp_path / "resumed"), *args])
    assert "resuming" in capsys.readouterr().err
    for name, array in whole.items():
        np.testing.assert_array_equal(_read(tmp_path / "resumed" / name)[0], array, err_msg=name)
    for k in (1, 2, 3):
        predict.main([str(model), source, "--outdir", str(tmp_path / f"part{k}"), "--part", f"{k}/3", *args])
        rows = json.loads((tmp_path / f"part{k}" / "summary.json").read_text())["part"]["rows"]
        np.testing.assert_array_equal(_read(tmp_path / f"part{k}" / "classes.tif")[0],
                                      whole["classes.tif"][:, rows[0]:rows[1]])
    predict.main(["--merge", *(str(tmp_path / f"part{k}") for k in (3, 1, 2)), "--outdir", str(tmp_path / "merged")])
    for name, array in whole.items():
        merged, src = _read(tmp_path / "merged" / name)
        np.testing.assert_array_equal(merged, array, err_msg=name)
        assert src.transform == _read(tmp_path / "whole" / name)[1].transform
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("whole", "merged")]
    for key in ("classes", "nodata_pixels", "area", "dates"):
        assert summaries[0][key] == summaries[1][key], key
    assert summaries[0]["reference"]["confusion"] == summaries[1]["reference"]["confusion"]
    # LULC ids 1, 2, 3 and 8 are ids of crop classes (11 + 7,601 + 1,777 + 198 px); 0 and 4 are not scored
    assert summaries[0]["reference"]["num_pixels"] == 9587
    capsys.readouterr()


def test_accumulation_is_bounded_by_bands_not_by_the_area():
    class Tall:
        height, width, dates = 20000, 960, [datetime.date(2016, 5, 1)] * 30

        def block_side(self, multiple):
            return 672

    plan = Plan.of(Tall(), 48, 24, 17)
    heights = {plan.band_rows(b)[2] - plan.band_rows(b)[0] for b in range(len(plan.bands))}
    assert max(heights) * plan.span * 18 * 4 <= mapping.ACC_BYTES and len(plan.bands) > 20
    finished = [plan.band_rows(b)[1] for b in range(len(plan.bands))]
    assert finished == sorted(finished) and finished[-1] >= 20000
    assert [plan.band_rows(b)[0] for b in range(1, len(plan.bands))] == finished[:-1]  # rows are released in order


def test_bad_input(model, slovenia_sources, tmp_path, capsys):
    safe = slovenia_sources.root / "safe"
    (tmp_path / "exists").mkdir()
    assert "exists: the output folder exists" in _error([model, safe, "--outdir", tmp_path / "exists"], capsys)
    (tmp_path / "empty").mkdir()
    assert "empty: no observations" in _error([model, tmp_path / "empty", "--outdir", tmp_path / "o"], capsys)
    assert "give the model folder and at least one source" in _error([model, "--outdir", tmp_path / "o"], capsys)
    assert "--part 4/3: expected K/N" in _error([model, safe, "--outdir", tmp_path / "o", "--part", "4/3"], capsys)
    assert "--stride 20: must be a multiple of 6" in _error([model, safe, "--outdir", tmp_path / "o", "--stride",
                                                             "20"], capsys)
    scenes = slovenia_sources.scenes
    images = band_images(scenes.dn[0])
    write_band_folder(tmp_path / "crs" / f"{scenes.dates[0]:%Y%m%d}", images, scenes.grid)
    write_band_folder(tmp_path / "crs" / f"{scenes.dates[1]:%Y%m%d}", images, GeoRef(scenes.grid.transform, 32634))
    assert "the sources must share one CRS" in _error([model, tmp_path / "crs", "--outdir", tmp_path / "o"], capsys)
    coarse = GeoRef((scenes.grid.transform[0], 20.0, 0.0, scenes.grid.transform[3], 0.0, -20.0), 32633)
    write_band_folder(tmp_path / "coarse" / f"{scenes.dates[0]:%Y%m%d}", images, coarse)
    assert "the network reads 10 m pixels" in _error([model, tmp_path / "coarse", "--outdir", tmp_path / "o"], capsys)
    assert "no summary.json" in _error(["--merge", tmp_path / "empty", "--outdir", tmp_path / "o"], capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_equals_one_device(model, crop, tmp_path):
    """--strategy mirrored splits every batch over two logical CPUs (a fresh process: devices are set before
    TensorFlow starts); the scores equal those of one device."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    outputs = {}
    for name, extra in (("one", []), ("two", ["--strategy", "mirrored", "--devices", "CPU:0,CPU:1"])):
        done = subprocess.run([sys.executable, str(REPO / "predict.py"), str(model), str(crop), "--outdir",
                               str(tmp_path / name), "--probabilities", "--batchsize", "6", *extra],
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        outputs[name] = _read(tmp_path / name / "probabilities.tif")[0]
    np.testing.assert_allclose(outputs["two"], outputs["one"], atol=1e-6)
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["model"]["strategy"] == "mirrored"


@pytest.mark.slow
def test_a_dataset_root_of_records_is_mapped_tile_by_tile_as_the_records_say(model, network, synthetic_root,
                                                                            tmp_path, capsys):
    root = synthetic_root / "480"
    out = tmp_path / "map"
    predict.main([str(model), str(root), "--outdir", str(out), "--year", "2016", "--stride", "48", "--probabilities"])
    capsys.readouterr()
    probabilities, src = _read(out / "probabilities.tif")
    georefs = read_geotransforms(root / "geotransforms.csv")
    origin = GeoRef(tuple(src.transform.to_gdal()), src.crs.to_epsg())
    for tileid in sorted(georefs)[::7]:
        row, col = origin.corner_pixel(*georefs[tileid].origin)
        scores = _record_scores(network, root / "data16" / f"{tileid}.tfrecord.gz")
        np.testing.assert_allclose(np.moveaxis(probabilities[:, row:row + 48, col:col + 48], 0, -1), scores,
                                   atol=1e-5, err_msg=str(tileid))
    assert "--year 2018: " in _error([model, root, "--outdir", tmp_path / "x", "--year", "2018"], capsys)
