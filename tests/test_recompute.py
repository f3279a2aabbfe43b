"""Gradient checkpointing over time (``recompute``): the same logits and gradients, fewer per-step tensors kept."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from modelzoo.cells import ConvGRUCell, run_recurrence
from modelzoo.params import ModelParams
from modelzoo.seqencmodel import build_model, masked_xe_mean, per_frame
from tests.builders import SMALL, assert_close, make_batch, randomize

CONFIGS = {"gru": {}, "lstm-peephole": {"convcell": "lstm", "peephole": True, "pix10m": 12},
           "gru-plain-2layers-separate": {"convrnn_normalize": False, "convrnn_layers": 2, "separate_weights": True}}


def loss_and_gradients(model, batch):
    @tf.function
    def compute(batch):
        with tf.GradientTape() as tape:
            loss = masked_xe_mean(batch["labels"], model(batch, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    return compute(batch)


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGS))
def test_same_logits_and_gradients(config):
    params = ModelParams(**SMALL, **CONFIGS[config])
    plain, checkpointed = build_model(params), build_model(params, recompute=True)
    randomize(plain, seed=3)
    sources = plain.named_variables()
    for name, variable in checkpointed.named_variables().items():
        variable.assign(sources[name])
    batch = make_batch()
    np.testing.assert_array_equal(checkpointed(batch), plain(batch))
    loss, gradients = loss_and_gradients(plain, batch)
    loss_rc, gradients_rc = loss_and_gradients(checkpointed, batch)
    np.testing.assert_allclose(loss_rc, loss, rtol=1e-6)
    for actual, expected in zip(gradients_rc, gradients, strict=True):
        assert_close(actual, expected, rtol=1e-5)


def kept_per_step(recompute: bool) -> int:
    """How many tensors per loop step the forward pass keeps for the backward pass (while-loop accumulators)."""
    cell = ConvGRUCell(4, input_channels=3)
    frames = tf.random.normal((5, 2, 6, 6, 3), seed=0)

    @tf.function
    def gradient(frames):
        with tf.GradientTape() as tape:
            tape.watch(frames)
            inputs = frames if recompute else per_frame(cell.input_projection, frames)
            outputs, _, _ = run_recurrence(cell, inputs, tf.constant([5, 3]), recompute=recompute)
            loss = tf.reduce_sum(outputs ** 2)
        return tape.gradient(loss, [frames, *cell.trainable_variables])

    graph = gradient.get_concrete_function(frames).graph.as_graph_def()
    ops = collections.Counter(node.op for function in graph.library.function for node in function.node_def)
    return ops["TensorListPushBack"]


def test_the_loop_keeps_fewer_tensors():
    plain, checkpointed = kept_per_step(recompute=False), kept_per_step(recompute=True)
    # kept with recompute: the step's frame and state; the rest are scalars (step counter, flags, shapes).
    # Without: also the padded state, the conv sums, the norm statistics, the gates (23 in TF 2.21).
    assert checkpointed <= 7 and plain >= 3 * checkpointed


def test_recompute_is_a_runtime_option_kept_by_keras_saving_and_ignored_by_trace(tmp_path):
    params = ModelParams(**SMALL)
    model = build_model(params, recompute=True)
    assert all(layer.recompute for layer in model.rnn_layers)
    assert not any(layer.recompute for layer in build_model(params).rnn_layers)
    batch = make_batch()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.recompute and loaded.convrnn1.recompute
    np.testing.assert_array_equal(loaded(batch), model(batch))
    gates = model.trace(batch)  # inspection runs the plain step, which returns the gates
    forward_outputs = model.encode(batch)["outputs"][..., :SMALL["convrnn_filters"]]
    np.testing.assert_allclose(gates["fw"]["h"], forward_outputs, rtol=1e-6)
