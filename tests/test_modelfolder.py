"""Model folders and checkpoints (utils/modelfolder.py): round trips, rotation, atomic writes, resolution, errors."""

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from modelzoo.params import ModelParams
from modelzoo.seqencmodel import SequentialEncoder, build_model, make_optimizer
from tests.builders import make_batch, make_model_folder, randomize
from utils import modelfolder
from utils.cli import UserError
from utils.modelfolder import (
    ModelFolder,
    TrainingState,
    checkpoint_shapes,
    export_keras,
    find_checkpoint,
    read_checkpoint,
    record_checkpoint,
    write_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(convrnn_filters=4, num_classes=5)


def make_folder(path: Path, **options) -> ModelFolder:
    return ModelFolder(make_model_folder(path, **SMALL, **options))


def adam_step(state: TrainingState, seed: int) -> None:
    """One optimizer step with random gradients."""
    rng = np.random.default_rng(seed)
    variables = state.model.trainable_variables
    gradients = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in variables]
    state.optimizer.apply_gradients(zip(gradients, variables, strict=True))


def trained_state(folder: ModelFolder, steps=2, seed=0) -> TrainingState:
    """A randomised network whose Adam optimizer took ``steps`` steps with random gradients; counters set."""
    state = TrainingState(folder.build_model(), make_optimizer(folder.params))
    randomize(state.model, seed)
    for step in range(steps):
        adam_step(state, seed + step)
    state.global_step.assign(steps)
    state.samples_seen.assign(5 * steps)
    return state


def test_round_trip_gives_identical_logits_and_identical_next_optimizer_step(tmp_path):
    folder = make_folder(tmp_path / "m", convcell="lstm")
    state = trained_state(folder, steps=3)
    prefix = state.save(folder)
    assert prefix == str(folder.path / "model.ckpt-3") and folder.checkpoint() == prefix
    names = checkpoint_shapes(prefix)
    assert {"global_step", "samples_seen", "beta1_power", "beta2_power", "class/conv2d/kernel/Adam",
            "class/conv2d/kernel/Adam_1", "convrnn1/bidirectional_rnn/fw/conv_lstm_cell/kernel/Adam"} <= set(names)
    assert "class/bn/moving_mean/Adam" not in names  # slots only for trainable variables, as in TF1
    values = read_checkpoint(prefix)
    np.testing.assert_allclose(values["beta1_power"], 0.9 ** 4, rtol=1e-6)  # TF1: beta^(t+1) after t steps
    np.testing.assert_allclose(values["beta2_power"], 0.999 ** 4, rtol=1e-6)

    restored = TrainingState(folder.build_model(), make_optimizer(folder.params))
    assert restored.restore(prefix) == set()
    batch = make_batch()
    np.testing.assert_array_equal(restored.model(batch), state.model(batch))
    assert int(restored.global_step.numpy()) == 3 and int(restored.samples_seen.numpy()) == 15
    assert int(restored.optimizer.iterations.numpy()) == 3
    adam_step(state, 99)
    adam_step(restored, 99)
    after, expected = restored.tensors(), state.tensors()
    assert after.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(after[name], expected[name], err_msg=name)


def test_restore_without_optimizer_and_checkpoint_without_slots(tmp_path):
    folder = make_folder(tmp_path / "m")
    state = trained_state(folder)
    prefix = state.save(folder)
    model_only = TrainingState(folder.build_model())
    unused = model_only.restore(prefix)
    assert "beta1_power" in unused and "class/conv2d/kernel/Adam" in unused and "global_step" not in unused
    np.testing.assert_array_equal(model_only.model(make_batch()), state.model(make_batch()))
    write_checkpoint(folder.path / "plain", {k: v for k, v in read_checkpoint(prefix).items()
                                             if not k.endswith(("/Adam", "/Adam_1", "_power"))})
    fresh = TrainingState(folder.build_model(), make_optimizer(folder.params))
    assert fresh.restore(folder.path / "plain") == set()
    assert int(fresh.optimizer.iterations.numpy()) == 0 and int(fresh.global_step.numpy()) == 2
    assert not np.any(fresh.tensors()["class/conv2d/kernel/Adam"])  # Adam starts afresh


