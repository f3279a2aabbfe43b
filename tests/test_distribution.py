"""tf.distribute: two replicas (two logical CPUs, or two worker processes on loopback) give the same weights after
N steps as one device with the same global batch: the loss is the mean over the valid pixels of the global batch,
gradients are summed over the replicas and batch norm uses the statistics of the global batch, in training and in
the recalibration of its population statistics before the final checkpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelzoo.params import ModelParams
from modelzoo.seqencmodel import build_model
from tests.builders import make_model_folder
from utils.modelfolder import ModelFolder, TrainingState, read_checkpoint

pytestmark = pytest.mark.slow  # every test starts training processes
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
# 2 batches of 4 tiles per section and 2 sections: one epoch = 4 steps
COMMON = ["-b", "4", "--train_on", "2016", "2017", "--limit_batches", "2", "-e", "1", "--seed", "5",
          "--validation_batches", "1", "--summary_frequency", "100", "--bn_recalibration_batches", "1"]


def start(folder: Path, root: Path, *extra: str, tf_config: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), str(folder), "--datadir", str(root / "240"),
                             *COMMON, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(processes: list[subprocess.Popen], status: int = 0) -> list[str]:
    """Wait for all processes and check their exit status; on a timeout kill them all and fail."""
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        pytest.fail(f"training processes did not finish within {TIMEOUT_S} s")
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == status, output
    return outputs


def assert_same_checkpoints(reference: Path, other: Path) -> None:
    expected, actual = read_checkpoint(reference), read_checkpoint(other)
    assert expected.keys() == actual.keys()
    assert (actual["global_step"], actual["samples_seen"]) == (4, 16)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=2e-4, atol=2e-6, err_msg=name)
    # the steps moved the weights well beyond that tolerance
    start = "class/conv2d/kernel"
    assert np.abs(expected[f"{start}/Adam"]).max() > 1e-4


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_mirrored_on_two_cpu_devices_equals_one_device(tmp_path, synthetic_root):
    """Shuffled files and temporal samples: replica k gets its half of the same global batch."""
    reference, mirrored = (make_model_folder(tmp_path / name, convrnn_filters=8) for name in ("one", "two"))
    outputs = finish([start(reference, synthetic_root, "-t", "8"),
                      start(mirrored, synthetic_root, "-t", "8", "--strategy", "mirrored", "--devices", "CPU:0,CPU:1")])
    assert "strategy MirroredStrategy: 2 replica(s) in sync, here on CPU:0, CPU:1" in outputs[1]
    assert_same_checkpoints(reference / "model.ckpt-4", mirrored / "model.ckpt-4")


def cluster_config(count: int) -> list[dict]:
    """``TF_CONFIG`` of each of ``count`` workers on loopback."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(count)]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}} for index in range(count)]


def test_multiworker_with_two_processes_equals_one_device(tmp_path, synthetic_root):
    """Each worker reads every second file: with unshuffled full series the global batches equal one device's."""
    reference, cluster = (make_model_folder(tmp_path / name, convrnn_filters=8) for name in ("one", "cluster"))
    processes = [start(cluster, synthetic_root, "--shuffle", "False", "--strategy", "multiworker", tf_config=config)
                 for config in cluster_config(2)]
    processes.append(start(reference, synthetic_root, "--shuffle", "False"))
    outputs = finish(processes)
    assert "2 replica(s) in sync" in outputs[0] and "not the chief" in outputs[1]
    assert "saved model.ckpt-4" in outputs[0] and "saved" not in outputs[1]
    assert_same_checkpoints(reference / "model.ckpt-4", cluster / "model.ckpt-4")


def test_a_global_batch_that_does_not_split_is_a_one_line_error(tmp_path, synthetic_root):
    folder = make_model_folder(tmp_path / "m", convrnn_filters=8)
    [output] = finish([start(folder, synthetic_root, "-b", "3", "--strategy", "mirrored", "--devices",
                             "CPU:0,CPU:1")], status=2)
    assert output.strip().splitlines()[-1] == "train.py: error: --batchsize 3 is not divisible by the 2 replicas"


def test_workers_that_restore_different_checkpoints_stop_with_a_one_line_error(tmp_path, synthetic_root):
    """A model folder that is not shared: one worker resumes at step 8, the other starts afresh."""
    folders = [make_model_folder(tmp_path / name, convrnn_filters=8) for name in ("a", "b")]
    state = TrainingState(build_model(ModelParams(convrnn_filters=8)))
    state.global_step.assign(8)
    state.save(ModelFolder(folders[0]))
    processes = [start(folder, synthetic_root, "--strategy", "multiworker", tf_config=config)
                 for folder, config in zip(folders, cluster_config(2), strict=True)]
    for output in finish(processes, status=2):
        assert "the workers restored different checkpoints" in output.strip().splitlines()[-1]
