"""Training of an MTLCC network: the original procedure (ORIGINAL.md §3) on tf.data and tf.distribute.

One step per section ("year") of ``train_on`` in turn; ``global_step`` and ``samples_seen`` count steps and tiles;
an epoch is every training tile of the training sections once. Checkpoints (network, Adam slots, counters) are
written in the original name-based format every ``save_frequency`` steps, at the end and on SIGINT/SIGTERM; a
restart in the same model folder resumes from the latest one. Every ``summary_frequency`` steps the loss and overall
accuracy of the training steps since the last summary and of a fixed set of validation tiles (batch norm in
inference mode) go to the console, to TensorBoard (one run per section and partition, named as the original:
``train2016(t)``, ``test2016``) and to ``training_log.csv``.

The step is distributed with ``tf.distribute``: each replica computes the cross-entropy sum over the valid pixels
of its slice of the global batch, divides it by the valid-pixel count of the whole global batch (all-reduced), and
Keras' optimizer sums the replicas' gradients. The loss is thus the mean over all valid pixels of the global batch,
as on one device.

Runtime options that change neither the weights nor the checkpoints: ``mixed_precision`` (convolutions in float16 or
bfloat16; float16 steps scale the loss dynamically, the scale itself is not checkpointed) and ``recompute``
(gradient checkpointing over time: less memory for long sequences, about one more forward pass per step).
"""

from __future__ import annotations

import dataclasses
import math
import signal
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from modelzoo.params import ModelParams
from modelzoo.seqencmodel import build_model, make_optimizer, masked_correct, masked_xe_sum
from utils.batchnorm import recalibrate_batch_norm
from utils.cli import UserError
from utils.dataset import Dataset, translate_errors
from utils.distribution import check_workers_agree, is_chief
from utils.fsio import remove_orphans
from utils.modelfolder import ModelFolder, TrainingState
from utils.runlog import Progress, RunMeter, Totals, TrainingLog, describe
from utils.trainoptions import TrainingOptions, append_run_record, run_record

VALIDATION_SEED = 0  # the validation tiles are the same at every summary and in every run
RECALIBRATION_SEED = 1  # so are the training batches of the batch-norm recalibration


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class Section:
    """One section of the dataset as training uses it: its reader and the ids of its training tiles."""

    name: str
    dataset: Dataset
    train_ids: list[int]


def load_sections(options: TrainingOptions, num_classes: int) -> dict[str, Section]:
    """The sections of ``train_on`` and ``validate_on``, checked against the network's class count."""
    sections = {}
    for name in dict.fromkeys(options.train_on + options.validate_on):
        dataset = Dataset(options.datadir, name, options.temporal_samples)
        if dataset.classes.num_classes != num_classes:
            raise UserError(f"{options.datadir / 'classes.txt'}: {dataset.classes.num_classes} classes, but the "
                            f"network of params.ini has num_classes = {num_classes}")
        train_ids = []
        if name in options.train_on:
            train_ids = [tileid for tileid, _ in dataset.tile_files("train", options.fold)]
            if options.limit_batches > 0:
                train_ids = train_ids[:options.limit_batches * options.batchsize]
        sections[name] = Section(name, dataset, train_ids)
    return sections


def distributed_training_input(strategy: tf.distribute.Strategy, section: Section, options: TrainingOptions,
                               seed: int | None, full_series: bool = False,
                               skip_steps: int = 0) -> tf.distribute.DistributedDataset:
    """The endless training stream of a section, split so that the replicas together see one global batch;
    ``full_series``: every date of each tile instead of ``temporal_samples``, and no ``augment``; ``skip_steps``:
    the global batches already trained on (a resumed run continues the stream).

    Each worker reads its own share of the files (file ``i`` of the sorted list goes to worker ``i mod W``) and
    batches it per replica; on one worker the replicas take consecutive per-replica batches, i.e. the same global
    batches as one device.
    """
    def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = section.train_ids[context.input_pipeline_id::context.num_input_pipelines]
        if not shard:
            raise UserError(f"section [{section.name}]: {len(section.train_ids)} training tiles for "
                            f"{context.num_input_pipelines} workers")
        return section.dataset.pipeline("train", options.fold, context.get_per_replica_batch_size(options.batchsize),
                                        shuffle=options.shuffle, seed=seed, repeat=True, tileids=shard,
                                        augment=options.augment and not full_series,
                                        drop_remainder=True, prefetch=options.prefetch or None,
                                        skip=skip_steps * options.batchsize // context.num_input_pipelines,
                                        **({"temporal_samples": None} if full_series else {}))

    return strategy.distribute_datasets_from_function(make)


