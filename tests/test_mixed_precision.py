"""Mixed precision on CPU: float16/bfloat16 convolutions, float32 norm statistics, state and logits; the logits stay
within a stated tolerance of float32 with the same weights; loss scaling for float16 training; the runtime options
``--mixed_precision`` and ``--recompute`` of train.py and ``--mixed_precision`` of evaluate.py."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import evaluate as evaluate_script
import train
from modelzoo.cells import ConvLSTMCell, LayerNorm, norm_weights, normalize_groups
from modelzoo.params import ModelParams
from modelzoo.seqencmodel import build_model, make_optimizer, masked_xe_mean
from tests.builders import SMALL, call, make_batch, make_model_folder, make_root, randomize
from utils.cli import UserError
from utils.dataset import read_tileids
from utils.modelfolder import ModelFolder, TrainingState, read_checkpoint
from utils.rasters import read_geotiff
from utils.training import Trainer, distributed_training_input
from utils.trainoptions import TrainingOptions

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


@pytest.mark.slow
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


@pytest.mark.slow
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


def scores_of(out: Path, tileid: int) -> np.ndarray:
    """The softmax scores (H, W, classes) that evaluate.py -c wrote for ``tileid``."""
    folders = sorted((out / "confidences").iterdir(), key=lambda folder: int(folder.name.split("_")[0]))
    return np.stack([read_geotiff(folder / f"{tileid}.tif")[0] for folder in folders], -1)


@pytest.mark.slow
def test_evaluate_with_mixed_float16_agrees_with_float32(synthetic_root, tmp_path):
    source = synthetic_root / "240"
    tileids = read_tileids(source, "eval")[:4]
    root = make_root(source, tmp_path / "240", tileids, [])
    modeldir = make_model_folder(tmp_path / "model", convrnn_filters=4)
    folder = ModelFolder(modeldir)
    model = folder.build_model()
    randomize(model, seed=2)  # larger weights than the initialisation: confident predictions
    TrainingState(model).save(folder)
    outputs = {policy: tmp_path / policy for policy in ("none", "mixed_float16")}
    for policy, out in outputs.items():
        call([modeldir, "--datadir", root, "--storedir", out, "-t", "-c", "--mixed_precision", policy])
        assert json.loads((out / "metrics.json").read_text())["run"]["mixed_precision"] == policy
    expected, mixed = outputs.values()
    for tileid in tileids:
        scores = scores_of(expected, tileid)
        np.testing.assert_allclose(scores_of(mixed, tileid), scores, rtol=0, atol=0.02)  # measured ≤ 0.014
        top2 = np.sort(scores, axis=-1)[..., -2:]
        clear = top2[..., 1] - top2[..., 0] > 0.05  # wider than twice the score error
        assert clear.mean() > 0.5
        prediction = {out: read_geotiff(out / "prediction" / f"{tileid}.tif")[0] for out in outputs.values()}
        np.testing.assert_array_equal(prediction[mixed][clear], prediction[expected][clear])
        loss = {out: read_geotiff(out / "loss" / f"{tileid}.tif")[0] for out in outputs.values()}
        np.testing.assert_allclose(loss[mixed], loss[expected], rtol=0, atol=0.1)  # measured ≤ 0.046
    with pytest.raises(UserError, match="argument --mixed_precision: invalid choice: 'float16'"):
        evaluate_script.build_parser().parse_args([str(modeldir), "--mixed_precision", "float16"])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A model folder (ConvGRU F=8) with a seeded initial checkpoint model.ckpt-0."""
    folder = ModelFolder(make_model_folder(tmp_path_factory.mktemp("template") / "m", convrnn_filters=8))
    folder.initial_state(seed=5).save(folder)
    return folder.path


def one_step(template: Path, datadir: Path, **runtime) -> tuple[dict[str, np.ndarray], str]:
    """The checkpoint tensors after one training step from ``template`` (seeded input: 4 tiles of 2016, 8 dates)
    with the ``runtime`` options, and the run's description."""
    options = TrainingOptions(datadir=datadir, batchsize=4, temporal_samples=8, **runtime)
    trainer = Trainer(ModelFolder(template), options)
    trainer.train_step(iter(distributed_training_input(trainer.strategy, trainer.sections["2016"], options, 0)))
    return trainer.state.tensors(), trainer.describe()


@pytest.fixture(scope="module")
def float32_step(template, synthetic_root) -> dict[str, np.ndarray]:
    return one_step(template, synthetic_root / "240")[0]


# bound on |weight or Adam slot − the float32 run's| after one step (recompute differs by float32 rounding only)
@pytest.mark.slow
@pytest.mark.parametrize(("runtime", "atol"), [({"mixed_precision": "mixed_float16"}, 2e-3),
                                               ({"recompute": True}, 1e-6)])
def test_train_options_keep_the_checkpoint_format_and_the_step(runtime, atol, template, float32_step, synthetic_root):
    tensors, description = one_step(template, synthetic_root / "240", **runtime)
    expected_line = (f"runtime options: --mixed_precision {runtime.get('mixed_precision', 'none')}, --recompute "
                     f"{runtime.get('recompute', False)}")
    assert expected_line in description.splitlines()
    assert tensors.keys() == float32_step.keys()
    start = read_checkpoint(template / "model.ckpt-0")
    moved = 0
    for name, expected in float32_step.items():
        assert tensors[name].dtype == expected.dtype, name
        np.testing.assert_allclose(tensors[name], expected, rtol=0, atol=atol, err_msg=name)
        moved += not np.array_equal(tensors[name], start[name])
    assert moved > len(start) // 2  # the step changed the weights and slots


def test_train_rejects_an_unknown_precision(synthetic_root, tmp_path):
    with pytest.raises(UserError, match="argument --mixed_precision: invalid choice: 'float16'"):
        train.build_parser().parse_args(["m", "--mixed_precision", "float16"])
    with pytest.raises(UserError, match="--mixed_precision 'fp16' is not one of none, mixed_float16, mixed_bfloat16"):
        TrainingOptions(datadir=synthetic_root / "240", mixed_precision="fp16")
