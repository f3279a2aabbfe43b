"""The recurrent cells against the float64 numpy reference written from docs/ORIGINAL.md (tests/reference.py)."""

import numpy as np
import pytest
import tensorflow as tf

from modelzoo.cells import (
    ConvGRUCell,
    ConvLSTMCell,
    LayerNorm,
    layer_norm_groups,
    reflect_conv,
    reflect_pad,
    run_recurrence,
)
from tests import reference
from tests.builders import assert_close

RTOL = 1e-5




def randomize(cell, seed):
    """Random values in every variable (gammas around 1), returned by TF1 name inside the cell scope."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, var in cell.tf1_variables().items():
        value = rng.normal(1.0 if name.endswith("gamma") else 0.0, 0.3, var.shape)
        var.assign(value.astype(np.float32))
        values[name] = value.astype(np.float32).astype(np.float64)
    return values


def test_reflect_pad_repeats_no_edge_and_conv_keeps_size():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    padded = reflect_pad(tf.constant(x), (3, 5)).numpy()
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (1, 1), (2, 2), (0, 0)), mode="reflect"))
    assert reflect_pad(tf.constant(x), (1, 1)).shape == x.shape
    kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 7)).astype(np.float32)
    out = reflect_conv(tf.constant(x), tf.constant(kernel)).numpy()
    assert out.shape == (2, 4, 5, 7)
    assert_close(out, reference.reflect_conv(x.astype(np.float64), kernel.astype(np.float64)))


def test_layer_norm_statistics_per_sample_over_hwc_and_grouped_equals_separate():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (3, 5, 6, 8)).astype(np.float32)
    norms = (LayerNorm(4), LayerNorm(4))
    for index, norm in enumerate(norms):
        norm.gamma.assign(rng.normal(1, 0.2, 4).astype(np.float32))
        norm.beta.assign(rng.normal(0, 0.2, 4).astype(np.float32))
        assert norm.gamma.shape == (4,) and norm.beta.shape == (4,)
        part = x[..., 4 * index:4 * index + 4]
        expected = reference.layer_norm(part.astype(np.float64), norm.gamma.numpy(), norm.beta.numpy())
        assert_close(norm(tf.constant(part)), expected)
    grouped = layer_norm_groups(tf.constant(x), norms).numpy()
    separate = np.concatenate([norm(tf.constant(x[..., 4 * k:4 * k + 4])).numpy() for k, norm in enumerate(norms)],
                              axis=-1)
    assert_close(grouped, separate)
    fresh = LayerNorm(8)(tf.constant(x)).numpy()  # gamma 1, beta 0: zero mean, unit variance per sample
    np.testing.assert_allclose(fresh.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(fresh.var(axis=(1, 2, 3)), 1, atol=1e-4)


def test_gru_variables_keep_the_original_layout_and_initialisation():
    cell = ConvGRUCell(8, (3, 3), input_channels=15)
    shapes = {name: tuple(var.shape) for name, var in cell.tf1_variables().items()}
    assert shapes == {"gates/kernel": (3, 3, 23, 16), "candidate/kernel": (3, 3, 23, 8),
                      **{f"{s}/{p}": (8,) for s in ("gates/LayerNorm", "gates/LayerNorm_1", "candidate/LayerNorm")
                         for p in ("beta", "gamma")}}
    limit = np.sqrt(6 / (9 * 23 + 9 * 16))  # Glorot uniform, fan = kh·kw·channels
    kernel = cell.gates_kernel.numpy()
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    assert np.all(cell.tf1_variables()["gates/LayerNorm/gamma"].numpy() == 1)
    plain = ConvGRUCell(8, (3, 3), input_channels=15, normalize=False)
    np.testing.assert_array_equal(plain.tf1_variables()["gates/bias"].numpy(), np.ones(16))
    np.testing.assert_array_equal(plain.tf1_variables()["candidate/bias"].numpy(), np.zeros(8))
    assert len(plain.trainable_variables) == 4


def test_lstm_variables_keep_the_original_layout_and_initialisation():
    cell = ConvLSTMCell(8, (3, 3), input_channels=15, peephole=True, peephole_size=(6, 6))
    shapes = {name: tuple(var.shape) for name, var in cell.tf1_variables().items()}
    expected = {"kernel": (3, 3, 23, 32), "W_ci": (6, 6, 8), "W_cf": (6, 6, 8), "W_co": (6, 6, 8)}
    expected.update({f"LayerNorm{s}/{p}": (8,) for s in ("", "_1", "_2", "_3", "_4") for p in ("beta", "gamma")})
    assert shapes == expected
    plain = ConvLSTMCell(8, (5, 5), input_channels=15, normalize=False)
    assert {n: tuple(v.shape) for n, v in plain.tf1_variables().items()} == {"kernel": (5, 5, 23, 32),
                                                                             "bias": (32,)}
    np.testing.assert_array_equal(plain.bias.numpy(), np.zeros(32))


CELLS = [
    ("gru", {}),
    ("gru", {"normalize": False}),
    ("lstm", {}),
    ("lstm", {"peephole": True}),
    ("lstm", {"normalize": False, "peephole": True}),
]


def make_cell(kind, options, channels=5, filters=4, size=6):
    if kind == "gru":
        return ConvGRUCell(filters, (3, 3), input_channels=channels, **options)
    return ConvLSTMCell(filters, (3, 3), input_channels=channels, peephole_size=(size, size), **options)


def reference_step(kind, options):
    if kind == "gru":
        return lambda x, state, w: reference.gru_step(x, state, w, options.get("normalize", True))
    return lambda x, state, w: reference.lstm_step(x, state, w, options.get("normalize", True),
                                                   options.get("peephole", False))


@pytest.mark.parametrize("kind,options", CELLS)
def test_step_equals_reference_and_returns_its_gates(kind, options):
    cell = make_cell(kind, options)
    weights = randomize(cell, seed=2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 6, 5)).astype(np.float32)
    state = tuple(rng.normal(size=(2, 6, 6, 4)).astype(np.float32) for _ in cell.state_names)
    projection, tf_state = cell.input_projection(tf.constant(x)), tuple(map(tf.constant, state))
    output, new_state, gates = cell.step(projection, tf_state, cell.state_kernels(), with_gates=True)
    ref_output, ref_state, ref_gates = reference_step(kind, options)(
        x.astype(np.float64), tuple(s.astype(np.float64) for s in state), weights)
    assert_close(output, ref_output)
    for actual, expected in zip(new_state, ref_state, strict=True):
        assert_close(actual, expected)
    assert set(gates) == set(cell.gate_names) == set(ref_gates)
    for name in cell.gate_names:
        assert_close(gates[name], ref_gates[name])
    assert cell.step(projection, tf_state, cell.state_kernels())[2] == {}
    # kernels=None: the first step from the zero state, without the recurrent convolutions
    zero = tuple(tf.zeros_like(s) for s in tf_state)
    first = cell.step(projection, zero, None)[1]
    for actual, expected in zip(first, cell.step(projection, zero, cell.state_kernels())[1], strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind,options", [CELLS[0], CELLS[3]])
def test_recurrence_has_dynamic_rnn_semantics(kind, options):
    """Padded steps output zeros and keep the state; the loop equals the reference over a padded batch."""
    cell = make_cell(kind, options)
    weights = randomize(cell, seed=4)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 5, 6, 6, 5)).astype(np.float32)  # (N, T, H, W, C)
    lengths = np.array([5, 2, 0], np.int32)
    projections = tf.transpose(tf.reshape(cell.input_projection(tf.reshape(x, (-1, 6, 6, 5))), (3, 5, 6, 6, -1)),
                               [1, 0, 2, 3, 4])
    outputs, state, gates = run_recurrence(cell, projections, tf.constant(lengths), with_gates=True)
    ref_out, ref_state, ref_gates = reference.dynamic_rnn(
        lambda xt, s: reference_step(kind, options)(xt, s, weights), x.astype(np.float64), lengths, 4,
        len(cell.state_names))
    assert_close(np.transpose(outputs, (1, 0, 2, 3, 4)), ref_out)
    for actual, expected in zip(state, ref_state, strict=True):
        assert_close(actual, expected)
    for name in cell.gate_names:
        assert_close(np.transpose(gates[name], (1, 0, 2, 3, 4)), ref_gates[name])
    out = outputs.numpy()
    assert np.all(out[2:, 1] == 0) and np.all(out[:, 2] == 0)  # padded steps output zeros
    assert all(np.all(s.numpy()[2] == 0) for s in state)  # length 0: the zero state
    # the final state of sample 1 is its state after step 1: run the first two steps only
    short, short_state, _ = run_recurrence(cell, projections[:2], tf.constant([2, 2, 2], np.int32))
    for full, cut in zip(state, short_state, strict=True):
        np.testing.assert_allclose(full.numpy()[1], cut.numpy()[1], rtol=1e-6, atol=1e-6)


def test_recurrence_state_masks_drop_only_the_named_component():
    cell = make_cell("lstm", {})
    randomize(cell, seed=6)
    projections = tf.random.normal((3, 2, 6, 6, 16), seed=1)
    lengths = tf.constant([3, 3])
    _, (c_ref, h_ref), _ = run_recurrence(cell, projections[:1], lengths)
    zeros = tf.zeros((3, 2, 6, 6, 4))
    (_, (c, h), _) = run_recurrence(cell, projections[:1], lengths, state_masks=zeros[:1])
    np.testing.assert_array_equal(h.numpy(), 0)  # h dropped completely, c (never dropped) unchanged
    np.testing.assert_allclose(c.numpy(), c_ref.numpy(), rtol=1e-6)
    assert np.abs(h_ref.numpy()).max() > 0