def validation_input(section: Section, options: TrainingOptions) -> tf.data.Dataset:
    """A fixed set of validation batches: full series, the first ``validation_batches`` of a seeded shuffle."""
    dataset = section.dataset.pipeline(options.validation_partition, options.fold, options.batchsize, shuffle=True,
                                       seed=VALIDATION_SEED, temporal_samples=None, prefetch=options.prefetch or None)
    return dataset.take(options.validation_batches) if options.validation_batches > 0 else dataset


def pipeline_seed(seed: int | None, section_index: int) -> int | None:
    """The shuffling/sampling seed of a section's training stream (the same in every run of a training)."""
    if seed is None:
        return None
    state = np.random.SeedSequence([seed, section_index]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def section_steps(steps: int, section_index: int, sections: int) -> int:
    """How many of the first ``steps`` training steps trained on section ``section_index`` (they alternate)."""
    return max(0, -(-(steps - section_index) // sections))


# ---------------------------------------------------------------------------------------------------- model


def build_training_state(folder: ModelFolder, params: ModelParams, strategy: tf.distribute.Strategy,
                         schedule: str = "constant", total_steps: int = 1, mixed_precision: str = "none",
                         recompute: bool = False) -> tuple[TrainingState, keras.optimizers.Optimizer]:
    """The network of ``folder``, Adam configured by ``params`` (its slots created) and the counters, all made under
    ``strategy``: the one place where the trained network and its optimizer are built.

    ``schedule`` ``cosine`` decays the learning rate from ``params.learning_rate`` to 0 over ``total_steps``;
    ``mixed_precision`` and ``recompute`` are passed to :func:`build_model`. Returns the checkpointed state (with
    Adam itself) and the optimizer that applies the steps: Adam, or for ``mixed_float16`` the loss-scaling
    optimizer around it (the gradients are those of ``optimizer.scale_loss(loss)``).
    """
    with strategy.scope():
        model = build_model(folder.params, mixed_precision, recompute)
        optimizer = make_optimizer(params, mixed_precision)
        if schedule == "cosine":
            optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(params.learning_rate,
                                                                             max(total_steps, 1))
        state = TrainingState(model, getattr(optimizer, "inner_optimizer", optimizer))
        if not optimizer.built:  # the loss scale now: a tf.function must not create variables under a strategy
            optimizer.build(model.trainable_variables)
    return state, optimizer


# ---------------------------------------------------------------------------------------------------- metrics


def pixel_totals(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """``[xe_sum, valid pixels, correct pixels]`` of a batch (float32)."""
    xe_sum, count = masked_xe_sum(labels, logits)
    correct, _ = masked_correct(labels, logits)
    return tf.stack([xe_sum, count, correct])


# ---------------------------------------------------------------------------------------------------- signals


class StopSignals:
    """While active, SIGINT and SIGTERM only ask the training loop to stop after the current step and save; a
    second signal acts as usual (the checkpoint files are written atomically, so none is left half-written)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self.previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def __enter__(self) -> StopSignals:
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------------- trainer


class Trainer:
    """The training run of a model folder with :class:`TrainingOptions` under a ``tf.distribute`` strategy."""

    def __init__(self, folder: ModelFolder, options: TrainingOptions, strategy: tf.distribute.Strategy | None = None,
                 interactive: bool | None = None):
        self.folder = folder
        self.options = options
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = is_chief(self.strategy)
        self.interactive = interactive
        replicas = self.strategy.num_replicas_in_sync
        if options.batchsize % replicas:
            raise UserError(f"--batchsize {options.batchsize} is not divisible by the {replicas} replicas")
        if options.seed is not None:
            keras.utils.set_random_seed(options.seed)
            tf.config.experimental.enable_op_determinism()
        self.params = dataclasses.replace(folder.params, **options.optimizer)  # checked like params.ini's
        self.sections = load_sections(options, folder.params.num_classes)
        self.num_samples = sum(len(self.sections[name].train_ids) for name in options.train_on)
        self.target_samples = options.epochs * self.num_samples
        self.state, self.optimizer = build_training_state(
            folder, self.params, self.strategy, options.schedule, math.ceil(self.target_samples / options.batchsize),
            options.mixed_precision, options.recompute)
        self.restored = folder.checkpoint(required=False)
        if self.restored is not None:
            with self.strategy.scope():
                self.state.restore(self.restored)
        check_workers_agree(self.strategy, self.state.global_step, folder.path)
        self._train_step = tf.function(self._distributed_step)
        self._eval_step = tf.function(self._evaluate_batch, reduce_retracing=True)
        self.recalibrated_step: int | None = None

    @property
    def global_step(self) -> int:
        """Training steps done so far (all runs)."""
        return int(self.state.global_step.numpy())

    @property
    def samples_seen(self) -> int:
        """Training tiles read so far (all runs)."""
        return int(self.state.samples_seen.numpy())

    @property
    def epoch(self) -> float:
        """Epochs done so far: samples seen / training tiles of the training sections."""
        return self.samples_seen / self.num_samples

    @property
    def learning_rate(self) -> float:
        """The optimizer's current learning rate."""
        return float(keras.ops.convert_to_numpy(self.state.optimizer.learning_rate))

    def save(self) -> str | None:
        """Write a checkpoint of the current step (chief only); its path."""
        if not self.chief:
            return None
        return self.state.save(self.folder, self.options.max_models_to_keep, self.options.save_every_n_hours)

    def describe(self) -> str:
        """What this run does (:func:`utils.runlog.describe`)."""
        return describe(self)

    def _replica_step(self, batch: dict[str, tf.Tensor], stop: tf.Tensor) -> tf.Tensor:
        model = self.state.model
        with tf.GradientTape() as tape:
            logits = model(batch, training=True)
            local = pixel_totals(batch["labels"], logits)
            context = tf.distribute.get_replica_context()
            totals = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(tf.concat([local, [stop]], 0)))
            loss = local[0] / tf.maximum(totals[1], 1.0)  # this replica's share of the global-batch mean
            scaled = self.optimizer.scale_loss(loss)  # the loss itself unless mixed_float16
        variables = model.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))  # sums across replicas
        return totals

    def _distributed_step(self, iterator, stop: tf.Tensor) -> tf.Tensor:
        totals = self.strategy.run(self._replica_step, args=(next(iterator), stop))
        self.state.global_step.assign_add(1)
        self.state.samples_seen.assign_add(self.options.batchsize)
        return self.strategy.experimental_local_results(totals)[0]

    def train_step(self, iterator, stop: bool = False) -> np.ndarray:
        """One step on the next global batch of ``iterator``: ``[xe_sum, valid, correct, stop requests]`` summed
        over all replicas."""
        return self._train_step(iterator, tf.constant(float(stop))).numpy()

    def recalibrate_batch_norm_once(self) -> None:
        """:meth:`recalibrate_batch_norm` if asked to (``bn_recalibration_batches``) and not done at this step."""
        if self.options.bn_recalibration_batches and self.recalibrated_step != self.global_step:
            self.recalibrate_batch_norm()
            self.recalibrated_step = self.global_step

    def recalibrate_batch_norm(self) -> None:
        """Precise batch norm (:func:`utils.batchnorm.recalibrate_batch_norm`) over ``bn_recalibration_batches``
        global training batches of each training section, every date of their tiles (as the network sees them in
        evaluation), the same tiles every time. Every worker must call this."""
        options = self.options
        iterators = [iter(distributed_training_input(self.strategy, self.sections[name], options,
                                                     RECALIBRATION_SEED + index, full_series=True))
                     for index, name in enumerate(options.train_on)]
        with translate_errors():
            recalibrate_batch_norm(self.state.model, iterators, options.bn_recalibration_batches, self.strategy)

    def _evaluate_batch(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        return pixel_totals(batch["labels"], self.state.model(batch, training=False))

    def validate(self, dataset: tf.data.Dataset) -> Totals:
        """Loss and accuracy over the batches of ``dataset`` with batch norm in inference mode."""
        totals = Totals()
        with translate_errors():
            for batch in dataset:
                totals.add(self._eval_step(batch).numpy())
        return totals

    def run(self) -> int | None:
        """Train until ``epochs`` epochs are done; return the signal number if SIGINT/SIGTERM stopped it early.

        The chief holds the model folder's lock meanwhile (another training of the folder is a one-line error),
        first removes the temporary files of a killed run and records the run's options (``training_runs.jsonl``)."""
        if not self.chief:
            return TrainingRun(self).run()
        with self.folder.lock():
            remove_orphans(self.folder.path)
            append_run_record(self.folder.path, run_record(
                self.options, start_step=self.global_step, restored=self.restored and Path(self.restored).name,
                replicas=self.strategy.num_replicas_in_sync, strategy_class=type(self.strategy).__name__))
            return TrainingRun(self).run()


class TrainingRun:
    """One run of a :class:`Trainer` until its epochs are done or a signal stops it: the training inputs resumed
    where the checkpoint left them, summaries, checkpoints, the log and the progress display."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        options = self.options = trainer.options
        self.start_step = trainer.global_step
        self.train_inputs = {
            name: iter(distributed_training_input(trainer.strategy, trainer.sections[name], options,
                                                  pipeline_seed(options.seed, index),
                                                  skip_steps=section_steps(self.start_step, index,
                                                                           len(options.train_on))))
            for index, name in enumerate(options.train_on)}
        self.validation = {name: validation_input(trainer.sections[name], options) for name in options.validate_on}
        self.saved_step = self.start_step if trainer.restored else None
        self.meter = RunMeter(options.train_on)

    def run(self) -> int | None:
        """Train; return the signal number if SIGINT/SIGTERM stopped the run early."""
        trainer, options = self.trainer, self.options
        if trainer.samples_seen >= trainer.target_samples:
            print(f"nothing to do: {trainer.epoch:.2f} of {options.epochs} epochs done at step {self.start_step} "
                  f"(raise --epochs to train further)")
            return None
        steps_left = math.ceil((trainer.target_samples - trainer.samples_seen) / options.batchsize)
        self.log = TrainingLog(trainer.folder.path, enabled=trainer.chief, resume_step=self.start_step)
        self.progress = Progress(self.start_step + steps_left, self.start_step, trainer.interactive)
        stopped = None
        try:
            with StopSignals() as signals, translate_errors():
                if self.start_step == 0:
                    self.summarize()
                while stopped is None and trainer.samples_seen < trainer.target_samples:
                    name = options.train_on[trainer.global_step % len(options.train_on)]
                    values = trainer.train_step(self.train_inputs[name], signals.received is not None)
                    self.meter.record(name, values)
                    step = trainer.global_step
                    self.progress.update(step, self.meter.status(trainer.epoch, options.epochs, options.batchsize),
                                         self.meter.seconds_per_step())
                    if values[3] > 0:  # a signal reached this process or another worker: all stop here
                        stopped = signals.received or signal.SIGTERM
                        break
                    if step % options.summary_frequency == 0:
                        self.summarize()
                    if step % options.save_frequency == 0:
                        self.save(recalibrate=True)
                if stopped is None and self.meter.pending():
                    self.summarize()
                if self.saved_step != trainer.global_step:
                    self.save(recalibrate=stopped is None)  # a signal leaves no time for it
        finally:
            self.progress.close()
            self.log.close()
        if stopped is not None:
            print(f"stopped by {signal.Signals(stopped).name} at step {trainer.global_step} (epoch "
                  f"{trainer.epoch:.2f}); run the same command again to resume")
        return stopped

    def save(self, recalibrate: bool) -> None:
        """A checkpoint of the current step, the batch norms recalibrated first if ``recalibrate``."""
        if recalibrate:
            self.trainer.recalibrate_batch_norm_once()
        prefix = self.trainer.save()
        self.saved_step = self.trainer.global_step
        if prefix is not None:
            self.progress.message(f"saved {Path(prefix).name}")

    def summarize(self) -> None:
        """Log the training steps since the last summary and the validation tiles of every section."""
        trainer = self.trainer
        trainer.recalibrate_batch_norm_once()
        validated = {name: trainer.validate(data) for name, data in self.validation.items()} if trainer.chief else {}
        self.log.summary(self.progress, self.meter, validated, self.options.validation_partition, trainer.global_step,
                         trainer.samples_seen, trainer.epoch, self.options.epochs, trainer.learning_rate)
