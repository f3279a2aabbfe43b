"""What a training run reports: loss and accuracy totals, ``training_log.csv`` and the TensorBoard runs, the
progress bar or lines, the timing of the run, and the description printed at its start."""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2
from tqdm import tqdm

from modelzoo.seqencmodel import model_summary
from utils.cli import UserError
from utils.distribution import replica_devices
from utils.fsio import atomic_file, read_text
from utils.trainoptions import OPTIMIZER_FLAGS

if TYPE_CHECKING:
    from utils.training import Trainer

LOG_FILE = "training_log.csv"
LOG_COLUMNS = ("time", "elapsed_s", "cpu_s", "global_step", "samples_seen", "epoch", "section", "partition", "xe", "oa",
               "learning_rate")
PLAIN_PROGRESS_SECONDS = 30.0
# TensorBoard's scalar format, written without the tensorboard package (tf.summary.scalar needs it)
SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()


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

    def summary(self, progress: Progress, meter: RunMeter, validated: dict[str, Totals], partition: str, step: int,
                samples: int, epoch: float, epochs: int, learning_rate: float) -> None:
        """A summary: the training totals of ``meter`` since the last one and the ``validated`` sections' totals
        (of ``partition``), each as a row of the log and a console line; then ``meter`` starts a new window."""
        progress.message(f"step {step}: epoch {epoch:.2f} of {epochs}, {samples} tiles seen, "
                         f"learning rate {learning_rate:.3g}")
        rows = [(f"train{name}(t)", name, "train", totals) for name, totals in meter.since_summary.items()
                if totals.count]
        rows += [(f"{partition}{name}", name, partition, totals) for name, totals in validated.items()]
        for label, section, row_partition, totals in rows:
            self.write(label, section, row_partition, totals, step, samples, epoch, learning_rate, meter.elapsed(),
                       meter.cpu())
            progress.message(f"  {section}/{row_partition}: cross entropy {totals.xe:.4f}, "
                             f"overall accuracy {totals.oa:.4f}")
        meter.reset_window()

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


class RunMeter:
    """Book-keeping of one run: the training totals of each section since the last summary, the recent totals and
    the timing window of the progress display, wall-clock and CPU time."""

    def __init__(self, sections: Sequence[str]):
        self.started = self.window_start = time.monotonic()
        self.cpu_started = time.process_time()
        self.since_summary = {name: Totals() for name in sections}
        self.recent = Totals()
        self.window_steps = 0

    def record(self, section: str, values: np.ndarray) -> None:
        """Add a training step's ``[xe_sum, valid, correct, …]`` of ``section``."""
        self.since_summary[section].add(values)
        self.recent.add(values)
        self.window_steps += 1

    def pending(self) -> bool:
        """Whether training steps were recorded since the last summary."""
        return any(totals.count for totals in self.since_summary.values())

    def seconds_per_step(self) -> float:
        """Mean wall-clock seconds per step since the last summary."""
        return (time.monotonic() - self.window_start) / max(self.window_steps, 1)

    def status(self, epoch: float, epochs: int, batchsize: int) -> str:
        """The progress line's status: epoch, recent loss and accuracy, throughput."""
        return (f"epoch {epoch:.2f}/{epochs}, loss {self.recent.xe:.3f}, oa {self.recent.oa:.3f}, "
                f"{batchsize / max(self.seconds_per_step(), 1e-9):.1f} samples/s")

    def elapsed(self) -> float:
        """Wall-clock seconds of this run."""
        return time.monotonic() - self.started

    def cpu(self) -> float:
        """CPU seconds of this process in this run."""
        return time.process_time() - self.cpu_started

    def reset_window(self) -> None:
        """Start the totals and the timing window afresh (after a summary)."""
        self.since_summary = {name: Totals() for name in self.since_summary}
        self.recent = Totals()
        self.window_start = time.monotonic()
        self.window_steps = 0


def describe(trainer: Trainer) -> str:
    """What a run does: network, checkpoint, data, epochs, optimizer, strategy, validation (printed at its start)."""
    options, params, base = trainer.options, trainer.params, trainer.folder.params
    model = trainer.state.model
    trainable = sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)
    lines = [f"model {trainer.folder.path}: conv{base.convcell} with {base.convrnn_filters} filters, "
             f"{trainable:,} trainable parameters"]
    if trainer.restored:
        lines.append(f"resuming from {Path(trainer.restored).name}: step {trainer.global_step}, "
                     f"{trainer.samples_seen} tiles seen, epoch {trainer.epoch:.2f}")
    else:
        lines.append("no checkpoint in the model folder: starting from freshly initialised weights")
    counts = ", ".join(f"[{name}] {len(trainer.sections[name].train_ids)}" for name in options.train_on)
    lines.append(f"data {options.datadir}: training tiles {counts} (fold {options.fold}); an epoch is "
                 f"{trainer.num_samples} tiles, {options.epochs} epochs = {trainer.target_samples} tiles in steps of "
                 f"{options.batchsize}" + (", each tile under a random symmetry of the square (--augment)"
                                             if options.augment else ""))
    settings = ", ".join(f"{name} {getattr(params, name):g}" for name in OPTIMIZER_FLAGS)
    overridden = ", ".join(f"--{name} (params.ini: {getattr(base, name):g})" for name in options.optimizer)
    lines.append(f"optimizer Adam: {settings}, {options.schedule} learning rate"
                 + (f"; overridden for this run: {overridden}" if overridden else ""))
    strategy = trainer.strategy
    lines.append(f"strategy {type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s) in sync, here on "
                 f"{', '.join(replica_devices(strategy))}" + ("" if trainer.chief else " (not the chief: no output)"))
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
