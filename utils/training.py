"""Training of an MTLCC network: the original procedure (spec §3) on tf.data and tf.distribute.

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

import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2
from tqdm import tqdm

from modelzoo.params import ModelParams
from modelzoo.seqencmodel import (
    MIXED_PRECISION,
    build_model,
    make_optimizer,
    masked_correct,
    masked_xe_sum,
    model_summary,
)
from utils.cli import UserError
from utils.dataset import Dataset, translate_errors
from utils.fsio import atomic_file, read_text, remove_orphans
from utils.modelfolder import ModelFolder, TrainingState

STRATEGIES = ("default", "mirrored", "multiworker")
OPTIMIZER_FLAGS = ("learning_rate", "beta1", "beta2", "epsilon")
SCHEDULES = ("constant", "cosine")
VALIDATION_PARTITIONS = ("test", "eval")
LOG_FILE = "training_log.csv"
LOG_COLUMNS = ("time", "elapsed_s", "cpu_s", "global_step", "samples_seen", "epoch", "section", "partition", "xe", "oa",
               "learning_rate")
PLAIN_PROGRESS_SECONDS = 30.0
# TensorBoard's scalar format, written without the tensorboard package (tf.summary.scalar needs it)
SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()
VALIDATION_SEED = 0  # the validation tiles are the same at every summary and in every run
RECALIBRATION_SEED = 1  # so are the training batches of the batch-norm recalibration


@dataclass(frozen=True)
class TrainingOptions:
    """The settings of a training run (the flags of ``train.py`` after parsing)."""

    datadir: Path
    train_on: tuple[str, ...] = ("2016",)
    validate_on: tuple[str, ...] | None = None  # None: the sections of train_on
    batchsize: int = 16
    epochs: int = 1
    temporal_samples: int | None = None
    shuffle: bool = True
    augment: bool = False
    fold: int = 0
    prefetch: int = 6
    limit_batches: int = -1
    save_frequency: int = 64
    summary_frequency: int = 64
    max_models_to_keep: int = 5
    save_every_n_hours: float = 1.0
    validation_partition: str = "test"
    validation_batches: int = 8
    seed: int | None = None
    optimizer: dict[str, float] = dataclasses.field(default_factory=dict)  # overrides of params.ini
    schedule: str = "constant"
    verbose: bool = False
    mixed_precision: str = "none"
    recompute: bool = False
    bn_recalibration_batches: int = 0

    def __post_init__(self) -> None:
        positive = ("batchsize", "save_frequency", "summary_frequency")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"--{name} = {getattr(self, name)} must be at least 1")
        for name in ("epochs", "prefetch", "max_models_to_keep", "bn_recalibration_batches"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name} = {getattr(self, name)} must not be negative")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise UserError(f"--seed = {self.seed} must be in 0..{2**32 - 1}")
        if self.validation_batches == 0 or self.validation_batches < -1:
            raise UserError(f"--validation_batches = {self.validation_batches} must be positive or -1 (all)")
        if self.validation_partition not in VALIDATION_PARTITIONS:
            raise UserError(f"--validation_partition {self.validation_partition!r} is not one of "
                            f"{', '.join(VALIDATION_PARTITIONS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise UserError(f"--mixed_precision {self.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"--schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        unknown = set(self.optimizer) - set(OPTIMIZER_FLAGS)
        if unknown:
            raise UserError(f"unknown optimizer setting {sorted(unknown)[0]!r}")
        if not self.train_on:
            raise UserError("--train_on: no section given")
        object.__setattr__(self, "train_on", tuple(dict.fromkeys(self.train_on)))  # duplicates once
        validate_on = self.train_on if self.validate_on is None else tuple(dict.fromkeys(self.validate_on))
        object.__setattr__(self, "validate_on", validate_on)


# ---------------------------------------------------------------------------------------------------- devices


def configure_devices(devices: Sequence[str] | None = None, allow_growth: bool = False) -> None:
    """Prepare TensorFlow's devices before its runtime starts: GPU memory growth, and as many logical CPU devices
    as ``devices`` names (``CPU:0,CPU:1`` splits the CPU in two, to try a distributed setup without GPUs)."""
    try:
        if allow_growth:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        cpus = [name for name in devices or () if "CPU" in name.upper()]
        if len(cpus) > 1:
            physical = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(physical, [tf.config.LogicalDeviceConfiguration()] * len(cpus))
    except RuntimeError as err:
        raise UserError(f"--devices/--allow_growth: TensorFlow is already initialised ({err})") from None


def make_strategy(name: str = "default", devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The distribution strategy: ``default`` (one device), ``mirrored`` (``devices`` or all local GPUs) or
    ``multiworker`` (``MultiWorkerMirroredStrategy``; the cluster comes from ``$TF_CONFIG``)."""
    if name not in STRATEGIES:
        raise UserError(f"--strategy {name!r} is not one of {', '.join(STRATEGIES)}")
    if name != "mirrored" and devices:
        raise UserError(f"--devices applies to --strategy mirrored only, not {name}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices:
            present = {_device_key(device.name) for device in tf.config.list_logical_devices()}
            for device in devices:
                if _device_key(device) not in present:
                    raise UserError(f"--devices: no device {device!r} (present: "
                                    f"{', '.join(sorted(present))})")
        return tf.distribute.MirroredStrategy(list(devices) if devices else None)
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise UserError("--strategy multiworker: $TF_CONFIG is not set (the cluster and this worker's task)")
    try:
        spec = json.loads(config)
        valid = isinstance(spec["cluster"], dict) and isinstance(spec["task"]["type"], str) \
            and int(spec["task"]["index"]) >= 0
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise UserError(f"$TF_CONFIG: not a cluster specification with a task type and index: {config!r}")
    return tf.distribute.MultiWorkerMirroredStrategy()


def _device_key(name: str) -> str:
    """``/job:localhost/replica:0/task:0/device:CPU:1``, ``/cpu:1`` and ``CPU:1`` all become ``CPU:1``."""
    kind, _, index = name.rsplit("/", 1)[-1].removeprefix("device:").upper().rpartition(":")
    return f"{kind}:{index}"


def replica_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices of this worker's replicas (the default strategy: the first GPU, else the CPU)."""
    try:
        return [_device_key(device) for device in strategy.extended.worker_devices]
    except RuntimeError:  # the default strategy
        return [_device_key((tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name)]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and logs: always, except on the non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


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


def optimizer_params(params: ModelParams, overrides: dict[str, float]) -> ModelParams:
    """``params`` with the optimizer flags given on the command line (checked like params.ini's)."""
    return dataclasses.replace(params, **{name: value for name, value in overrides.items() if value is not None})


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


@dataclass
class Totals:
    """Sums over pixels: cross-entropy over the valid pixels, their number, and the correctly classified ones."""

    xe_sum: float = 0.0
    count: float = 0.0
    correct: float = 0.0

    def add(self, values: Sequence[float]) -> None:
        """Add ``(xe_sum, count, correct)``."""
        self.xe_sum += float(values[0])
        self.count += float(values[1])
        self.correct += float(values[2])

    @property
    def xe(self) -> float:
        """Mean cross-entropy over the valid pixels (NaN without any)."""
        return self.xe_sum / self.count if self.count else math.nan

    @property
    def oa(self) -> float:
        """Overall accuracy over the valid pixels (NaN without any)."""
        return self.correct / self.count if self.count else math.nan


def pixel_totals(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """``[xe_sum, valid pixels, correct pixels]`` of a batch (float32)."""
    xe_sum, count = masked_xe_sum(labels, logits)
    correct, _ = masked_correct(labels, logits)
    return tf.stack([xe_sum, count, correct])


# ---------------------------------------------------------------------------------------------------- output


class TrainingLog:
    """TensorBoard runs (one per section and partition: ``train2016(t)``, ``test2016``; scalars ``xe``, ``oa``,
    ``learning_rate``; x-axis samples seen, as the original) and ``training_log.csv`` in the model folder."""

    def __init__(self, folder: Path, enabled: bool = True, resume_step: int | None = None):
        """``resume_step``: the step a resumed run restarts from; the CSV rows of later steps (run after that
        checkpoint by a killed run, about to be redone) are removed. The times continue from the last row."""
        self.folder = folder
        self.enabled = enabled
        self.path = folder / LOG_FILE
        self.writers: dict[str, tf.summary.SummaryWriter] = {}
        rows = self._rows()
        self.elapsed_before, self.cpu_before = (float(rows[-1]["elapsed_s"]), float(rows[-1]["cpu_s"])) if rows \
            else (0.0, 0.0)
        if enabled and resume_step is not None and any(int(row["global_step"]) > resume_step for row in rows):
            with atomic_file(self.path) as tmp, open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, list(rows[0]))
                writer.writeheader()
                writer.writerows(row for row in rows if int(row["global_step"]) <= resume_step)

    def _rows(self) -> list[dict[str, str]]:
        """The rows of the log, checked to hold the columns read back."""
        if not self.path.is_file():
            return []
        rows = list(csv.DictReader(io.StringIO(read_text(self.path), newline="")))
        try:
            for row in rows:
                float(row["elapsed_s"]), float(row["cpu_s"]), int(row["global_step"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{self.path}: not a training log of train.py (move it away)") from None
        return rows

    def write(self, run: str, section: str, partition: str, totals: Totals, step: int, samples: int, epoch: float,
              learning_rate: float, elapsed: float, cpu: float) -> None:
        """One row of the CSV log and the scalars of one TensorBoard run."""
        if not self.enabled:
            return
        if run not in self.writers:
            self.writers[run] = tf.summary.create_file_writer(str(self.folder / run))
        with self.writers[run].as_default(step=samples):
            for tag, value in (("xe", totals.xe), ("oa", totals.oa), ("learning_rate", learning_rate)):
                tf.summary.write(tag, tf.constant(value, tf.float32), metadata=SCALAR_METADATA)
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(LOG_COLUMNS)
            writer.writerow([datetime.now().isoformat(timespec="seconds"), f"{self.elapsed_before + elapsed:.1f}",
                             f"{self.cpu_before + cpu:.1f}",
                             step, samples, f"{epoch:.4f}", section, partition, f"{totals.xe:.6f}",
                             f"{totals.oa:.6f}", f"{learning_rate:.6g}"])

    def close(self) -> None:
        """Flush and close the TensorBoard writers."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class Progress:
    """A progress bar on a terminal (tqdm on stderr); plain lines every 30 s otherwise (CI, log files)."""

    def __init__(self, total: int, initial: int, interactive: bool | None = None):
        self.total = total
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr,
                        smoothing=0.1) if self.interactive else None
        self.last_line = time.monotonic()

    def update(self, step: int, status: str, seconds_per_step: float) -> None:
        """Advance to ``step``; ``status`` is epoch, loss, accuracy and throughput."""
        if self.bar is not None:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(step - self.bar.n)
        elif time.monotonic() - self.last_line >= PLAIN_PROGRESS_SECONDS:
            self.last_line = time.monotonic()
            left = max(self.total - step, 0) * seconds_per_step
            print(f"step {step}/{self.total} {status}, {format_duration(left)} left", flush=True)

    def message(self, text: str) -> None:
        """Print a line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


def format_duration(seconds: float) -> str:
    """``1h02m``, ``4m05s`` or ``12s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


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
        self.params = optimizer_params(folder.params, options.optimizer)
        self.sections = load_sections(options, folder.params.num_classes)
        self.num_samples = sum(len(self.sections[name].train_ids) for name in options.train_on)
        self.target_samples = options.epochs * self.num_samples
        self.state, self.optimizer = build_training_state(
            folder, self.params, self.strategy, options.schedule, math.ceil(self.target_samples / options.batchsize),
            options.mixed_precision, options.recompute)
        self.restored = self._restore()
        self._train_step = tf.function(self._distributed_step)
        self._eval_step = tf.function(self._evaluate_batch, reduce_retracing=True)
        self._moments_step = tf.function(self._batch_moments)
        self._recalibrated_step: int | None = None

    # -- state

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

    def _restore(self) -> str | None:
        prefix = self.folder.checkpoint(required=False)
        if prefix is not None:
            with self.strategy.scope():
                self.state.restore(prefix)
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            self._check_workers_agree()
        return prefix

    def _check_workers_agree(self) -> None:
        """Every worker must have restored the same step (the model folder must be shared), else all stop."""
        def moments() -> tf.Tensor:
            step = tf.cast(self.state.global_step, tf.float64)
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.stack([step, step * step]))

        mean, square = self.strategy.experimental_local_results(tf.function(
            lambda: self.strategy.run(moments))())[0].numpy()
        if square > mean * mean:
            raise UserError(f"{self.folder.path}: the workers restored different checkpoints (this one: step "
                            f"{self.global_step}); the model folder must be the same shared folder on every worker")

    def save(self) -> str | None:
        """Write a checkpoint of the current step (chief only); its path."""
        if not self.chief:
            return None
        return self.state.save(self.folder, self.options.max_models_to_keep, self.options.save_every_n_hours)

    def describe(self) -> str:
        """What this run does: network, checkpoint, data, epochs, optimizer, strategy, validation."""
        options, params, base = self.options, self.params, self.folder.params
        model = self.state.model
        trainable = sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)
        lines = [f"model {self.folder.path}: conv{base.convcell} with {base.convrnn_filters} filters, "
                 f"{trainable:,} trainable parameters"]
        if self.restored:
            lines.append(f"resuming from {Path(self.restored).name}: step {self.global_step}, {self.samples_seen} "
                         f"tiles seen, epoch {self.epoch:.2f}")
        else:
            lines.append("no checkpoint in the model folder: starting from freshly initialised weights")
        counts = ", ".join(f"[{name}] {len(self.sections[name].train_ids)}" for name in options.train_on)
        lines.append(f"data {options.datadir}: training tiles {counts} (fold {options.fold}); an epoch is "
                     f"{self.num_samples} tiles, {options.epochs} epochs = {self.target_samples} tiles in steps of "
                     f"{options.batchsize}" + (", each tile under a random symmetry of the square (--augment)"
                                                 if options.augment else ""))
        settings = ", ".join(f"{name} {getattr(params, name):g}" for name in OPTIMIZER_FLAGS)
        overridden = ", ".join(f"--{name} (params.ini: {getattr(base, name):g})" for name in options.optimizer)
        lines.append(f"optimizer Adam: {settings}, {options.schedule} learning rate"
                     + (f"; overridden for this run: {overridden}" if overridden else ""))
        devices = ", ".join(replica_devices(self.strategy))
        lines.append(f"strategy {type(self.strategy).__name__}: {self.strategy.num_replicas_in_sync} "
                     f"replica(s) in sync, here on {devices}" + ("" if self.chief else " (not the chief: no output)"))
        amount = "all" if options.validation_batches < 0 else f"{options.validation_batches}"
        lines.append(f"validation every {options.summary_frequency} steps: {amount} batches of full series of the "
                     f"{options.validation_partition} partition of {', '.join(options.validate_on)}, batch norm in "
                     f"inference mode")
        if options.bn_recalibration_batches:
            lines.append(f"batch norm: population statistics re-estimated with the current weights over "
                         f"{options.bn_recalibration_batches} training batches per section, every date of each tile "
                         f"(as in evaluation), before every validation and checkpoint (not on a stop signal)")
        if options.mixed_precision != "none" or options.recompute:
            lines.append(f"runtime options: --mixed_precision {options.mixed_precision}, --recompute "
                         f"{options.recompute}")
        if options.seed is not None:
            lines.append(f"seed {options.seed}: deterministic ops")
        if options.verbose:
            lines.append(model_summary(model).rstrip())
        return "\n".join(lines)

    # -- steps

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

    def _batch_norm_statistics(self) -> list[tuple[keras.Variable, float]]:
        """(moving mean or variance, its batch norm's momentum) of every batch norm, input to output."""
        return [(variable, bn.momentum) for bn in self.state.model.batch_norms
                for variable in (bn.moving_mean, bn.moving_variance)]

    def _batch_moments(self, iterator) -> list[tf.Tensor]:
        """Mean and variance of every batch norm's input over the next global batch (in the order of
        :meth:`_batch_norm_statistics`): the moving averages are zeroed, one forward pass in training mode updates
        them to (1 - momentum) × the batch moments."""
        statistics = self._batch_norm_statistics()
        for variable, _ in statistics:
            variable.assign(tf.zeros_like(variable))
        self.strategy.run(lambda batch: self.state.model(batch, training=True), args=(next(iterator),))
        return [variable / (1.0 - momentum) for variable, momentum in statistics]

    def recalibrate_batch_norm(self) -> None:
        """Re-estimate every batch norm's population statistics with the current weights ("precise BN"): the mean
        of the per-batch moments over ``bn_recalibration_batches`` global training batches of each training section
        replaces the moving averages. The batches hold every date of their tiles, as the network sees them in
        evaluation, and are the same tiles every time.

        With small batches and moving weights the moving averages (momentum 0.9) lag behind the network; and when
        training samples fewer dates than a tile has, the statistics of the final states differ between training
        and evaluation. Both can put the inference-mode accuracy of a checkpoint far below its training accuracy.
        Every worker must call this.
        """
        options = self.options
        statistics = self._batch_norm_statistics()
        sums = [np.zeros(variable.shape, np.float64) for variable, _ in statistics]
        with translate_errors():
            for index, name in enumerate(options.train_on):
                iterator = iter(distributed_training_input(self.strategy, self.sections[name], options,
                                                           RECALIBRATION_SEED + index, full_series=True))
                for _ in range(options.bn_recalibration_batches):
                    for total, value in zip(sums, self._moments_step(iterator), strict=True):
                        total += value.numpy()
        count = options.bn_recalibration_batches * len(options.train_on)
        for (variable, _), total in zip(statistics, sums, strict=True):
            variable.assign((total / count).astype(np.float32))

    def _evaluate_batch(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        return pixel_totals(batch["labels"], self.state.model(batch, training=False))

    def validate(self, dataset: tf.data.Dataset) -> Totals:
        """Loss and accuracy over the batches of ``dataset`` with batch norm in inference mode."""
        totals = Totals()
        with translate_errors():
            for batch in dataset:
                totals.add(self._eval_step(batch).numpy())
        return totals

    # -- the loop

    def run(self) -> int | None:
        """Train until ``epochs`` epochs are done; return the signal number if SIGINT/SIGTERM stopped it early.

        The chief holds the model folder's lock meanwhile (another training of the folder is a one-line error) and
        first removes the temporary files of a killed run."""
        if not self.chief:
            return self._train()
        with self.folder.lock():
            remove_orphans(self.folder.path)
            return self._train()

    def _train(self) -> int | None:
        options = self.options
        start_step = self.global_step
        if self.samples_seen >= self.target_samples:
            print(f"nothing to do: {self.epoch:.2f} of {options.epochs} epochs done at step {start_step} "
                  f"(raise --epochs to train further)")
            return None
        sections = len(options.train_on)
        train_inputs = {
            name: iter(distributed_training_input(self.strategy, self.sections[name], options,
                                                  pipeline_seed(options.seed, index),
                                                  skip_steps=section_steps(start_step, index, sections)))
            for index, name in enumerate(options.train_on)}
        validation = {name: validation_input(self.sections[name], options) for name in options.validate_on}
        steps_left = math.ceil((self.target_samples - self.samples_seen) / options.batchsize)
        log = TrainingLog(self.folder.path, enabled=self.chief, resume_step=start_step)
        progress = Progress(start_step + steps_left, start_step, self.interactive)
        run = _RunState(time.monotonic(), {name: Totals() for name in options.train_on})
        saved_step = start_step if self.restored else None
        stopped = None
        try:
            with StopSignals() as signals, translate_errors():
                if start_step == 0:
                    self._summarize(log, progress, validation, run)
                while stopped is None and self.samples_seen < self.target_samples:
                    name = options.train_on[self.global_step % len(options.train_on)]
                    values = self.train_step(train_inputs[name], signals.received is not None)
                    run.record(name, values)
                    step = self.global_step
                    progress.update(step, self._status(run), run.seconds_per_step())
                    if values[3] > 0:  # a signal reached this process or another worker: all stop here
                        stopped = signals.received or signal.SIGTERM
                        break
                    if step % options.summary_frequency == 0:
                        self._summarize(log, progress, validation, run)
                    if step % options.save_frequency == 0:
                        self._report_save(progress, recalibrate=True)
                        saved_step = step
                if stopped is None and any(totals.count for totals in run.since_summary.values()):
                    self._summarize(log, progress, validation, run)
                if saved_step != self.global_step:
                    self._report_save(progress, recalibrate=stopped is None)  # a signal leaves no time for it
        finally:
            progress.close()
            log.close()
        if stopped is not None:
            print(f"stopped by {signal.Signals(stopped).name} at step {self.global_step} (epoch {self.epoch:.2f}); "
                  f"run the same command again to resume")
        return stopped

    def _recalibrate_once(self) -> None:
        """Recalibrate the batch norms if asked to and not done yet at this step."""
        if self.options.bn_recalibration_batches and self._recalibrated_step != self.global_step:
            self.recalibrate_batch_norm()
            self._recalibrated_step = self.global_step

    def _report_save(self, progress: Progress, recalibrate: bool) -> None:
        if recalibrate:
            self._recalibrate_once()
        prefix = self.save()
        if prefix is not None:
            progress.message(f"saved {Path(prefix).name}")

    def _status(self, run: _RunState) -> str:
        recent = run.recent
        return (f"epoch {self.epoch:.2f}/{self.options.epochs}, loss {recent.xe:.3f}, oa {recent.oa:.3f}, "
                f"{self.options.batchsize / max(run.seconds_per_step(), 1e-9):.1f} samples/s")

    def _summarize(self, log: TrainingLog, progress: Progress, validation: dict[str, tf.data.Dataset],
                   run: _RunState) -> None:
        """Log the training steps since the last summary and the validation tiles of every section."""
        self._recalibrate_once()
        step, samples, epoch, learning_rate = self.global_step, self.samples_seen, self.epoch, self.learning_rate
        progress.message(f"step {step}: epoch {epoch:.2f} of {self.options.epochs}, {samples} tiles seen, "
                         f"learning rate {learning_rate:.3g}")
        rows = [(f"train{name}(t)", name, "train", totals) for name, totals in run.since_summary.items()
                if totals.count]
        if self.chief:
            partition = self.options.validation_partition
            rows += [(f"{partition}{name}", name, partition, self.validate(dataset))
                     for name, dataset in validation.items()]
        for label, section, partition, totals in rows:
            log.write(label, section, partition, totals, step, samples, epoch, learning_rate, run.elapsed(),
                      run.cpu())
            progress.message(f"  {section}/{partition}: cross entropy {totals.xe:.4f}, "
                             f"overall accuracy {totals.oa:.4f}")
        run.reset_window()


@dataclass
class _RunState:
    """Book-keeping of one run: training totals since the last summary, and the timing window."""

    started: float
    since_summary: dict[str, Totals]
    cpu_started: float = dataclasses.field(default_factory=time.process_time)
    window_start: float = 0.0
    window_steps: int = 0
    recent: Totals = dataclasses.field(default_factory=Totals)

    def __post_init__(self) -> None:
        self.window_start = self.started

    def record(self, section: str, values: np.ndarray) -> None:
        self.since_summary[section].add(values)
        self.recent.add(values)
        self.window_steps += 1

    def seconds_per_step(self) -> float:
        return (time.monotonic() - self.window_start) / max(self.window_steps, 1)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def cpu(self) -> float:
        return time.process_time() - self.cpu_started

    def reset_window(self) -> None:
        self.since_summary = {name: Totals() for name in self.since_summary}
        self.recent = Totals()
        self.window_start = time.monotonic()
        self.window_steps = 0
