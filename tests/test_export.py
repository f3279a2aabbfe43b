"""export_model.py (issue #17): SavedModel and ONNX exports of our model folders and the original's TF1 folders give
the Keras model's scores on records of the synthetic dataset, in a process that cannot import this project; the
time loop stays a loop; bad input is one line."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf
import tf2onnx

import export_model
from modelzoo.params import ModelParams, write_params_ini
from tests.builders import make_model_folder, randomize, write_tf1_model
from utils import export
from utils.classes import ORIGINAL_CLASSES
from utils.cli import run
from utils.dataset import Dataset, iterate, normalized
from utils.modelfolder import ModelFolder, TrainingState
from utils.records import read_tile

FILTERS = 8
# (cell, pix10m, origin): our folders with random weights and the original's TF1 folders, both cells and tile sizes
MODELS = (("gru", 24, "ours"), ("lstm", 48, "ours"), ("gru", 48, "tf1"), ("lstm", 24, "tf1"))
TOLERANCE = 1e-5
FEATURES = ("x10", "x20", "x60", "doy", "year")

# Runs in a fresh interpreter without this project on sys.path (-I, cwd elsewhere); importing it would fail.
NO_PROJECT = """
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("utils", "modelzoo", "export_model"):
            raise ImportError(f"{name} imported")
sys.meta_path.insert(0, Refuse())
import numpy as np, onnxruntime, tensorflow as tf

def onnx_runner(path):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    classes = [json.loads(meta["class_ids"]), json.loads(meta["class_names"])]
    return classes, lambda features: session.run(["scores", "class_index"], features)

def savedmodel_runner(path):
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    classes = [loaded.class_ids.numpy().tolist(), [name.decode() for name in loaded.class_names.numpy()]]
    def predict(features):
        out = signature(**{key: tf.constant(value) for key, value in features.items()})
        return out["scores"].numpy(), out["class_index"].numpy()
    return classes, predict

exports, cases = json.loads(sys.argv[1]), np.load(sys.argv[2])
results, classes = {}, {}
for name, path in exports.items():
    classes[name], predict = (onnx_runner if path.endswith(".onnx") else savedmodel_runner)(path)
    for case in sorted({key.partition("/")[0] for key in cases}):
        features = {key: cases[f"{case}/{key}"] for key in ("x10", "x20", "x60", "doy", "year")}
        results[f"{name}|{case}"], results[f"{name}|{case}|index"] = predict(features)
np.savez(sys.argv[3], **results)
project = [name for name in sys.modules if name.partition(".")[0] in ("utils", "modelzoo")]
print(json.dumps({"classes": classes, "project": project, "path": sys.path}))
"""


def _run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        run(export_model.main, [str(arg) for arg in argv])
    return exit_info.value.code, capsys.readouterr().err


def _export(argv) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        export_model.main([str(arg) for arg in argv])
    return stdout.getvalue()


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[tuple[str, int, str], Path]:
    """The model folders of MODELS: ours with random weights in every variable, the original's as TF1 wrote them."""
    root = tmp_path_factory.mktemp("models")
    folders = {}
    for seed, (cell, pix10m, origin) in enumerate(MODELS):
        path = root / f"{origin}_conv{cell}{FILTERS}_{pix10m}px"
        if origin == "tf1":
            write_tf1_model(path, cell, pix10m, seed=seed)
        else:
            path.mkdir()
            write_params_ini(path / "params.ini", ModelParams(convcell=cell, convrnn_filters=FILTERS, pix10m=pix10m))
            folder = ModelFolder(path)
            model = folder.build_model()
            randomize(model, seed)
            TrainingState(model).save(folder)
        folders[cell, pix10m, origin] = path
    return folders


@pytest.fixture(scope="module")
def exports(folders, tmp_path_factory) -> dict[str, Path]:
    """Every model folder as a SavedModel and an ONNX file, through export_model.py."""
    out = tmp_path_factory.mktemp("exports")
    exports = {}
    for (cell, pix10m, origin), folder in folders.items():
        for suffix in (".savedmodel", ".onnx"):
            path = out / f"{folder.name}{suffix}"
            printed = _export([folder, path])
            assert printed.startswith(f"exported {folder}/model.ckpt-") and f": {path}\n" in printed, printed
            exports[f"{origin}_{cell}{pix10m}{suffix}"] = path
    return exports


@pytest.fixture(scope="module")
def cases(synthetic_root) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """``{case: (the records' values, the pipeline's batch)}``: two eval tiles of 2016 with different numbers of
    valid dates (padded at the end to nobs 46) at 48 and 24 px, and the 48 px pair cut after its last valid date."""
    cases = {}
    for size in (48, 24):
        dataset = Dataset(synthetic_root / f"{size * 10}", "2016")
        chosen, lengths = [], set()
        for tileid, path in dataset.tile_files("eval"):
            length = int((read_tile(path).doy > 0).sum())
            if length < dataset.config.nobs and length not in lengths:
                chosen.append((tileid, path))
                lengths.add(length)
            if len(chosen) == 2:
                break
        raw = [read_tile(path) for _, path in chosen]
        records = {key: np.stack([getattr(tile, key) for tile in raw]) for key in FEATURES}
        batch = next(iterate(dataset.pipeline("eval", batchsize=2, tileids=[t for t, _ in chosen], prefetch=None)))
        assert batch["tileid"].tolist() == [t for t, _ in chosen]
        cases[f"{size}px"] = (records, batch)
        if size == 48:
            cut = max(lengths)
            cases["48px_cut"] = tuple({key: value[:, :cut] if key in FEATURES else value for key, value in d.items()}
                                      for d in (records, batch))
    return cases