def test_adam_step_count_comes_from_beta2_power(tmp_path):
    folder = make_folder(tmp_path / "m")
    state = trained_state(folder, steps=4)
    state.global_step.assign(0)  # e.g. copy_network_weights.py --reset: counters 0, Adam state kept
    prefix = state.save(folder)
    restored = TrainingState(folder.build_model(), make_optimizer(folder.params))
    restored.restore(prefix)
    assert int(restored.optimizer.iterations.numpy()) == 4 and int(restored.global_step.numpy()) == 0
    values = read_checkpoint(prefix)
    values["beta2_power"] = np.float32(0.0)  # underflowed (very long training): global_step decides
    values["global_step"] = np.int64(123456)
    write_checkpoint(folder.path / "long", values)
    restored.restore(folder.path / "long")
    assert int(restored.optimizer.iterations.numpy()) == 123456


def test_rotation_keeps_max_to_keep_and_one_per_interval(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "m")
    state = TrainingState(folder.build_model(), make_optimizer(folder.params))
    start = 1.7e9
    clock = iter(start + 3600.0 * np.array([0.0, 0.6, 1.2, 1.8, 2.4]))
    monkeypatch.setattr(modelfolder.time, "time", lambda: float(next(clock)))
    for step in range(5):
        state.global_step.assign(step)
        state.save(folder, max_to_keep=2, keep_every_n_hours=1.0)
    on_disk = sorted(p.name for p in folder.path.glob("model.ckpt-*.index"))
    assert on_disk == ["model.ckpt-2.index", "model.ckpt-3.index", "model.ckpt-4.index"]  # 2 preserved (1.2 h)
    assert not list(folder.path.glob("model.ckpt-[01].*"))
    lines = (folder.path / "checkpoint").read_text().splitlines()
    assert lines[:3] == ['model_checkpoint_path: "model.ckpt-4"', 'all_model_checkpoint_paths: "model.ckpt-3"',
                         'all_model_checkpoint_paths: "model.ckpt-4"']
    state_proto = tf.train.get_checkpoint_state(str(folder.path))
    assert [Path(p).name for p in state_proto.all_model_checkpoint_paths] == ["model.ckpt-3", "model.ckpt-4"]
    np.testing.assert_allclose(state_proto.all_model_checkpoint_timestamps, start + np.array([1.8, 2.4]) * 3600)
    assert state_proto.last_preserved_timestamp == pytest.approx(start + 1.2 * 3600)
    assert tf.train.latest_checkpoint(str(folder.path)) == str(folder.path / "model.ckpt-4")


def test_files_appear_atomically_and_the_state_file_last(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "m")
    state = TrainingState(folder.build_model(), make_optimizer(folder.params))
    state.save(folder)
    before = sorted(p.name for p in folder.path.iterdir())
    state_file = (folder.path / "checkpoint").read_text()

    def failing_save(**kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "disk full")

    state.global_step.assign(7)
    with monkeypatch.context() as patch:
        patch.setattr(tf.raw_ops, "SaveV2", failing_save)
        with pytest.raises(UserError, match=r"model.ckpt-7: cannot write the checkpoint \(disk full\)$"):
            state.save(folder)
    assert sorted(p.name for p in folder.path.iterdir()) == before  # no partial files, no leftovers
    assert (folder.path / "checkpoint").read_text() == state_file

    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(Path(dst).name), real_replace(src, dst)))
    state.save(folder)
    assert renamed == ["model.ckpt-7.data-00000-of-00001", "model.ckpt-7.index", "checkpoint"]
    assert not [p for p in folder.path.iterdir() if p.name.startswith(".")]


