"""evaluate.py (issue #5): the original's outputs, PNG maps, metrics, mosaics, every tile, bad input."""

from __future__ import annotations

import json
import shlex
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import rasterio
from PIL import Image

import evaluate as evaluate_script
from tests.builders import call, make_model_folder, make_root
from utils.classes import read_classes
from utils.cli import UserError, run
from utils.dataset import read_tileids
from utils.evaluation import TileWriter, TruePredWriter, WriterPool
from utils.georef import read_geotransforms
from utils.modelfolder import ModelFolder, TrainingState
from utils.rasters import ERROR_COLORS, TUM_COLORS, UNKNOWN_COLOR, png_scale, read_geotiff
from utils.records import read_tile

NUM_TILES = 10
BATCH = 3
NO_GEOREF = 4  # position (in the eval list) of the tile whose geotransforms.csv row is removed
FILTERS = 4
PRODUCTS = {"prediction": "int16", "ground_truth": "int16", "mask": "float32", "loss": "float32"}




def model_folder(path: Path, checkpoint: bool = True, never: int | None = None, **flags) -> Path:
    """A model folder with a tiny network; with ``checkpoint``, non-trivial batch-norm statistics at step 7, and
    class index ``never`` never predicted (a large negative batch-norm offset of its logit)."""
    make_model_folder(path, convrnn_filters=FILTERS, **flags)
    if checkpoint:
        folder = ModelFolder(path)
        model = folder.build_model()
        rng = np.random.default_rng(1)
        variables = model.named_variables()
        variables["class/bn/moving_mean"].assign(rng.normal(0.0, 0.5, 17).astype(np.float32))
        variables["class/bn/moving_variance"].assign(rng.uniform(0.2, 2.0, 17).astype(np.float32))
        if never is not None:
            variables["class/bn/beta"][never - 1].assign(-100.0)
        state = TrainingState(model)
        state.global_step.assign(7)
        state.save(folder)
    return path




@pytest.fixture(scope="module")
def source(synthetic_root) -> Path:
    return synthetic_root / "240"


@pytest.fixture(scope="module")
def eval_ids(source) -> list[int]:
    return read_tileids(source, "eval")[:NUM_TILES]


@pytest.fixture(scope="module")
def root(source, eval_ids, tmp_path_factory) -> Path:
    return make_root(source, tmp_path_factory.mktemp("data") / "240", eval_ids, read_tileids(source, "test", 1)[:2],
                     drop=(eval_ids[NO_GEOREF],))


@pytest.fixture(scope="module")
def absent(root, eval_ids) -> int:
    """A class index without pixels in the evaluated tiles (the model is made never to predict it)."""
    classes = read_classes(root)
    support = sum(np.bincount(classes.to_index(read_tile(root / "data16" / f"{t}.tfrecord.gz").labels[0]).ravel(),
                              minlength=len(classes.ids)) for t in eval_ids)
    return int(np.flatnonzero(support[1:] == 0)[0]) + 1


@pytest.fixture(scope="module")
def modeldir(tmp_path_factory, absent) -> Path:
    return model_folder(tmp_path_factory.mktemp("models") / "tiny", never=absent)


@pytest.fixture(scope="module")
def result(root, modeldir, tmp_path_factory) -> SimpleNamespace:
    """One evaluation with every output: tiles, confidences, mosaics; batch size 3 on 10 tiles."""
    out = tmp_path_factory.mktemp("eval") / "out"
    done = call([modeldir, "--datadir", root, "--storedir", out, "-t", "-c", "-b", BATCH, "--mosaic", "-d", "2016"])
    done.out = out
    return done


