"""train.py and utils/training.py: flags, the procedure, resuming, logs, signals, determinism, learning, bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import train
from modelzoo.params import ModelParams
from modelzoo.seqencmodel import build_model
from tests.builders import make_model_folder
from utils import training
from utils.cli import run
from utils.dataset import Dataset
from utils.modelfolder import LOCK_FILE, ModelFolder, TrainingState, read_checkpoint, write_checkpoint
from utils.runlog import LOG_COLUMNS
from utils.training import Trainer, pipeline_seed, section_steps, validation_input
from utils.trainoptions import RUNS_FILE, TrainingOptions

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(convrnn_filters=8)
# 2 batches of 4 tiles per section: an epoch is 16 tiles = 4 steps over 2016 and 2017
FAST = ["-t", "8", "-b", "4", "--train_on", "2016", "2017", "--limit_batches", "2", "--validation_batches", "1"]


def train_args(folder: Path, root: Path, *extra: str) -> list[str]:
    return [str(folder), "--datadir", str(root / "240"), *FAST, *extra]


def read_log(folder: Path) -> list[dict[str, str]]:
    with open(folder / "training_log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def scalars(run_folder: Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value)]}`` of the TensorBoard event files of a run folder."""
    values: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(run_folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, []).append((event.step, number))
    return values


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``train.py argv`` in this process through utils.cli.run: (exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        run(train.main, argv)
    return exit_info.value.code, capsys.readouterr().err


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}


# ---------------------------------------------------------------------------------------------------- flags


@pytest.mark.slow
def test_augment_transforms_the_training_tiles_but_not_the_recalibration_batches(synthetic_root):
    def first_batches(augment: bool, full_series: bool) -> list[dict[str, np.ndarray]]:
        options = TrainingOptions(datadir=synthetic_root / "240", batchsize=4, temporal_samples=8, augment=augment)
        section = training.load_sections(options, num_classes=17)["2016"]
        stream = iter(training.distributed_training_input(tf.distribute.get_strategy(), section, options, 5,
                                                          full_series))
        return [{key: value.numpy() for key, value in next(stream).items()} for _ in range(4)]

    plain, augmented = first_batches(False, False), first_batches(True, False)
    changed = 0
    for before, after in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(after["tileid"], before["tileid"])
        np.testing.assert_array_equal(after["doy"], before["doy"])
        for labels, original in zip(after["labels"], before["labels"], strict=True):
            symmetries = [np.flip(image, axes) for image in (original, original.T) for axes in ((), 0, 1, (0, 1))]
            assert any(np.array_equal(labels, image) for image in symmetries)
            changed += not np.array_equal(labels, original)
    assert changed > 8  # of 16 tiles; 7 of 8 symmetries change a tile
    for before, after in zip(first_batches(False, True), first_batches(True, True), strict=True):
        for key in before:
            np.testing.assert_array_equal(after[key], before[key])


def test_pipeline_seeds_differ_per_section_and_are_none_without_seed():
    seeds = {pipeline_seed(seed, index) for index in (0, 1) for seed in (7, 8)}
    assert len(seeds) == 4 and all(0 <= seed < 2**63 for seed in seeds)
    assert pipeline_seed(7, 1) == pipeline_seed(7, 1)
    assert pipeline_seed(None, 0) is None
    # sections alternate: steps 0, 2, 4 train on section 0 of 2, steps 1, 3 on section 1
    assert [section_steps(5, index, 2) for index in (0, 1)] == [3, 2]
    assert [section_steps(steps, 2, 3) for steps in (0, 2, 3, 5, 6)] == [0, 0, 1, 1, 2]