def test_restoring_another_network_names_the_variable_and_both_shapes(tmp_path):
    folder = make_folder(tmp_path / "gru")
    prefix = trained_state(folder).save(folder)
    wider = build_model(ModelParams(convrnn_filters=6, num_classes=5))
    target = TrainingState(wider, make_optimizer(wider.params))
    before = [v.numpy() for v in wider.variables]
    with pytest.raises(UserError, match=r"variable 'convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel' has "
                                        r"shape \[3, 3, 19, 8\] in the checkpoint but \[3, 3, 21, 12\] in the "
                                        "network of params.ini") as error:
        target.restore(prefix)
    assert "\n" not in str(error.value) and str(prefix) in str(error.value)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, wider.variables, strict=True))  # untouched

    lstm = build_model(ModelParams(convcell="lstm", **SMALL))
    with pytest.raises(UserError, match="checkpoint has no variable 'convrnn1/bidirectional_rnn/fw/conv_lstm_cell/"
                                        "kernel'"):
        TrainingState(lstm).restore(prefix)
    two_layers = build_model(ModelParams(convrnn_layers=2, **SMALL))
    values = read_checkpoint(prefix)
    write_checkpoint(tmp_path / "partial", {k: v for k, v in values.items() if k != "class/bn/gamma"})
    with pytest.raises(UserError, match="no variable 'class/bn/gamma' \\(1 of the network's variables missing\\)"):
        TrainingState(build_model(ModelParams(**SMALL))).restore(tmp_path / "partial")
    with pytest.raises(UserError, match="no variable 'convrnn2/"):
        TrainingState(two_layers).restore(prefix)
    separate = build_model(ModelParams(separate_weights=True, **SMALL))
    TrainingState(separate).save(make_folder(tmp_path / "separate", separate_weights=True))
    with pytest.raises(UserError, match="checkpoint variable 'convrnn1/bidirectional_rnn/bw/conv_gru_cell/"
                                        "candidate/LayerNorm/beta' is not in the network of params.ini"):
        TrainingState(build_model(ModelParams(**SMALL))).restore(find_checkpoint(tmp_path / "separate"))
    write_checkpoint(tmp_path / "slots", {k: v for k, v in values.items() if k != "class/bn/beta/Adam_1"})
    with pytest.raises(UserError, match="checkpoint has Adam slots but not 'class/bn/beta/Adam_1'"):
        TrainingState(build_model(ModelParams(**SMALL)), make_optimizer(ModelParams())).restore(tmp_path / "slots")


def test_object_based_and_unreadable_checkpoints_are_rejected(tmp_path):
    model = build_model(ModelParams(**SMALL))
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "tf2"))
    with pytest.raises(UserError, match="object-based TF2 checkpoint"):
        TrainingState(model).restore(path)
    (tmp_path / "junk.index").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"junk: unreadable checkpoint"):
        read_checkpoint(tmp_path / "junk")


def test_a_checkpoint_that_cannot_be_written_is_a_one_line_error(tmp_path):
    (tmp_path / "folder").write_text("a file where the model folder should be")
    with pytest.raises(UserError, match=r"folder/model.ckpt-5: cannot write the checkpoint \(.+\)$"):
        write_checkpoint(tmp_path / "folder" / "model.ckpt-5", {"global_step": np.int64(5)})
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_model_folder_errors_and_graph_meta_path(tmp_path):
    with pytest.raises(UserError, match="missing: model folder does not exist"):
        ModelFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: no params.ini in the model folder"):
        ModelFolder(tmp_path / "empty")
    folder = make_folder(tmp_path / "m", convcell="lstm")
    assert ModelFolder(folder.path / "graph.meta").path == folder.path  # the original README's argument
    assert ModelFolder(folder.path / "params.ini").params.convcell == "lstm"
    assert folder.checkpoint(required=False) is None
    with pytest.raises(UserError, match=r"no checkpoint in the model folder \(run 'python init_graph.py"):
        folder.checkpoint()
    with pytest.raises(UserError, match=r"model.ckpt-5: no such checkpoint \(no model.ckpt-5.index\)"):
        folder.checkpoint("model.ckpt-5")


