"""Model folders of the original TF1 code (issue #7): checkpoints written here with ``tf.compat.v1`` in graph mode,
under the original's variable names, load through ``ModelFolder`` + ``TrainingState.restore`` and give the scores of
the float64 reference; Adam continues exactly as TF1 would; ``convert_tf1_model.py`` and the weight tools read them.
"""

import configparser
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import compare_graphs
import convert_tf1_model
import copy_network_weights
from modelzoo.params import ModelParams
from modelzoo.seqencmodel import SequentialEncoder, make_optimizer
from tests import reference
from tests.builders import TF1_FILTERS, TF1_STEPS, make_batch, original_params_ini, write_tf1_model
from utils.cli import UserError, run
from utils.modelfolder import ModelFolder, TrainingState, checkpoint_shapes, read_checkpoint, write_checkpoint

BN_EXTRAS = {"class/bn/class/bn/moving_mean/biased", "class/bn/class/bn/moving_mean/local_step"}








@pytest.fixture(scope="module")
def tf1_models(tmp_path_factory):
    """TF1 model folders for (cell, pix10m), with their gradients and 4th-step values; written once per module."""
    root = tmp_path_factory.mktemp("tf1")
    models = {}
    for index, (cell, pix10m) in enumerate([("gru", 24), ("lstm", 48), ("gru", 48), ("lstm", 24)]):
        folder = root / f"conv{cell}{TF1_FILTERS}_{pix10m}px"
        models[cell, pix10m] = (folder, *write_tf1_model(folder, cell, pix10m, seed=index))
    return models


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("cell,pix10m", [("gru", 24), ("lstm", 48), ("gru", 48), ("lstm", 24)])
def test_tf1_checkpoint_gives_the_reference_scores_and_the_tf1_adam_step(tf1_models, cell, pix10m):
    folder_path, gradients, tf1_after = tf1_models[cell, pix10m]
    folder = ModelFolder(folder_path)
    assert folder.params.convcell == cell and folder.params.pix10m == pix10m and not folder.params.separate_weights
    prefix = folder.checkpoint()  # the state file holds the absolute path of the writing machine
    assert prefix == str(folder_path / f"model.ckpt-{TF1_STEPS}")
    state = TrainingState(folder.build_model(), make_optimizer(folder.params))
    assert state.restore(prefix) == BN_EXTRAS
    assert (int(state.global_step.numpy()), int(state.samples_seen.numpy())) == (TF1_STEPS, 4 * TF1_STEPS)
    assert int(state.optimizer.iterations.numpy()) == TF1_STEPS

    weights = {name: value.astype(np.float64) for name, value in read_checkpoint(prefix).items()}
    batch = make_batch(batch=2, steps=4, size=pix10m, lengths=(4, 2), seed=pix10m)
    expected = softmax(reference.logits(batch, weights, folder.params))
    scores = tf.nn.softmax(state.model(batch)).numpy()
    assert scores.shape == (2, pix10m, pix10m, 17)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)

    named = state.model.named_variables()
    state.optimizer.apply_gradients([(tf.constant(gradients[name]), named[name]) for name in gradients])
    for name, value in tf1_after.items():
        np.testing.assert_allclose(named[name].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_convert_writes_a_clean_folder_and_reports_the_mapping(tf1_models, tmp_path, capsys):
    source = tf1_models["lstm", 48][0]
    prefix = convert_tf1_model.main([str(source), str(tmp_path / "converted"), "--keras"])
    out = capsys.readouterr().out.splitlines()
    kernel = "convrnn1/bidirectional_rnn/fw/conv_lstm_cell/kernel"
    assert f"mapped {kernel} [3, 3, 23, 32]: weight" in out
    assert f"mapped {kernel}/Adam_1 [3, 3, 23, 32]: Adam slot" in out
    assert "mapped class/bn/moving_variance [17]: batch-norm statistic" in out
    assert "mapped samples_seen []: counter" in out
    assert "unused class/bn/class/bn/moving_mean/local_step []: zero-debias accumulator of TF1 batch norm " \
           "(its debiased value is the moving mean)" in out
    mapped = {line.split()[1] for line in out if line.startswith("mapped ")}
    original = set(checkpoint_shapes(f"{source}/model.ckpt-{TF1_STEPS}"))
    assert mapped == original - BN_EXTRAS - {"beta1_power", "beta2_power"}
    assert out[-1].startswith(f"wrote {tmp_path / 'converted'}: model.ckpt-{TF1_STEPS} from ")

    converted = ModelFolder(tmp_path / "converted")
    assert prefix == str(converted.path / f"model.ckpt-{TF1_STEPS}") == converted.checkpoint()
    config = configparser.ConfigParser(interpolation=None)
    config.read(converted.path / "params.ini")
    assert set(config["flags"]) == {f.name for f in dataclasses.fields(ModelParams)}  # no absl flags
    assert converted.params == dataclasses.replace(ModelFolder(source).params, modelfolder=str(converted.path))
    assert set(checkpoint_shapes(prefix)) == original - BN_EXTRAS
    assert sorted(p.name for p in converted.path.iterdir()) == [
        "checkpoint", "model.ckpt-3.data-00000-of-00001", "model.ckpt-3.index", "model.keras", "model.txt",
        "params.ini"]
    batch = make_batch(batch=1, steps=3, size=48, lengths=(3,))
    original_state, converted_state = (TrainingState(ModelFolder(f).build_model()) for f in (source, converted.path))
    original_state.restore(f"{source}/model.ckpt-{TF1_STEPS}")
    converted_state.restore(prefix)
    expected = original_state.model(batch).numpy()
    np.testing.assert_array_equal(converted_state.model(batch), expected)
    loaded = keras.models.load_model(converted.path / "model.keras")
    assert isinstance(loaded, SequentialEncoder)
    np.testing.assert_array_equal(loaded(batch), expected)


def test_convert_without_optimizer(tf1_models, tmp_path, capsys):
    source = tf1_models["gru", 24][0]
    prefix = convert_tf1_model.main([str(source), str(tmp_path / "inference"), "--no-optimizer"])
    out = capsys.readouterr().out
    assert "unused beta1_power []: Adam state, left out with --no-optimizer" in out
    assert "unused class/conv2d/kernel/Adam [3, 3, 16, 17]: Adam state, left out with --no-optimizer" in out
    assert out.rstrip().endswith("without Adam state")
    names = set(checkpoint_shapes(prefix))
    assert not [n for n in names if n.endswith(("/Adam", "/Adam_1", "_power", "biased", "local_step"))]
    assert {"global_step", "samples_seen", "class/bn/moving_variance"} <= names
    again = convert_tf1_model.main([str(tmp_path / "inference"), str(tmp_path / "again")])  # a source without Adam
    assert capsys.readouterr().out.rstrip().endswith("with a fresh Adam state (the source has none)")
    values = read_checkpoint(again)
    assert not values["class/conv2d/kernel/Adam"].any() and values["beta1_power"] == np.float32(0.9)


def test_convert_errors(tf1_models, tmp_path, capsys):
    source = tf1_models["gru", 24][0]
    (tmp_path / "neither").mkdir()
    (tmp_path / "neither" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="neither: no params.ini in the model folder"):
        convert_tf1_model.main([str(tmp_path / "neither"), str(tmp_path / "out")])
    (tmp_path / "neither" / "params.ini").write_text(original_params_ini("gru", 24))
    with pytest.raises(UserError, match=r"neither: no checkpoint in the model folder \(run 'python init_graph.py"):
        convert_tf1_model.main([str(tmp_path / "neither"), str(tmp_path / "out")])

    values = read_checkpoint(f"{source}/model.ckpt-{TF1_STEPS}")
    gates = "convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel"
    broken = tmp_path / "renamed"
    broken.mkdir()
    (broken / "params.ini").write_text(original_params_ini("gru", 24))
    write_checkpoint(broken / "model.ckpt-3", {(f"{gates}_v2" if k == gates else k): v for k, v in values.items()})
    with pytest.raises(UserError, match=f"model.ckpt-3: checkpoint has no variable '{gates}' "
                                        r"\(1 of the network's variables missing\)"):
        convert_tf1_model.main([str(broken), str(tmp_path / "out")])
    (broken / "params.ini").write_text(original_params_ini("gru", 24, filters=6))
    write_checkpoint(broken / "model.ckpt-3", values)
    with pytest.raises(UserError, match=rf"variable '{gates}' has shape \[3, 3, 23, 16\] in the checkpoint but "
                                        r"\[3, 3, 21, 12\] in the network of params.ini"):
        convert_tf1_model.main([str(broken), str(tmp_path / "out")])
    (tmp_path / "exists").mkdir()
    with pytest.raises(UserError, match="exists: already exists"):
        convert_tf1_model.main([str(source), str(tmp_path / "exists")])
    assert not (tmp_path / "out").exists()

    with pytest.raises(SystemExit) as exit_info:
        run(convert_tf1_model.main, [str(tmp_path / "missing"), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing: model folder does not exist" in err and "Traceback" not in err


def test_weight_tools_read_tf1_folders(tf1_models, tmp_path, capsys):
    source = tf1_models["gru", 48][0]
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "params.ini").write_text(original_params_ini("gru", 48))
    prefix = copy_network_weights.main([str(source), str(ours)])
    out = capsys.readouterr().out
    assert f"{ours} has no checkpoint: starting from a fresh initialisation of its params.ini" in out
    assert "skip class/bn/class/bn/moving_mean/biased: not in the target" in out
    assert prefix == str(ours / f"model.ckpt-{TF1_STEPS}")
    tf1_values, copied = read_checkpoint(f"{source}/model.ckpt-{TF1_STEPS}"), read_checkpoint(prefix)
    assert copied["global_step"].dtype == np.int64 and copied["global_step"] == TF1_STEPS  # TF1 wrote int32
    for name, value in copied.items():
        if name not in ("global_step", "samples_seen"):
            np.testing.assert_array_equal(value, tf1_values[name], err_msg=name)
    lines = compare_graphs.main([str(source), str(ours)])
    assert "             [17] <-> x                 name: class/bn/class/bn/moving_mean/biased" in lines
    assert "   [3, 3, 23, 16] <-> [3, 3, 23, 16]    name: convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel" \
        in lines
    assert lines[-1] == (f"{len(tf1_values)} variables: {len(tf1_values) - 2} of equal name and shape, 0 of other "
                         "shapes, 2 only in the source, 0 only in the target")
