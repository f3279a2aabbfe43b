"""Batch-norm recalibration (utils/batchnorm.py): the moving averages become the mean of the batch moments."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.builders import make_model_folder
from utils import training
from utils.modelfolder import ModelFolder
from utils.training import Trainer
from utils.trainoptions import TrainingOptions


def spy_on_batch_norm_inputs(model) -> list[list[np.ndarray]]:
    """Record the input of every batch norm of ``model`` on each (eager) call: one list per layer."""
    recorded: list[list[np.ndarray]] = []
    for bn in model.batch_norms:
        inputs: list[np.ndarray] = []
        recorded.append(inputs)

        def call(x, *args, original=bn.call, inputs=inputs, **kwargs):
            inputs.append(np.asarray(x, np.float64))
            return original(x, *args, **kwargs)
        bn.call = call
    return recorded


@pytest.mark.slow
def test_batch_norm_recalibration_sets_the_mean_of_the_batch_moments(tmp_path, synthetic_root):
    """Precise BN: every batch norm (here a compression block's and the head's) gets the mean over the
    recalibration batches (full series of training tiles) of its input's per-batch mean and variance under the
    current weights."""
    folder = make_model_folder(tmp_path / "m", convrnn_filters=8, convrnn_compression_filters=6)
    options = TrainingOptions(datadir=synthetic_root / "240", train_on=("2016", "2017"), batchsize=4,
                              temporal_samples=8, bn_recalibration_batches=3)
    keras.utils.set_random_seed(0)  # weights whatever tests ran before (no --seed: op determinism stays off)
    trainer = Trainer(ModelFolder(folder), options)
    model = trainer.state.model
    assert len(model.batch_norms) == 2
    trainer.recalibrate_batch_norm()
    actual = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in model.batch_norms]

    recorded = spy_on_batch_norm_inputs(model)
    for index, name in enumerate(options.train_on):
        stream = iter(training.distributed_training_input(trainer.strategy, trainer.sections[name], options,
                                                          training.RECALIBRATION_SEED + index, full_series=True))
        for _ in range(3):
            model(next(stream), training=True)
    for inputs, (mean, variance) in zip(recorded, actual, strict=True):
        assert len(inputs) == 6
        axes = tuple(range(inputs[0].ndim - 1))
        np.testing.assert_allclose(mean, np.mean([x.mean(axes) for x in inputs], 0), rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(variance, np.mean([x.var(axes) for x in inputs], 0), rtol=1e-3, atol=1e-5)
        assert np.abs(mean).max() > 0.05 and np.abs(variance - 1).max() > 0.05  # not the initial zeros and ones
    assert recorded[0][0].shape[0] > options.temporal_samples  # time-major compression input: every date
