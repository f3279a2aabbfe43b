"""Batch-norm recalibration ("precise BN"): every batch norm's population statistics re-estimated with the current
weights, as the mean of its per-batch moments over a fixed set of batches.

With small batches and moving weights the moving averages (momentum 0.9) lag behind the network; and when training
samples fewer dates than a tile has, the statistics of the final states differ between training and evaluation.
Both can put the inference-mode accuracy of a checkpoint far below its training accuracy.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from modelzoo.seqencmodel import SequentialEncoder

_MOMENT_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # the compiled step of each network


def _statistics(model: SequentialEncoder) -> list[tuple[keras.Variable, float]]:
    """(moving mean or variance, its batch norm's momentum) of every batch norm, input to output."""
    return [(variable, bn.momentum) for bn in model.batch_norms for variable in (bn.moving_mean, bn.moving_variance)]


def _batch_moments(model: SequentialEncoder, strategy: tf.distribute.Strategy, iterator) -> list[tf.Tensor]:
    """Mean and variance of every batch norm's input over the next global batch (in the order of
    :func:`_statistics`): the moving averages are zeroed, one forward pass in training mode updates them to
    (1 - momentum) × the batch moments."""
    statistics = _statistics(model)
    for variable, _ in statistics:
        variable.assign(tf.zeros_like(variable))
    strategy.run(lambda batch: model(batch, training=True), args=(next(iterator),))
    return [variable / (1.0 - momentum) for variable, momentum in statistics]


def recalibrate_batch_norm(model: SequentialEncoder, iterators: Sequence[Iterator], batches: int,
                           strategy: tf.distribute.Strategy | None = None) -> None:
    """Replace the moving averages of every batch norm of ``model`` by the mean of its batch moments over
    ``batches`` global batches of each iterator (distributed iterators of ``strategy``, under which the model was
    built). Exact under every strategy: it reads the moving averages that the synchronised batch norm writes.
    Every worker of a cluster must call it."""
    strategy = strategy or tf.distribute.get_strategy()
    if model not in _MOMENT_STEPS:
        network = weakref.ref(model)  # the cache must not keep the network alive
        _MOMENT_STEPS[model] = tf.function(lambda iterator: _batch_moments(network(), strategy, iterator))
    step = _MOMENT_STEPS[model]
    statistics = _statistics(model)
    sums = [np.zeros(variable.shape, np.float64) for variable, _ in statistics]
    for iterator in iterators:
        for _ in range(batches):
            for total, value in zip(sums, step(iterator), strict=True):
                total += value.numpy()
    count = batches * len(iterators)
    for (variable, _), total in zip(statistics, sums, strict=True):
        variable.assign((total / count).astype(np.float32))