@pytest.mark.slow
def test_a_skipped_stream_is_the_rest_of_the_whole_stream(synthetic_root):
    """``skip`` continues the stream where a run stopped, across epoch borders: the same tiles, dates and symmetries
    as the uninterrupted stream."""
    dataset = Dataset(synthetic_root / "240", "2016", temporal_samples=5)
    ids = [tileid for tileid, _ in dataset.tile_files("train")][:6]

    def stream(skip: int) -> list[dict[str, np.ndarray]]:
        pipeline = dataset.pipeline("train", batchsize=2, shuffle=True, seed=11, repeat=True, tileids=ids,
                                    augment=True, drop_remainder=True, skip=skip)
        return [{key: value.numpy() for key, value in batch.items()} for batch in pipeline.take(5)]

    whole = stream(0)
    for skip in (4, 6, 8):  # within the first epoch, at its end, within the second
        for rest, expected in zip(stream(skip), whole[skip // 2:], strict=False):
            for key in expected:
                np.testing.assert_array_equal(rest[key], expected[key], err_msg=key)


# ---------------------------------------------------------------------------------------------------- procedure


@pytest.mark.slow
def test_training_writes_checkpoints_logs_and_resumes(tmp_path, synthetic_root, capsys):
    folder = make_model_folder(tmp_path / "m", **SMALL)
    train.main(train_args(folder, synthetic_root, "-e", "1", "--summary_frequency", "2", "--save_frequency", "1",
                          "--max_models_to_keep", "2"))
    out = capsys.readouterr().out
    assert "an epoch is 16 tiles, 1 epochs = 16 tiles in steps of 4" in out
    # 4 steps, a checkpoint after each, the last 2 kept, no partial files
    assert ModelFolder(folder).checkpoint() == str(folder / "model.ckpt-4")
    assert sorted(p.name for p in folder.glob("*.index")) == ["model.ckpt-3.index", "model.ckpt-4.index"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE]
    tensors = read_checkpoint(folder / "model.ckpt-4")
    assert (tensors["global_step"], tensors["samples_seen"]) == (4, 16)
    assert tensors["beta1_power"] == pytest.approx(0.9 ** 5)  # TF1's beta powers after 4 Adam steps
    rows = read_log(folder)
    assert tuple(rows[0]) == LOG_COLUMNS
    # validation before the first step and every 2 steps; training rows from step 2 on
    assert [(r["global_step"], r["section"], r["partition"]) for r in rows] == [
        ("0", "2016", "test"), ("0", "2017", "test"),
        *[(step, section, partition) for step in ("2", "4") for section, partition in
          (("2016", "train"), ("2017", "train"), ("2016", "test"), ("2017", "test"))]]
    assert [float(r["epoch"]) for r in rows[-4:]] == [1.0] * 4
    assert all(0.0 <= float(r["oa"]) <= 1.0 and float(r["xe"]) > 0 for r in rows)
    assert {float(r["learning_rate"]) for r in rows} == {0.01}
    runs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert runs == ["test2016", "test2017", "train2016(t)", "train2017(t)"]
    logged = scalars(folder / "train2017(t)")
    assert [step for step, _ in logged["xe"]] == [8, 16]  # x-axis: samples seen, as the original
    assert logged["oa"][-1][1] == pytest.approx(float(rows[-3]["oa"]), abs=1e-6)
    assert logged["learning_rate"][0][1] == pytest.approx(0.01)

    # a second run with more epochs continues the counters, the epoch count and the log; the temporary files of a
    # save that was killed go
    orphans = [folder / f".model.ckpt-5.999999999.part.{suffix}" for suffix in ("index", "data-00000-of-00001")]
    for orphan in orphans:
        orphan.write_bytes(b"half")
    train.main(train_args(folder, synthetic_root, "-e", "2", "--summary_frequency", "2", "--save_frequency", "100"))
    assert not any(orphan.exists() for orphan in orphans)
    out = capsys.readouterr().out
    assert "resuming from model.ckpt-4: step 4, 16 tiles seen, epoch 1.00" in out
    tensors = read_checkpoint(folder / "model.ckpt-8")
    assert (tensors["global_step"], tensors["samples_seen"]) == (8, 32)
    assert tensors["beta1_power"] == pytest.approx(0.9 ** 9)  # the Adam step count continued too
    rows = read_log(folder)
    assert [int(r["global_step"]) for r in rows[10:]] == [6] * 4 + [8] * 4
    assert float(rows[-1]["epoch"]) == 2.0
    for column in ("elapsed_s", "cpu_s"):  # continued from the first run's
        assert float(rows[-1][column]) > float(rows[9][column]) > 0

    # nothing left to do: no new step, no new checkpoint
    train.main(train_args(folder, synthetic_root, "-e", "2"))
    assert "nothing to do: 2.00 of 2 epochs done at step 8" in capsys.readouterr().out
    assert ModelFolder(folder).checkpoint() == str(folder / "model.ckpt-8")

    # every run recorded its effective options, where it started and the synthetic dataset it read
    records = [json.loads(line) for line in (folder / RUNS_FILE).read_text().splitlines()]
    assert [(r["start_step"], r["restored"], r["options"]["epochs"]) for r in records] == \
        [(0, None, 1), (4, "model.ckpt-4", 2), (8, "model.ckpt-8", 2)]
    first = records[0]["options"]
    assert (first["datadir"], first["train_on"], first["batchsize"], first["temporal_samples"]) == \
        (str(synthetic_root / "240"), ["2016", "2017"], 4, 8)
    assert (first["save_frequency"], first["seed"], first["schedule"], first["strategy"]) == (1, None, "constant",
                                                                                              "default")
    assert records[0]["replicas"] == 1 and records[0]["data"]["pix10"] == 24
    assert records[0]["versions"]["tensorflow"] == tf.__version__


@pytest.mark.slow
def test_validation_uses_batch_norm_in_inference_mode_and_leaves_it_unchanged(tmp_path, synthetic_root):
    """The original validated in training mode and so updated the moving averages with test tiles."""
    folder = make_model_folder(tmp_path / "m", **SMALL)
    options = TrainingOptions(datadir=synthetic_root / "240", train_on=("2016",), batchsize=4, temporal_samples=8,
                              validation_batches=2)
    trainer = Trainer(ModelFolder(folder), options)
    bn = trainer.state.model.head.bn
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 17).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 17).astype(np.float32))
    before = [np.array(v.numpy()) for v in (bn.moving_mean, bn.moving_variance)]
    dataset = validation_input(trainer.sections["2016"], options)
    totals = trainer.validate(dataset)
    for variable, value in zip((bn.moving_mean, bn.moving_variance), before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    # the totals equal the model in inference mode, batch by batch
    expected = np.zeros(3)
    for batch in dataset:
        logits = trainer.state.model(batch, training=False).numpy()
        labels = batch["labels"].numpy()
        valid = labels > 0
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        picked = np.take_along_axis(logp, np.maximum(labels - 1, 0)[..., None], -1)[..., 0]
        expected += [-picked[valid].sum(), valid.sum(), (logits.argmax(-1) == labels - 1)[valid].sum()]
    assert totals.count == expected[1] and totals.correct == expected[2] and expected[1] > 0
    assert totals.xe_sum == pytest.approx(expected[0], rel=1e-5)


@pytest.mark.slow
def test_training_recalibrates_batch_norm_before_validation_and_checkpoints(tmp_path, synthetic_root, capsys):
    folders = [make_model_folder(tmp_path / name, **SMALL) for name in ("plain", "recalibrated")]
    for folder, extra in zip(folders, ([], ["--bn_recalibration_batches", "2"]), strict=True):
        train.main(train_args(folder, synthetic_root, "-e", "1", "--seed", "3", "--summary_frequency", "2",
                              "--save_frequency", "100", *extra))
    out = capsys.readouterr().out
    assert "re-estimated with the current weights over 2 training batches per section, every date" in out
    plain, recalibrated = (read_checkpoint(folder / "model.ckpt-4") for folder in folders)
    for name in plain:  # the same training: only the batch norm statistics differ
        if "moving_" not in name:
            np.testing.assert_array_equal(plain[name], recalibrated[name], err_msg=name)
    assert np.abs(plain["class/bn/moving_mean"] - recalibrated["class/bn/moving_mean"]).max() > 1e-3
    # the checkpoint holds the statistics of its own weights
    options = TrainingOptions(datadir=synthetic_root / "240", train_on=("2016", "2017"), batchsize=4,
                              temporal_samples=8, limit_batches=2, bn_recalibration_batches=2)
    trainer = Trainer(ModelFolder(folders[1]), options)
    trainer.recalibrate_batch_norm()
    bn = trainer.state.model.head.bn
    np.testing.assert_allclose(bn.moving_mean.numpy(), recalibrated["class/bn/moving_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), recalibrated["class/bn/moving_variance"], rtol=1e-5)
    # and validation used them: its accuracy differs from the plain run's at the same weights
    last = [[r["oa"] for r in read_log(folder) if r["partition"] == "test"][-2:] for folder in folders]
    assert last[0] != last[1]


@pytest.mark.slow
def test_loss_decreases_on_a_tiny_dataset(tmp_path, synthetic_root, capsys):
    folder = make_model_folder(tmp_path / "m", **SMALL)
    train.main([str(folder), "--datadir", str(synthetic_root / "240"), "-t", "8", "-b", "4", "--limit_batches", "1",
                "-e", "40", "--summary_frequency", "10", "--save_frequency", "1000", "--validation_batches", "1",
                "--learning_rate", "0.01", "--epsilon", "1e-3"])
    assert "overridden for this run: --learning_rate (params.ini: 0.01), --epsilon (params.ini: 0.9)" in \
        capsys.readouterr().out
    rows = [r for r in read_log(folder) if r["partition"] == "train"]
    xe = [float(r["xe"]) for r in rows]
    oa = [float(r["oa"]) for r in rows]
    assert len(xe) == 4
    assert xe[-1] < 0.8 * xe[0] and oa[-1] > oa[0] + 0.1
    assert {float(r["learning_rate"]) for r in rows} == {0.01}


# ---------------------------------------------------------------------------------------------------- signals


@pytest.mark.slow
def test_sigterm_mid_run_leaves_a_loadable_checkpoint(tmp_path, synthetic_root):
    folder = make_model_folder(tmp_path / "m", **SMALL)
    argv = [sys.executable, str(REPO / "train.py"), *train_args(folder, synthetic_root, "-e", "1000",
                                                                "--save_frequency", "100000",
                                                                "--summary_frequency", "100000")]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=subprocess_env(), cwd=tmp_path)
    lines = []
    try:
        deadline = time.monotonic() + 120
        for line in process.stdout:  # the validation before the first step ends with the 2017 line
            lines.append(line)
            if line.startswith("  2017/test") or time.monotonic() > deadline:
                break
        time.sleep(3.0)  # some training steps
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    output = "".join(lines) + out
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM at step" in output
    prefix = ModelFolder(folder).checkpoint()
    step = int(prefix.rsplit("-", 1)[1])
    assert step > 0
    assert f"saved model.ckpt-{step}" in output
    state = TrainingState(build_model(SMALL))
    state.restore(prefix)
    assert (int(state.global_step.numpy()), int(state.samples_seen.numpy())) == (step, 4 * step)
    assert not [p for p in folder.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE]  # no partial files


# ---------------------------------------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_two_seeded_runs_give_identical_checkpoints(tmp_path, synthetic_root):
    folders = [make_model_folder(tmp_path / name, **SMALL) for name in ("a", "b")]
    processes = [subprocess.Popen([sys.executable, str(REPO / "train.py"),
                                   *train_args(folder, synthetic_root, "-e", "1", "--seed", "3")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env())
                 for folder in folders]
    outputs = [process.communicate(timeout=240)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert "seed 3: deterministic ops" in outputs[0]
    first, second = (read_checkpoint(folder / "model.ckpt-4") for folder in folders)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert [r["xe"] for r in read_log(folders[0])] == [r["xe"] for r in read_log(folders[1])]


@pytest.mark.slow
def test_a_resumed_seeded_run_equals_an_uninterrupted_one(tmp_path, synthetic_root):
    """Stopped after epoch 1 and resumed (the killed run had logged steps beyond its checkpoint), a seeded run
    gives the checkpoint of an uninterrupted run byte for byte, and its log has each step once."""
    common = ["--seed", "3", "--summary_frequency", "1", "--save_frequency", "100"]
    whole, resumed = (make_model_folder(tmp_path / name, **SMALL) for name in ("whole", "resumed"))
    for argv in (train_args(whole, synthetic_root, "-e", "2", *common),
                 train_args(resumed, synthetic_root, "-e", "1", *common)):
        done = subprocess.run([sys.executable, str(REPO / "train.py"), *argv], capture_output=True, text=True,
                              env=subprocess_env(), timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
    rows = (resumed / "training_log.csv").read_text().splitlines()
    redone = [row.replace(",4,16,", ",5,20,", 1) for row in rows[-2:]]  # rows of a step after the checkpoint
    (resumed / "training_log.csv").write_text("\n".join(rows + redone) + "\n")
    done = subprocess.run([sys.executable, str(REPO / "train.py"), *train_args(resumed, synthetic_root, "-e", "2",
                                                                                   *common)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    expected, actual = read_checkpoint(whole / "model.ckpt-8"), read_checkpoint(resumed / "model.ckpt-8")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert expected[name].tobytes() == actual[name].tobytes(), name
    logged = [(r["global_step"], r["section"], r["partition"]) for r in read_log(resumed)]
    assert logged == [(r["global_step"], r["section"], r["partition"]) for r in read_log(whole)]
    assert [r["xe"] for r in read_log(resumed)] == [r["xe"] for r in read_log(whole)]


# ---------------------------------------------------------------------------------------------------- bad input


def dataset_copy(root: Path, destination: Path) -> Path:
    """A dataset root sharing the data folders of ``root`` with its own metadata files."""
    data = [path for path in root.iterdir() if path.is_dir() and path.name.startswith("data")]
    shutil.copytree(root, destination, ignore=lambda folder, names: [path.name for path in data])
    for path in data:
        (destination / path.name).symlink_to(path)
    return destination


def test_bad_input_is_a_one_line_error(tmp_path, synthetic_root, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    root = synthetic_root / "240"
    folder = make_model_folder(tmp_path / "m", **SMALL)
    (tmp_path / "file").write_text("not a folder")
    cases = {
        "no params.ini": ([str(tmp_path), "--datadir", str(root)], f"{tmp_path}: no params.ini in the model folder"),
        "wrong datadir": ([str(folder), "--datadir", str(tmp_path / "nowhere")], "dataset root does not exist"),
        "missing section": (train_args(folder, synthetic_root, "--train_on", "2016", "2018"),
                            "dataset.ini: no section [2018] (sections: 2016, 2017)"),
        "validation section": (train_args(folder, synthetic_root, "--validate_on", "2019"), "no section [2019]"),
        "missing fold": (train_args(folder, synthetic_root, "-f", "12"), "train_fold12.tileids: no such file"),
        "batch size": (train_args(folder, synthetic_root, "-b", "0"), "--batchsize = 0 must be at least 1"),
        "validation batches": (train_args(folder, synthetic_root, "--validation_batches", "0"),
                               "--validation_batches = 0 must be positive or -1"),
        "temporal samples": (train_args(folder, synthetic_root, "-t", "99"), "temporal_samples = 99 must lie in"),
        "epsilon": (train_args(folder, synthetic_root, "--epsilon", "0"), "--epsilon: must be > 0, got 0.0"),
        "no TF_CONFIG": (train_args(folder, synthetic_root, "--strategy", "multiworker"), "TF_CONFIG is not set"),
        "devices": (train_args(folder, synthetic_root, "--devices", "CPU:0"), "--devices applies to --strategy "
                                                                              "mirrored only"),
        "negative seed": (train_args(folder, synthetic_root, "--seed", "-1"), "--seed = -1 must be in 0..4294967295"),
        "large seed": (train_args(folder, synthetic_root, "--seed", str(2**32)), f"--seed = {2**32} must be in 0.."),
        "model folder a file": (train_args(tmp_path / "file", synthetic_root), "file: not a model folder but a file"),
    }
    for name, (argv, message) in cases.items():
        status, err = run_cli(argv, capsys)
        assert status == 2, name
        assert len(err.strip().splitlines()) == 1 and message in err, (name, err)
        assert err.startswith(f"{Path(sys.argv[0]).name}: error: ")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    status, err = run_cli(train_args(folder, synthetic_root, "--strategy", "multiworker"), capsys)
    assert status == 2 and "$TF_CONFIG: not a cluster specification with a task type and index" in err


def test_an_empty_partition_is_a_one_line_error(tmp_path, synthetic_root, capsys):
    root = dataset_copy(synthetic_root / "240", tmp_path / "240")
    (root / "tileids" / "train_fold0.tileids").write_text("\n")
    (root / "tileids" / "test_fold1.tileids").write_text("99999999\n")
    folder = make_model_folder(tmp_path / "m", **SMALL)
    status, err = run_cli([str(folder), "--datadir", str(root)], capsys)
    assert status == 2 and err.strip().endswith("train_fold0.tileids: no tile ids")
    status, err = run_cli([str(folder), "--datadir", str(root), "-f", "1"], capsys)
    assert status == 2 and "test_fold1.tileids: none of its 1 tile ids has a file" in err


def test_a_second_training_of_a_folder_in_use_is_a_one_line_error(tmp_path, synthetic_root, capsys):
    folder = make_model_folder(tmp_path / "m", **SMALL)
    with ModelFolder(folder).lock():  # held as a running train.py holds it (here by this process)
        status, err = run_cli(train_args(folder, synthetic_root), capsys)
    assert status == 2 and err.strip().splitlines()[-1].endswith(
        f" error: {folder}: the model folder is in use by another training (process {os.getpid()}); wait for it to "
        "end or train into another folder")
    assert not list(folder.glob("model.ckpt-*"))


def test_a_checkpoint_of_another_network_is_a_one_line_error(tmp_path, synthetic_root, capsys):
    folder = make_model_folder(tmp_path / "m", **SMALL)
    other = TrainingState(build_model(ModelParams(convrnn_filters=16)))
    write_checkpoint(folder / "model.ckpt-7", other.tensors())
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-7"\n')
    status, err = run_cli(train_args(folder, synthetic_root), capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "model.ckpt-7: variable 'convrnn1/bidirectional_rnn/fw/conv_gru_cell/" in err
    assert "in the network of params.ini" in err


def test_a_class_count_that_differs_from_the_network_is_a_one_line_error(tmp_path, synthetic_root, capsys):
    folder = make_model_folder(tmp_path / "m", convrnn_filters=8, num_classes=12)
    status, err = run_cli(train_args(folder, synthetic_root), capsys)
    assert status == 2 and "classes.txt: 17 classes, but the network of params.ini has num_classes = 12" in err


