"""Mixed precision on CPU: float16/bfloat16 convolutions, float32 norm statistics, state and logits; the logits stay
within a stated tolerance of float32 with the same weights; loss scaling for float16 training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from modelzoo.cells import ConvLSTMCell, LayerNorm, norm_weights, normalize_groups
from modelzoo.params import ModelParams
from modelzoo.seqencmodel import build_model, make_optimizer, masked_xe_mean
from tests.test_model import SMALL, make_batch, randomize
from utils.cli import UserError

# largest |logit − float32 logit| relative to the largest |float32 logit| (measured ≈ 1e-3 and ≈ 7e-3)
TOLERANCE = {"mixed_float16": 5e-3, "mixed_bfloat16": 3e-2}
CONFIGS = {"gru": {}, "lstm-peephole": {"convcell": "lstm", "peephole": True, "pix10m": 12},
           "lstm-plain-2layers": {"convcell": "lstm", "convrnn_normalize": False, "convrnn_layers": 2}}


def twin(params, policy, seed=0):
    """A float32 model with random weights and a model of the same weights under ``policy``."""
    reference = build_model(params)
    randomize(reference, seed)
    mixed = build_model(params, mixed_precision=policy)
    sources = reference.named_variables()
    for name, variable in mixed.named_variables().items():
        variable.assign(sources[name])
    return reference, mixed


@pytest.mark.parametrize("policy", list(TOLERANCE))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_logits_within_tolerance_of_float32(policy, config):
    params = ModelParams(**SMALL, **CONFIGS[config])
    reference, mixed = twin(params, policy, seed=len(config))
    batch = make_batch()
    expected = reference(batch).numpy()
    logits = mixed(batch)
    assert logits.dtype == tf.float32
    error = np.abs(logits.numpy() - expected).max() / np.abs(expected).max()
    assert 0 < error <= TOLERANCE[policy]  # > 0: the convolutions really ran in 16 bits
    encoded = mixed.encode(batch)
    assert encoded["final_states"].dtype == tf.float32 and encoded["outputs"].dtype == tf.float32
    scale = np.abs(reference.encode(batch)["final_states"].numpy()).max()
    assert np.abs(encoded["final_states"].numpy() - reference.encode(batch)["final_states"].numpy()).max() <= (
        TOLERANCE[policy] * scale)


def test_variables_state_and_norms_stay_float32():
    model = build_model(ModelParams(**SMALL, convcell="lstm", peephole=True, pix10m=12),
                        mixed_precision="mixed_float16")
    assert {v.dtype for v in model.variables} == {"float32"}
    cell = model.convrnn1.cell_fw
    assert (cell.compute_dtype, cell.state_dtype) == ("float16", "float32")
    assert {name: tensor.dtype for name, tensor in model.trace(make_batch(size=12))["fw"].items()} == dict.fromkeys(
        cell.gate_names, tf.float32)
    # a float16 input is normalised with float32 statistics: no overflow of the squares, unit variance
    x = tf.constant(np.random.default_rng(0).normal(0, 300, (2, 4, 4, 8)), tf.float16)
    normalised = normalize_groups(x, *norm_weights((LayerNorm(8),)))
    assert normalised.dtype == tf.float32
    np.testing.assert_allclose(np.var(normalised.numpy(), axis=(1, 2, 3)), 1, rtol=1e-3)
    # the cell alone: a step from float16 projections keeps its state float32
    alone = ConvLSTMCell(4, input_channels=5, dtype="mixed_bfloat16")
    projection = alone.input_projection(tf.ones((1, 6, 6, 5)))
    _, state, _ = alone.step(projection, alone.zero_state(1, 6, 6), alone.state_kernels())
    assert projection.dtype == tf.bfloat16 and {s.dtype for s in state} == {tf.float32}


@pytest.mark.parametrize("policy,optimizer", [("mixed_float16", "LossScaleOptimizer"), ("mixed_bfloat16", "Adam"),
                                              ("none", "Adam")])
def test_training_step_with_loss_scaling(policy, optimizer):
    params = ModelParams(**SMALL)
    model = build_model(params, mixed_precision=policy)
    opt = make_optimizer(params, mixed_precision=policy)
    assert type(opt).__name__ == optimizer
    opt.build(model.trainable_variables)
    batch = make_batch()

    @tf.function
    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = masked_xe_mean(batch["labels"], model(batch, training=True))
            scaled = opt.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        opt.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss, scaled, gradients

    before = [v.numpy() for v in model.trainable_variables]
    loss, scaled, gradients = train_step(batch)
    assert {g.dtype for g in gradients} == {tf.float32}
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    scale = 2.0 ** 15 if policy == "mixed_float16" else 1.0  # Keras' initial dynamic loss scale
    np.testing.assert_allclose(scaled.numpy(), loss.numpy() * scale, rtol=1e-6)
    assert all(np.any(b != v.numpy()) for b, v in zip(before, model.trainable_variables, strict=True))


def test_saved_model_keeps_its_policy_and_bad_policy_is_rejected(tmp_path):
    params = ModelParams(**SMALL)
    model = build_model(params, mixed_precision="mixed_bfloat16")
    batch = make_batch()
    expected = model(batch).numpy()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.dtype_policy.name == "mixed_bfloat16" and loaded.convrnn1.cell_fw.compute_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded(batch), expected)
    with pytest.raises(UserError, match="--mixed_precision: 'float16' is not one of none, mixed_float16"):
        build_model(params, mixed_precision="float16")
    with pytest.raises(UserError, match="--mixed_precision"):
        make_optimizer(params, mixed_precision="fp16")