@pytest.mark.slow  # starts a process; the exports take 40 s
def test_exports_give_the_keras_scores_without_the_project(folders, exports, cases, tmp_path):
    inputs = {f"{case}/{key}": value for case, (records, _) in cases.items() for key, value in records.items()}
    np.savez(tmp_path / "cases.npz", **inputs)
    done = subprocess.run([sys.executable, "-I", "-c", NO_PROJECT, json.dumps({k: str(v) for k, v in exports.items()}),
                           str(tmp_path / "cases.npz"), str(tmp_path / "scores.npz")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["project"] == [] and str(Path(export_model.__file__).parent) not in report["path"]
    scores = np.load(tmp_path / "scores.npz")
    for (cell, pix10m, origin), path in folders.items():
        folder = ModelFolder(path)
        model, _, _ = folder.load_network()
        for case, (_, batch) in cases.items():
            expected = tf.nn.softmax(model(batch, training=False)).numpy()
            for suffix in (".savedmodel", ".onnx"):
                name = f"{origin}_{cell}{pix10m}{suffix}"
                np.testing.assert_allclose(scores[f"{name}|{case}"], expected, rtol=0, atol=TOLERANCE,
                                           err_msg=f"{name} {case}")
                np.testing.assert_array_equal(scores[f"{name}|{case}|index"], scores[f"{name}|{case}"].argmax(-1) + 1)
                assert report["classes"][name] == [list(ORIGINAL_CLASSES.ids), list(ORIGINAL_CLASSES.names)]


@pytest.mark.slow  # the exports of the test above
def test_onnx_keeps_the_time_loop_and_the_savedmodel_its_metadata(exports):
    proto = onnx.load(exports["ours_lstm48.onnx"])
    assert [node.op_type for node in proto.graph.node].count("Loop") == 2  # forward and backward, any date count
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 17
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.input}
    assert shapes["x20"] == ["batch", "dates", "height/2", "width/2", 6] and shapes["doy"] == ["batch", "dates"]
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    assert meta["checkpoint"] == "ours_convlstm8_48px/model.ckpt-0" and json.loads(meta["params"])["convcell"] == "lstm"
    saved = json.loads((exports["tf1_gru48.savedmodel"] / "assets" / "metadata.json").read_text())
    assert saved["checkpoint"] == "tf1_convgru8_48px/model.ckpt-3" and saved["global_step"] == 3
    assert saved["class_names"][1] == "sugar beet" and saved["class_ids"][-1] == 26


@pytest.mark.slow  # a two-layer conversion takes 13 s
def test_stacked_layers_compression_separate_weights_and_peepholes_export_to_onnx(tmp_path):
    params = ModelParams(convcell="lstm", convrnn_filters=4, convrnn_layers=2, convrnn_compression_filters=5,
                         separate_weights=True, peephole=True, pix10m=12)
    (tmp_path / "model").mkdir()
    write_params_ini(tmp_path / "model" / "params.ini", params)
    folder = ModelFolder(tmp_path / "model")
    model = folder.build_model()
    randomize(model, 5)
    TrainingState(model).save(folder)
    _export([folder.path, tmp_path / "model.onnx", "--opset", "13"])
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()][:3] == [["batch", "dates", 12, 12, 4], ["batch", "dates", 6, 6, 6],
                                                           ["batch", "dates", 2, 2, 3]]
    features = export.check_inputs(params)
    expected = tf.nn.softmax(model(normalized(features), training=False)).numpy()
    np.testing.assert_allclose(session.run(["scores"], features)[0], expected, rtol=0, atol=TOLERANCE)


@pytest.mark.slow  # a conversion takes 4 s
def test_the_models_own_loop_is_what_tf2onnx_cannot_express(tmp_path, capsys):
    folder = make_model_folder(tmp_path / "model", checkpoint=True, convrnn_filters=4)
    with mock.patch.object(export, "_onnx_tracing", contextlib.nullcontext):
        status, err = _run([folder, tmp_path / "model.onnx"], capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert f"{folder}: tf2onnx {tf2onnx.__version__} cannot express this network in ONNX opset 17 (" in err
    assert not (tmp_path / "model.onnx").exists()


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, capsys):
    folder = make_model_folder(tmp_path / "model", checkpoint=True, convrnn_filters=4)
    untrained = make_model_folder(tmp_path / "untrained", convrnn_filters=4)
    out = tmp_path / "out"
    (out / "taken.savedmodel").mkdir(parents=True)
    (out / "taken.onnx").write_bytes(b"")
    bad = [
        ([untrained, out / "a.savedmodel"], f"{untrained}: no checkpoint in the model folder: nothing to export"),
        ([folder, out / "taken.onnx"], f"{out / 'taken.onnx'}: already exists"),
        ([folder, out / "taken.savedmodel", "--format", "savedmodel"], f"{out / 'taken.savedmodel'}: already exists"),
        ([folder, out / "b.onnx", "--opset", "9"], "cannot express StridedSlice of this network in ONNX opset 9"),
        ([folder, out / "c.onnx", "--opset", "30"], "--opset 30: tf2onnx"),
        ([folder, out / "d", "--format", "tflite"], "argument --format: invalid choice: 'tflite'"),
        ([folder, out / "e.onnx", "--checkpoint", "model.ckpt-99"], "model.ckpt-99: no such checkpoint"),
    ]
    for argv, message in bad:
        status, err = _run(argv, capsys)
        assert status == 2 and err.count("\n") == 1 and message in err, (argv, err)
    assert sorted(path.name for path in out.iterdir()) == ["taken.onnx", "taken.savedmodel"]