@pytest.fixture(scope="module")
def reference(root, modeldir, eval_ids) -> dict[int, dict[str, np.ndarray]]:
    """Per tile, computed without the evaluation code: records read directly, the Keras model called eagerly."""
    folder = ModelFolder(modeldir)
    model, _, _ = folder.load_network()
    classes = read_classes(root)
    expected = {}
    for tileid in eval_ids:
        tile = read_tile(root / "data16" / f"{tileid}.tfrecord.gz")
        batch = {name: getattr(tile, name)[None].astype(np.float32) * np.float32(1e-4)
                 for name in ("x10", "x20", "x60")}
        batch["doy"] = tile.doy[None].astype(np.float32) / np.float32(365)
        batch["year"] = tile.year[None].astype(np.float32) - np.float32(2016)
        logits = model(batch, training=False).numpy()[0].astype(np.float64)
        scores = np.exp(logits - logits.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        labels = classes.to_index(tile.labels[0])
        picked = np.take_along_axis(scores, np.maximum(labels - 1, 0)[..., None], -1)[..., 0]
        top2 = np.sort(scores, -1)[..., -2:]
        expected[tileid] = {"labels": labels, "raw_labels": tile.labels[0], "prediction": scores.argmax(-1) + 1,
                            "scores": scores, "loss": np.where(labels > 0, -np.log(picked), 0.0),
                            "clear": top2[..., 1] - top2[..., 0] > 1e-4}
    return expected


def tifs(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*.tif")}


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_every_tile_is_written_with_batch_size_3_on_10_tiles(result, eval_ids):
    names = {f"{tileid}.tif" for tileid in eval_ids}
    for product in PRODUCTS:
        assert tifs(result.out / product) == names
    confidence_folders = sorted(p.name for p in (result.out / "confidences").iterdir() if p.is_dir())
    assert len(confidence_folders) == 17 and "13_winter_wheat" in confidence_folders
    for name in confidence_folders:
        assert tifs(result.out / "confidences" / name) == names
    for kind in ("prediction", "ground_truth", "error", "confidence"):
        assert {p.name for p in (result.out / "png" / kind).iterdir()} == {f"{t}.png" for t in eval_ids}
    assert not [p for p in result.out.rglob("*") if ".part" in p.name or p.name.startswith(".")]
    assert f"{NUM_TILES} tiles" in result.stdout


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_geotiffs_carry_transform_crs_dtype_and_the_models_values(result, root, eval_ids, reference):
    georefs = read_geotransforms(root / "geotransforms.csv")
    classes = read_classes(root)
    for position, tileid in enumerate(eval_ids):
        expected = reference[tileid]
        for product, dtype in PRODUCTS.items():
            with rasterio.open(result.out / product / f"{tileid}.tif") as src:
                assert src.dtypes == (dtype,) and src.count == 1 and src.shape == (24, 24)
                if position == NO_GEOREF:
                    assert src.crs is None
                else:
                    assert src.crs.to_epsg() == georefs[tileid].epsg == 32632
                    assert src.transform.to_gdal() == georefs[tileid].transform
        prediction, _ = read_geotiff(result.out / "prediction" / f"{tileid}.tif")
        clear = expected["clear"]
        assert clear.mean() > 0.95
        np.testing.assert_array_equal(prediction[clear], classes.to_raw(expected["prediction"])[clear])
        truth, _ = read_geotiff(result.out / "ground_truth" / f"{tileid}.tif")
        np.testing.assert_array_equal(truth, np.where(expected["labels"] > 0, expected["raw_labels"], 0))
        mask, _ = read_geotiff(result.out / "mask" / f"{tileid}.tif")
        np.testing.assert_array_equal(mask, (expected["labels"] > 0).astype(np.float32))
        loss, _ = read_geotiff(result.out / "loss" / f"{tileid}.tif")
        np.testing.assert_allclose(loss, expected["loss"], rtol=1e-4, atol=1e-5)
        assert loss[expected["labels"] == 0].max(initial=0) == 0
        wheat, georef = read_geotiff(result.out / "confidences" / "13_winter_wheat" / f"{tileid}.tif")
        np.testing.assert_allclose(wheat, expected["scores"][..., 12], atol=1e-5)
        assert (georef is None) == (position == NO_GEOREF)


def test_tile_without_geotransform_row_is_warned_once(result, eval_ids):
    lines = [line for line in result.stderr.splitlines() if "geotransforms.csv" in line]
    assert len(lines) == 1
    assert lines[0].startswith("warning: ") and f"1 of {NUM_TILES} tiles" in lines[0]
    assert f"first: {eval_ids[NO_GEOREF]}" in lines[0]


def confusion_from_truepred(truepred: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    position = {raw: k for k, raw in enumerate(ids[1:])}
    matrix = np.zeros((len(ids) - 1,) * 2, dtype=np.int64)
    np.add.at(matrix, ([position[t] for t in truepred[:, 0]], [position[p] for p in truepred[:, 1]]), 1)
    return matrix


def test_metrics_equal_a_direct_numpy_computation(result, root, eval_ids, reference, absent):
    classes = read_classes(root)
    truepred = np.load(result.out / "truepred.npy")
    assert truepred.dtype == np.int64 and truepred.ndim == 2 and truepred.shape[1] == 2
    # rows: the labelled pixels of the tiles in evaluation order, true and predicted raw ids
    truth = np.concatenate([reference[t]["raw_labels"][reference[t]["labels"] > 0] for t in eval_ids])
    predicted = np.concatenate([read_geotiff(result.out / "prediction" / f"{t}.tif")[0][reference[t]["labels"] > 0]
                                for t in eval_ids])
    np.testing.assert_array_equal(truepred, np.stack([truth, predicted], axis=1))
    matrix = confusion_from_truepred(truepred, classes.ids)
    lines = (result.out / "confusion_matrix.csv").read_text().splitlines()
    assert lines[0] == ", ".join(classes.names[1:])
    np.testing.assert_array_equal(np.array([[int(v) for v in line.split(", ")] for line in lines[1:]]), matrix)

    metrics = json.loads((result.out / "metrics.json").read_text())
    n = matrix.sum()
    support, predicted_count, tp = matrix.sum(1), matrix.sum(0), np.diag(matrix)
    accuracy = tp.sum() / n
    chance = (support * predicted_count).sum() / n**2
    present = support + predicted_count > 0
    iou = tp[present] / (support + predicted_count - tp)[present]
    assert not present[absent - 1] and present.sum() > 2
    assert metrics["num_tiles"] == NUM_TILES and metrics["num_pixels"] == n == len(truepred)
    assert metrics["overall_accuracy"] == pytest.approx(accuracy)
    assert metrics["kappa"] == pytest.approx((accuracy - chance) / (1 - chance))
    assert metrics["mean_iou"] == pytest.approx(iou.mean())
    f1 = 2 * tp[present] / (support + predicted_count)[present]
    assert metrics["macro"]["f1"] == pytest.approx(f1.mean())
    assert metrics["weighted"]["recall"] == pytest.approx(accuracy)
    for k, entry in enumerate(metrics["classes"]):
        assert entry["id"] == classes.ids[k + 1] and entry["support"] == support[k]
        if not present[k]:
            assert entry["iou"] is None and entry["f1"] is None and entry["precision"] is None
    precision = tp / np.where(predicted_count > 0, predicted_count, np.nan)
    assert metrics["macro"]["precision"] == pytest.approx(np.nanmean(precision))
    assert metrics["run"]["global_step"] == 7 and metrics["run"]["partition"] == "eval"
    assert metrics["run"]["checkpoint"].endswith("model.ckpt-7")
    assert f"kappa {metrics['kappa']:.3f}" in result.stdout


def test_report_files_of_the_original(result, root):
    classes = read_classes(root)
    assert (result.out / "classes.csv").read_text().splitlines() == [
        f"{i}, {name}" for i, name in zip(classes.ids[1:], classes.names[1:], strict=True)]
    metrics_csv = (result.out / "metrics.csv").read_text().splitlines()
    assert metrics_csv[0] == "id,name,precision,recall,fscore,support" and len(metrics_csv) == 17 + 3
    assert metrics_csv[-1].startswith(",weight. avg,")
    assert "avg / total" in (result.out / "classification_report.txt").read_text()
    with Image.open(result.out / "confusion_matrix.png") as image:
        assert image.width > 600 and image.height > 600


def test_png_colours_match_the_colour_map(result, root, eval_ids, reference):
    classes = read_classes(root)
    scale = png_scale(24, 24)
    colors = TUM_COLORS.copy()
    colors[0] = UNKNOWN_COLOR
    inferno = matplotlib.colormaps["inferno"]
    for tileid in eval_ids:
        labels = reference[tileid]["labels"]
        ground_truth = read_png(result.out / "png" / "ground_truth" / f"{tileid}.png")
        assert ground_truth.shape == (24 * scale, 24 * scale, 3)
        np.testing.assert_array_equal(ground_truth[::scale, ::scale], colors[labels])
        prediction_index = classes.to_index(read_geotiff(result.out / "prediction" / f"{tileid}.tif")[0])
        prediction = read_png(result.out / "png" / "prediction" / f"{tileid}.png")[::scale, ::scale]
        np.testing.assert_array_equal(prediction, colors[prediction_index])
        error = read_png(result.out / "png" / "error" / f"{tileid}.png")[::scale, ::scale]
        expected_error = np.where((prediction_index == labels)[..., None], ERROR_COLORS["correct"],
                                  ERROR_COLORS["wrong"])
        expected_error[labels == 0] = ERROR_COLORS["unknown"]
        np.testing.assert_array_equal(error, expected_error)
        scores = np.stack([read_geotiff(folder / f"{tileid}.tif")[0]
                           for folder in sorted((result.out / "confidences").iterdir()) if folder.is_dir()], -1)
        confidence = read_png(result.out / "png" / "confidence" / f"{tileid}.png")[::scale, ::scale]
        np.testing.assert_array_equal(confidence, inferno(scores.max(-1).astype(np.float64), bytes=True)[..., :3])
    with Image.open(result.out / "png" / "legend.png") as legend:
        assert legend.height > 18 * 20


def test_mosaic_places_tiles_at_their_coordinates(result, root, eval_ids):
    georefs = read_geotransforms(root / "geotransforms.csv")
    placed = [tileid for tileid in eval_ids if tileid in georefs]
    for product in (*PRODUCTS, "confidences/17_maize"):
        path = result.out / f"{product}.tif"
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.dtypes[0] == PRODUCTS.get(product, "float32")
        merged, georef = read_geotiff(path)
        x0, _, _, y0, _, _ = georef.transform
        xs = [georefs[t].transform[0] for t in placed]
        ys = [georefs[t].transform[3] for t in placed]
        assert (x0, y0) == (min(xs), max(ys))
        assert merged.shape == ((max(ys) - min(ys)) / 10 + 24, (max(xs) - min(xs)) / 10 + 24)
        for tileid in placed:
            tile, _ = read_geotiff(result.out / product / f"{tileid}.tif")
            row = int(round((y0 - georefs[tileid].transform[3]) / 10))
            col = int(round((georefs[tileid].transform[0] - x0) / 10))
            np.testing.assert_array_equal(merged[row:row + 24, col:col + 24], tile)


ORIGINAL_README = r"""python evaluate.py tmp/convgru128 \
    --datadir data_IJGI18/datasets/demo/240 \
    --storedir tmp/eval/24 \
    --writetiles \
    --writeconfidences \
    --batchsize 1 \
    --dataset 2017
"""


def test_readme_invocation_parses_verbatim():
    args = evaluate_script.build_parser().parse_args(shlex.split(ORIGINAL_README.replace("\\\n", ""))[2:])
    assert (args.modeldir, args.datadir, args.storedir, args.batchsize, args.section) == (
        Path("tmp/convgru128"), "data_IJGI18/datasets/demo/240", Path("tmp/eval/24"), 1, "2017")
    assert args.writetiles and args.writeconfidences and not args.mosaic
    assert (args.partition, args.fold, args.prefetch, args.checkpoint) == ("eval", 0, 6, None)
    short = evaluate_script.build_parser().parse_args(["m", "-t", "-c", "-b", "3", "-d", "2017", "-v"])
    assert short.writetiles and short.writeconfidences and short.verbose and short.batchsize == 3


def test_untrained_model_needs_allow_untrained_and_another_partition_can_be_chosen(source, tmp_path):
    test_ids = read_tileids(source, "test", 1)[:2]
    root = make_root(source, tmp_path / "240", read_tileids(source, "eval")[:1], test_ids, georef_rows=False)
    modeldir = model_folder(tmp_path / "untrained", checkpoint=False)
    out = tmp_path / "out"
    argv = [modeldir, "--datadir", root, "--storedir", out, "-t", "-b", 4, "--partition", "test", "--fold", 1]
    with pytest.raises(UserError, match="no checkpoint .*--allow_untrained"):
        call(argv)
    assert not out.exists()
    done = call([*argv, "--allow_untrained", "-d", "2017"])
    assert "randomly initialised" in done.stderr
    assert "geotransforms.csv: no such file" in done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_tiles"] == 2 and metrics["run"]["checkpoint"] is None
    assert metrics["run"]["section"] == "2017" and metrics["run"]["fold"] == 1
    options = metrics["run"]["options"]  # every effective option of the run
    assert (options["datadir"], options["storedir"], options["batchsize"], options["writetiles"]) == \
        (str(root), str(out), 4, True)
    assert (options["allow_untrained"], options["prefetch"], options["mosaic"]) == (True, 6, False)
    assert tifs(out / "prediction") == {f"{t}.tif" for t in test_ids}
    assert read_geotiff(out / "prediction" / f"{test_ids[0]}.tif")[1] is None
    assert len(np.load(out / "truepred.npy")) == metrics["num_pixels"]


def test_class_count_differing_from_classes_txt(root, tmp_path):
    modeldir = model_folder(tmp_path / "five", checkpoint=False, num_classes=5)
    with pytest.raises(UserError, match=r"params.ini: the model has num_classes = 5 but .*classes.txt lists 17"):
        call([modeldir, "--datadir", root, "--storedir", tmp_path / "out"])


def test_bad_input_is_one_line_with_exit_status_2(root, modeldir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(evaluate_script.main, [str(tmp_path / "nothing"), "--datadir", str(root)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model folder does not exist" in err
    cases = {
        "no such checkpoint": ["--checkpoint", "model.ckpt-99"],
        "prefetch": ["--prefetch", "-1"],
        "batchsize = 0": ["-b", "0"],
        "no section \\[2015\\]": ["-d", "2015"],
        "test_fold7.tileids: no such file": ["--partition", "test", "--fold", "7"],
    }
    for message, extra in cases.items():
        with pytest.raises(UserError, match=message):
            call([modeldir, "--datadir", root, "--storedir", tmp_path / "out", *extra])
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"file/out: cannot create the folder \(Not a directory\)$"):
        call([modeldir, "--datadir", root, "--storedir", tmp_path / "file" / "out"])
    with pytest.raises(UserError, match=r"file: exists and is not a folder$"):
        call([modeldir, "--datadir", root, "--storedir", tmp_path / "file"])


def root_with_a_corrupt_tile(source: Path, root: Path, eval_ids: list[int]) -> Path:
    """A dataset root of ``eval_ids`` whose last tile file is not a record."""
    make_root(source, root, eval_ids, eval_ids)
    (root / "data16").unlink()
    (root / "data16").mkdir()
    for tileid in eval_ids:
        shutil.copy(source / "data16" / f"{tileid}.tfrecord.gz", root / "data16")
    (root / "data16" / f"{eval_ids[-1]}.tfrecord.gz").write_bytes(b"not a record")
    return root


def test_corrupt_tile_names_the_file_and_writes_no_reports(source, modeldir, tmp_path):
    eval_ids = read_tileids(source, "eval")[:2]
    root = root_with_a_corrupt_tile(source, tmp_path / "240", eval_ids)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=f"{eval_ids[1]}.tfrecord.gz"):
        call([modeldir, "--datadir", root, "--storedir", out, "-t", "-b", 1])
    assert not (out / "truepred.npy").exists() and not (out / "metrics.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_storedir_holds_the_outputs_of_one_complete_run(source, modeldir, tmp_path):
    """A failed run leaves the earlier complete run's outputs as they were; a complete run replaces all of them
    (no tiles of another run beside its metrics); a killed run's staging folder goes with the next run."""
    eval_ids = read_tileids(source, "eval")[:3]
    root = make_root(source, tmp_path / "240", eval_ids, eval_ids[:2])
    out = tmp_path / "out"
    call([modeldir, "--datadir", root, "--storedir", out, "-b", 2, "--writetiles"])
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(list((out / "prediction").iterdir())) == 3
    (out / ".staged.999999999.abcdefgh.part").mkdir()  # the staging folder of a killed run (no such process)
    (out / ".staged.999999999.abcdefgh.part" / "metrics.json").write_text("{}")

    broken = root_with_a_corrupt_tile(source, tmp_path / "broken", eval_ids)
    with pytest.raises(UserError, match=f"{eval_ids[2]}.tfrecord.gz"):
        call([modeldir, "--datadir", broken, "--storedir", out, "-b", 1, "--writetiles"])
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    call([modeldir, "--datadir", root, "--storedir", out, "-b", 2, "--partition", "test", "--fold", 1])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["classes.csv", "classification_report.txt", "confusion_matrix.csv", "confusion_matrix.png", "metrics.csv",
         "metrics.json", "truepred.npy"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_tiles"] == 2 and metrics["run"]["partition"] == "test"


def test_the_latest_checkpoint_rotated_away_while_loading_is_resolved_again(modeldir, source, tmp_path, monkeypatch):
    """evaluate.py during training: the latest checkpoint may be rotated away between resolving and reading it;
    the new latest is read instead."""
    folder = ModelFolder(shutil.copytree(modeldir, tmp_path / "m"))
    resolve = ModelFolder.checkpoint

    def resolve_then_rotate(self, name=None, required=True):
        prefix = resolve(self, name, required)
        if prefix.endswith("model.ckpt-7"):  # a training saves step 9 and deletes step 7 (--max_models_to_keep 1)
            state = TrainingState(folder.build_model())
            state.restore(prefix)
            state.global_step.assign(9)
            state.save(folder, max_to_keep=1)
        return prefix

    monkeypatch.setattr(ModelFolder, "checkpoint", resolve_then_rotate)
    _, prefix, step = folder.load_network()
    assert (Path(prefix).name, step) == ("model.ckpt-9", 9)


def test_truepred_writer_streams_and_writes_only_when_complete(tmp_path):
    path = tmp_path / "truepred.npy"
    with TruePredWriter(path) as writer:
        writer.append(np.array([1, 2, 3]), np.array([1, 5, 3]))
        writer.append(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
        writer.append(np.array([26]), np.array([0]))
        assert not path.exists()
    np.testing.assert_array_equal(np.load(path), [[1, 1], [2, 5], [3, 3], [26, 0]])
    with pytest.raises(RuntimeError), TruePredWriter(tmp_path / "failed.npy") as writer:
        writer.append(np.array([1]), np.array([1]))
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truepred.npy"]


def test_writer_pool_bounds_pending_jobs_and_raises_job_errors():
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def job():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1

    def failing():
        raise OSError("disk full")

    with WriterPool(threads=2, limit=3) as pool:
        for _ in range(3):
            pool.submit(job)
        threading.Timer(0.2, release.set).start()
        pool.submit(job)  # blocks until the oldest job finished, which is after the release
        assert release.is_set() and pool.wait_seconds > 0
    assert peak[0] == 2
    with pytest.raises(OSError, match="disk full"), WriterPool(threads=1, limit=1) as pool:
        pool.submit(failing)
        pool.submit(failing)


def test_failed_tile_write_names_the_file(root, tmp_path):
    (tmp_path / "prediction").write_text("a file where the folder should be")
    writer = TileWriter(tmp_path, read_classes(root), {}, tiles=True, confidences=False)
    labels = np.zeros((24, 24), np.int32)
    with pytest.raises(UserError, match=r"prediction: exists and is not a folder$"):
        writer(5, labels, labels + 1, np.full((24, 24, 17), 1 / 17, np.float32), np.zeros((24, 24), np.float32))
