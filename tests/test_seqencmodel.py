"""The network (modelzoo/seqencmodel.py) against the float64 numpy reference, its invariances, saving, the loss, the
optimiser and the command line that writes a model folder."""

import configparser
import dataclasses
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from modelzoo.params import ModelParams, read_params_ini
from modelzoo.seqencmodel import (
    SequentialEncoder,
    build_model,
    main,
    make_optimizer,
    masked_correct,
    masked_xe_mean,
    masked_xe_sum,
    per_pixel_xe,
    resize_legacy_bilinear,
)
from tests import reference
from tests.builders import SMALL, assert_close, make_batch, randomize
from utils.cli import UserError, run


@pytest.mark.parametrize(
    "cell,filters,expected", [("gru", 128, 534_178), ("gru", 256, 1_953_058), ("lstm", 128, 699_426),
                              ("lstm", 256, 2_578_466)]
)
def test_trainable_parameter_counts_equal_the_original(cell, filters, expected):
    model = build_model(ModelParams(convcell=cell, convrnn_filters=filters))
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == expected
    assert sum(int(np.prod(v.shape)) for v in model.named_variables().values() if v.trainable) == expected


CONFIGS = {
    "gru": {},
    "lstm": {"convcell": "lstm"},
    "lstm-peephole": {"convcell": "lstm", "peephole": True, "pix10m": 12},
    "gru-plain": {"convrnn_normalize": False, "cnn_activation": "relu"},
    "lstm-plain": {"convcell": "lstm", "convrnn_normalize": False},
    "gru-2layers": {"convrnn_layers": 2},
    "gru-separate": {"separate_weights": True},
    "gru-stacked-directions": {},
    "lstm-forward-only": {"convcell": "lstm", "bidirectional": False},
    "gru-compression-5x5": {"convrnn_compression_filters": 4, "convrnn_kernel": (5, 5), "classkernel": (1, 1)},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_network_equals_reference(name):
    params = ModelParams(**SMALL, **CONFIGS[name])
    model = build_model(params)
    for layer in model.rnn_layers:  # one loop over a batch of 2B (the GPU default) or two loops (the CPU default)
        layer.stack_directions = name.endswith("stacked-directions")
    weights = randomize(model, seed=len(name))
    batch = make_batch()
    assert_close(model(batch), reference.logits(batch, weights, params))
    x, lengths, outputs, finals, gates = reference.encoder(batch, weights, params)
    encoded = model.encode(batch)
    assert_close(encoded["x"], x)
    np.testing.assert_array_equal(encoded["sequence_lengths"], lengths)
    assert_close(encoded["outputs"], outputs)
    assert_close(encoded["final_states"], finals)
    traced = model.trace(batch, layer=params.convrnn_layers)
    assert set(traced) == set(gates[-1])
    for direction, values in gates[-1].items():
        for gate, value in values.items():
            assert_close(traced[direction][gate], value)
    # training mode: batch statistics in the batch norms (last, as it updates their moving averages)
    assert_close(model(batch, training=True), reference.logits(batch, weights, params, training=True))


def test_names_and_shapes_of_the_variables():
    def shapes(**options):
        model = build_model(ModelParams(convrnn_filters=8, **options))
        return {name: tuple(var.shape) for name, var in model.named_variables().items()}

    gru = shapes()
    assert gru["convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel"] == (3, 3, 23, 16)
    assert gru["convrnn1/bidirectional_rnn/fw/conv_gru_cell/candidate/LayerNorm/gamma"] == (8,)
    assert gru["class/conv2d/kernel"] == (3, 3, 16, 17)
    assert {n for n in gru if n.startswith("class/")} == {"class/conv2d/kernel", "class/bn/gamma", "class/bn/beta",
                                                          "class/bn/moving_mean", "class/bn/moving_variance"}
    assert not any("/bw/" in n for n in gru)
    separate = shapes(separate_weights=True, convrnn_layers=2, convcell="lstm")
    assert separate["convrnn2/bidirectional_rnn/bw/conv_lstm_cell/kernel"] == (3, 3, 16 + 8, 32)
    assert separate["convrnn1/bidirectional_rnn/bw/conv_lstm_cell/LayerNorm_4/beta"] == (8,)
    assert separate["class/conv2d/kernel"] == (3, 3, 32, 17)
    forward = shapes(bidirectional=False, convrnn_compression_filters=5)
    assert forward["convrnn1/rnn/conv_gru_cell/gates/kernel"] == (3, 3, 13, 16)
    assert forward["convrnn1/comp/conv3d/kernel"] == (1, 1, 1, 15, 5)
    assert forward["convrnn1/comp/bn/moving_variance"] == (5,)
    model = build_model(ModelParams(convrnn_filters=8))
    assert len(model.named_variables()) == len(model.variables)  # every variable has its TF1 name


def test_resize_is_legacy_bilinear_not_half_pixel():
    image = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 1, 2, 3, 4) ** 1.5
    resized = resize_legacy_bilinear(tf.constant(image), 4, 6).numpy()
    assert_close(resized, reference.resize_legacy_bilinear(image.astype(np.float64), 4, 6))
    # known values: output row 1 samples input row 0.5, output column 1 input column 0.5, the last ones clamp
    np.testing.assert_allclose(resized[0, 0, 1, 1], image[0, 0, :, :2].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(resized[0, 0, 3, 5], image[0, 0, 1, 2], rtol=1e-6)
    half_pixel = tf.image.resize(image[0], (4, 6), method="bilinear").numpy()
    assert np.abs(half_pixel - resized[0]).max() > 0.1


def test_padded_steps_do_not_matter_and_the_backward_pass_reads_the_valid_prefix_reversed():
    model = build_model(ModelParams(**SMALL, convcell="lstm", separate_weights=False))
    randomize(model, seed=3)
    batch = make_batch()
    garbage = {key: value.copy() for key, value in batch.items()}
    rng = np.random.default_rng(9)
    for key in ("x10", "x20", "x60", "year"):
        pad = np.broadcast_to((batch["doy"] == 0).reshape(3, 5, *([1] * (batch[key].ndim - 2))), batch[key].shape)
        garbage[key] = np.where(pad, rng.normal(size=batch[key].shape), batch[key]).astype(np.float32)
    np.testing.assert_array_equal(model(garbage), model(batch))
    # sample 1 (3 valid steps) reversed in time: its forward state is the backward state of the original
    reversed_batch = {key: value.copy() for key, value in batch.items()}
    for key in ("x10", "x20", "x60", "doy", "year"):
        reversed_batch[key][1, :3] = batch[key][1, :3][::-1]
    reversed_batch["doy"][1, :3] = np.maximum(reversed_batch["doy"][1, :3], 1e-3)
    original, flipped = model.encode(batch), model.encode(reversed_batch)
    filters = SMALL["convrnn_filters"]
    np.testing.assert_allclose(flipped["final_states"][1, ..., :filters], original["final_states"][1, ..., filters:],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(flipped["outputs"][1, :3, ..., filters:],
                               original["outputs"][1, :3, ..., :filters][::-1], rtol=1e-5, atol=1e-5)


def test_the_same_weights_run_on_24_and_48_px():
    params = ModelParams(**SMALL)
    model = build_model(params)
    weights = randomize(model, seed=5)
    for size in (24, 48):
        batch = make_batch(batch=2, steps=2, size=size, lengths=(2, 1))
        logits = model(batch)
        assert logits.shape == (2, size, size, 5)
        assert_close(logits, reference.logits(batch, weights, params))


def test_peephole_model_rejects_another_tile_size_and_bad_batches_are_rejected():
    model = build_model(ModelParams(**SMALL, convcell="lstm", peephole=True, pix10m=12))
    assert model(make_batch(size=12)).shape == (3, 12, 12, 5)
    with pytest.raises(UserError, match="peephole.*12 px"):
        model(make_batch(size=24))
    batch = make_batch()
    with pytest.raises(UserError, match="x20 has shape"):
        model({**batch, "x20": batch["x20"][..., :5]})
    with pytest.raises(UserError, match="no doy"):
        model({key: value for key, value in batch.items() if key != "doy"})
    with pytest.raises(UserError, match="layer 2 does not exist"):
        model.trace(batch, layer=2)


def test_all_padded_sample_gives_zero_states():
    model = build_model(ModelParams(**SMALL))
    encoded = model.encode(make_batch(lengths=(0, 0, 0)))
    np.testing.assert_array_equal(encoded["sequence_lengths"], [0, 0, 0])
    assert not np.any(encoded["final_states"]) and not np.any(encoded["outputs"])


def test_checkpoint_and_keras_format_round_trip(tmp_path):
    params = ModelParams(**SMALL, convcell="lstm", convrnn_layers=2)
    model = build_model(params)
    randomize(model, seed=7)
    batch = make_batch()
    expected = model(batch).numpy()
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    restored = build_model(params)
    status = tf.train.Checkpoint(model=restored).read(path)
    status.assert_consumed().assert_existing_objects_matched()
    np.testing.assert_array_equal(restored(batch), expected)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, SequentialEncoder) and loaded.params == params
    np.testing.assert_array_equal(loaded(batch), expected)


def test_recurrent_dropout_acts_in_training_only():
    params = ModelParams(**SMALL, recurrent_dropout_i=0.5)
    model, reference_model = build_model(params), build_model(dataclasses.replace(params, recurrent_dropout_i=1.0))
    sources = model.named_variables()
    for name, target in reference_model.named_variables().items():
        target.assign(sources[name])
    batch = make_batch()
    np.testing.assert_array_equal(model.encode(batch)["final_states"],
                                  reference_model.encode(batch)["final_states"])
    first, second = model.encode(batch, training=True), model.encode(batch, training=True)
    assert np.abs(first["final_states"] - second["final_states"]).max() > 1e-3
    deterministic = reference_model.encode(batch, training=True)["final_states"]
    np.testing.assert_array_equal(deterministic, reference_model.encode(batch, training=True)["final_states"])


def test_graph_compiled_gradient_step_reaches_every_trainable_variable():
    params = ModelParams(**SMALL, convcell="lstm", convrnn_compression_filters=3)
    model = build_model(params)
    optimizer = make_optimizer(params)
    batch = make_batch()

    @tf.function
    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = masked_xe_mean(batch["labels"], model(batch, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss, gradients

    before = [v.numpy() for v in model.trainable_variables]
    moving_mean = model.head.bn.moving_mean.numpy()
    loss, gradients = train_step(batch)
    assert np.isfinite(loss.numpy()) and loss.numpy() > 0
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in gradients)
    assert all(np.any(b != v.numpy()) for b, v in zip(before, model.trainable_variables, strict=True))
    assert np.any(model.head.bn.moving_mean.numpy() != moving_mean)  # batch norm statistics updated in training


def test_masked_loss_and_accuracy_equal_numpy():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
    labels = rng.integers(0, 6, (2, 4, 4)).astype(np.int32)
    labels[0, 0, 0], labels[0, 0, 1] = 0, 3
    logits[0, 0, 1] = [0, 0, 5, 0, 0]  # class index 3 → logit channel 2: correct
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels > 0
    expected = np.where(valid, -np.take_along_axis(log_softmax, np.maximum(labels - 1, 0)[..., None], -1)[..., 0], 0)
    np.testing.assert_allclose(per_pixel_xe(labels, logits), expected, rtol=1e-5, atol=1e-6)
    total, count = masked_xe_sum(labels, logits)
    np.testing.assert_allclose(total, expected.sum(), rtol=1e-5)
    assert count == valid.sum()
    np.testing.assert_allclose(masked_xe_mean(labels, logits), expected.sum() / valid.sum(), rtol=1e-5)
    correct, count = masked_correct(labels, logits)
    assert correct == ((logits.argmax(-1) == labels - 1) & valid).sum() and count == valid.sum()
    assert correct >= 1
    unknown = np.zeros_like(labels)
    assert masked_xe_mean(unknown, logits).numpy() == 0 and masked_correct(unknown, logits)[1].numpy() == 0
    assert masked_xe_sum(unknown, logits)[1].numpy() == 0


def test_adam_with_epsilon_0_9_takes_the_tf1_step():
    params = ModelParams(learning_rate=0.01, epsilon=0.9)
    optimizer = make_optimizer(params)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 0.9)
    theta = np.array([0.5, -1.0, 2.0])
    variable = keras.Variable(theta.astype(np.float32))
    m = v = np.zeros(3)
    for step, grad in enumerate([np.array([0.3, -2.0, 0.01]), np.array([0.1, 1.0, -0.5])], start=1):
        optimizer.apply_gradients([(tf.constant(grad, tf.float32), variable)])
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad ** 2
        lr_t = 0.01 * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
        theta = theta - lr_t * m / (np.sqrt(v) + 0.9)
        np.testing.assert_allclose(variable.numpy(), theta, rtol=1e-6)



@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_time_reversal_gradient_equals_autodiff_of_reverse_sequence(monkeypatch, cell):
    """The gather-based time reversal has a hand-written gradient: inside the model it must agree with
    TensorFlow's own gradient of tf.reverse_sequence."""
    import modelzoo.seqencmodel as seqencmodel

    params = ModelParams(**SMALL, convcell=cell)
    batch = make_batch()

    def gradients():
        model = build_model(params)
        randomize(model, seed=13)
        with tf.GradientTape() as tape:
            loss = masked_xe_mean(batch["labels"], model(batch, training=True))
        return tape.gradient(loss, model.trainable_variables)

    fast = gradients()
    used = []

    def reverse_sequence(x, lengths):
        used.append(x)
        return tf.reverse_sequence(x, lengths, seq_axis=0, batch_axis=1)

    monkeypatch.setattr(seqencmodel, "reverse_valid_steps", reverse_sequence)
    slow = gradients()
    assert used
    for actual, expected in zip(fast, slow, strict=True):
        assert_close(actual, expected, rtol=1e-4)


REPO = Path(__file__).resolve().parents[1]


def run_script(*args, cwd=REPO):
    return subprocess.run([sys.executable, "modelzoo/seqencmodel.py", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_readme_invocation_writes_params_ini_and_summary(tmp_path):
    folder = tmp_path / "missing" / "parents" / "convgru128"
    result = run_script("--modelfolder", str(folder), "--convrnn_filters", "128", "--convcell", "gru",
                        "--num_classes", "17", "--pix10m", "24")
    assert result.returncode == 0, result.stderr
    assert "534,178 trainable parameters" in result.stdout
    config = configparser.ConfigParser(interpolation=None)
    config.read(folder / "params.ini")
    flags = config["flags"]
    assert (flags["convrnn_filters"], flags["convcell"], flags["num_classes"], flags["pix10m"]) == ("128", "gru",
                                                                                                   "17", "24")
    assert (flags["epsilon"], flags["learning_rate"], flags["bidirectional"]) == ("0.9", "0.01", "True")
    assert flags["convrnn_kernel"] == "(3, 3)" and flags["separate_weights"] == "False"
    assert read_params_ini(folder / "params.ini") == ModelParams(modelfolder=str(folder), convrnn_filters=128)
    summary = (folder / "model.txt").read_text().splitlines()
    assert "trainable parameters: 534,178" in summary
    assert "non-trainable parameters: 34" in summary
    kernel = next(line for line in summary if line.startswith("convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/"
                                                              "kernel "))
    assert kernel.split()[1:] == ["3x3x143x256", "329,472"]
    assert any(line.startswith("class/bn/moving_variance ") and line.endswith("(not trainable)") for line in summary)
    assert sorted(p.name for p in folder.iterdir()) == ["model.txt", "params.ini"]


@pytest.mark.slow
def test_bad_flag_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = run_script("--modelfolder", str(tmp_path / "m"), "--convcell", "rnn")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "seqencmodel.py: error: --convcell: 'rnn' is not one of gru, lstm"
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv,message", [
    (["--convcell", "rnn"], "--convcell: 'rnn' is not one of gru, lstm"),
    (["--aggr_strat", "avg_output"], "--aggr_strat: 'avg_output' is not supported"),
    (["--convrnn_filters", "many"], "--convrnn_filters: expected an integer, got 'many'"),
    (["--convrnn_kernel", "(4,4)"], "--convrnn_kernel: (4, 4) must be two odd sizes"),
    (["--bidirectional", "maybe"], "--bidirectional: expected True or False, got 'maybe'"),
    (["--recurrent_dropout_i", "0"], "--recurrent_dropout_i: a keep probability must be in (0, 1]"),
    (["--cnn_activation", "elu"], "--cnn_activation: 'elu' is not one of relu, leaky_relu"),
    (["--epsilon", "inf"], "--epsilon: expected a finite number, got 'inf'"),
    (["--learning_rate", "-0.1"], "--learning_rate: must be > 0, got -0.1"),
    (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
    ([], "--modelfolder is required"),
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, argv, message):
    folder = ["--modelfolder", str(tmp_path / "m")] if argv else []
    with pytest.raises(SystemExit) as exit_info:
        run(main, folder + argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "m").exists()


def test_unwritable_model_folder_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        run(main, ["--modelfolder", str(blocker / "model")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{blocker / 'model'}: cannot write the model folder" in err