def test_checkpoint_resolution(tmp_path):
    folder = make_folder(tmp_path / "m")
    values = TrainingState(folder.build_model()).tensors()
    for step in (3, 12, 7):
        write_checkpoint(folder.checkpoint_prefix(step), values)
    assert folder.checkpoint() == str(folder.path / "model.ckpt-12")  # no state file: the highest step
    assert folder.checkpoint("model.ckpt-3.index") == str(folder.path / "model.ckpt-3")
    assert folder.checkpoint(str(folder.path / "model.ckpt-7")) == str(folder.path / "model.ckpt-7")
    # a TF1 state file with absolute paths of the authors' machine
    (folder.path / "checkpoint").write_text('model_checkpoint_path: "/home/marc/models/m/model.ckpt-7"\n'
                                            'all_model_checkpoint_paths: "/home/marc/models/m/model.ckpt-3"\n'
                                            'all_model_checkpoint_paths: "/home/marc/models/m/model.ckpt-7"\n')
    assert folder.checkpoint() == str(folder.path / "model.ckpt-7")
    record_checkpoint(folder.path, "model.ckpt-12")
    assert (folder.path / "checkpoint").read_text().splitlines()[:4] == [
        'model_checkpoint_path: "model.ckpt-12"', 'all_model_checkpoint_paths: "model.ckpt-3"',
        'all_model_checkpoint_paths: "model.ckpt-7"', 'all_model_checkpoint_paths: "model.ckpt-12"']


@pytest.mark.parametrize("content", [b'model_checkpoint_path: "model.ckpt-2"\n', b"", b"\xff\xfe\x00\x89PNG",
                                     b"this is { not a state file\n"],
                         ids=["stale", "empty", "binary", "not-a-state"])
def test_a_stale_or_unreadable_state_file_falls_back_to_the_newest_checkpoint_on_disk(tmp_path, capsys, content):
    """A kill during rotation (as before: the old checkpoint deleted, the state not yet rewritten) or a damaged state
    file: the newest complete checkpoint on disk is used with a one-line warning, and the next save repairs it."""
    folder = make_folder(tmp_path / "m")
    values = TrainingState(folder.build_model()).tensors()
    for step in (3, 4):
        write_checkpoint(folder.checkpoint_prefix(step), values)
    (folder.path / "checkpoint").write_bytes(content)
    assert folder.checkpoint() == str(folder.path / "model.ckpt-4")
    warning = capsys.readouterr().err.strip()
    assert warning.startswith(f"warning: {folder.path / 'checkpoint'}: ") and warning.count("\n") == 0
    assert warning.endswith("using the newest complete checkpoint on disk, model.ckpt-4")
    write_checkpoint(folder.checkpoint_prefix(5), values)
    record_checkpoint(folder.path, "model.ckpt-5", max_to_keep=2)
    assert sorted(p.name for p in folder.path.glob("*.index")) == ["model.ckpt-4.index", "model.ckpt-5.index"]
    assert (folder.path / "checkpoint").read_text().splitlines()[:3] == [
        'model_checkpoint_path: "model.ckpt-5"', 'all_model_checkpoint_paths: "model.ckpt-4"',
        'all_model_checkpoint_paths: "model.ckpt-5"']
    capsys.readouterr()
    assert folder.checkpoint() == str(folder.path / "model.ckpt-5") and capsys.readouterr().err == ""


def test_a_kill_during_rotation_leaves_a_usable_folder(tmp_path, monkeypatch):
    """The state file is rewritten before the oldest checkpoint is deleted: killed in between (here: the deletion
    is interrupted), the state names only complete checkpoints; the old one stays on disk outside the rotation, as
    the checkpoints kept every n hours do."""
    folder = make_folder(tmp_path / "m")
    state = TrainingState(folder.build_model(), make_optimizer(folder.params))
    for step in (2, 4):
        state.global_step.assign(step)
        with monkeypatch.context() as patch:
            if step == 4:
                patch.setattr(modelfolder, "delete_checkpoint", lambda prefix: (_ for _ in ()).throw(KeyboardInterrupt))
            with contextlib.suppress(KeyboardInterrupt):
                state.save(folder, max_to_keep=1)
    assert (folder.path / "checkpoint").read_text().splitlines()[:2] == [
        'model_checkpoint_path: "model.ckpt-4"', 'all_model_checkpoint_paths: "model.ckpt-4"']
    assert folder.checkpoint() == str(folder.path / "model.ckpt-4")
    state.global_step.assign(6)
    state.save(folder, max_to_keep=1)
    assert sorted(p.name for p in folder.path.glob("*.index")) == ["model.ckpt-2.index", "model.ckpt-6.index"]


@pytest.mark.slow
def test_a_model_folder_is_held_by_one_training_until_its_process_ends(tmp_path):
    folder = make_folder(tmp_path / "m")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from utils.modelfolder import ModelFolder
        with ModelFolder({str(folder.path)!r}).lock():
            print("locked", flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        expected = (rf"m: the model folder is in use by another training \(process {holder.pid}\); wait for it to end "
                    "or train into another folder$")
        with pytest.raises(UserError, match=expected), folder.lock():
            pass
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the kernel releases the lock
        holder.wait()
    with folder.lock():
        assert (folder.path / ".lock").read_text() == f"{os.getpid()}\n"


def test_a_damaged_data_file_is_a_one_line_error_and_assigns_nothing(tmp_path):
    folder = make_folder(tmp_path / "m")
    state = TrainingState(folder.build_model(), make_optimizer(folder.params))
    prefix = Path(state.save(folder))
    data = next(prefix.parent.glob(f"{prefix.name}.data-*"))
    fresh = TrainingState(folder.build_model(), make_optimizer(folder.params))
    fresh_values = {name: value.numpy().copy() for name, value in fresh.variables().items()}
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(UserError, match=r"model.ckpt-0: unreadable checkpoint \(.+\)$"):
        fresh.restore(prefix)
    assert all(np.array_equal(fresh_values[name], value.numpy()) for name, value in fresh.variables().items())
    data.unlink()
    with pytest.raises(UserError, match=r"model.ckpt-0: unreadable checkpoint"):
        fresh.restore(prefix)


def test_keras_export_round_trips(tmp_path):
    model = build_model(ModelParams(**SMALL, convcell="lstm"))
    randomize(model, seed=3)
    export_keras(model, tmp_path / "out" / "model.keras")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.keras"]
    loaded = keras.models.load_model(tmp_path / "out" / "model.keras")
    assert isinstance(loaded, SequentialEncoder)
    np.testing.assert_array_equal(loaded(make_batch()), model(make_batch()))
    with pytest.raises(UserError, match="must end in .keras"):
        export_keras(model, tmp_path / "model.h5")


MIRRORED = textwrap.dedent("""
    import modelzoo
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import sys
    import keras
    import numpy as np
    from modelzoo.params import ModelParams, write_params_ini
    from modelzoo.seqencmodel import make_optimizer
    from tests.builders import make_batch
    from utils.modelfolder import ModelFolder, TrainingState

    path = sys.argv[1]
    write_params_ini(path + "/params.ini", ModelParams(convrnn_filters=4, num_classes=5))
    folder = ModelFolder(path)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        state = TrainingState(folder.build_model(), make_optimizer(folder.params))
    variables = state.model.trainable_variables
    rng = np.random.default_rng(0)
    gradients = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in variables]

    @tf.function
    def train_step():
        def step():
            state.optimizer.apply_gradients(zip(gradients, variables))
            state.global_step.assign_add(1)
            state.samples_seen.assign_add(4)
        strategy.run(step)

    train_step()
    train_step()
    prefix = state.save(folder)
    with strategy.scope():
        restored = TrainingState(folder.build_model(), make_optimizer(folder.params))
    restored.restore(prefix)
    saved, again = state.tensors(), restored.tensors()
    assert saved.keys() == again.keys()
    for name, variable in restored.variables().items():
        if isinstance(variable, keras.Variable):  # the tf.distribute variable inside
            variable = variable.value
        replicas = [np.asarray(v) for v in strategy.experimental_local_results(variable)]
        assert len(replicas) == 2 and all(np.array_equal(r, saved[name]) for r in replicas), name
    batch = make_batch()
    assert np.array_equal(restored.model(batch).numpy(), state.model(batch).numpy())
    print("ok", prefix.rsplit("/", 1)[1], int(again["global_step"]), int(again["samples_seen"]),
          int(restored.optimizer.iterations.numpy()), len(again))
""")


@pytest.mark.slow
def test_save_and_restore_under_mirrored_strategy(tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ok", "model.ckpt-2", "2", "8", "2", "39"]
