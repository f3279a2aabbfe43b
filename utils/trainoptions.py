"""The options of a training run (the flags of ``train.py``): one dataclass, the parser generated from it, and the
record of every run's effective options in the model folder (``training_runs.jsonl``). Imports no TensorFlow, so
that ``train.py`` can parse its flags and set the CUDA variables before TensorFlow starts."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from modelzoo.params import MIXED_PRECISION
from utils.cli import UserError
from utils.fsio import read_text
from utils.options import as_record, datadir_option, option

STRATEGIES = ("default", "mirrored", "multiworker")
OPTIMIZER_FLAGS = ("learning_rate", "beta1", "beta2", "epsilon")
SCHEDULES = ("constant", "cosine")
VALIDATION_PARTITIONS = ("test", "eval")
RUNS_FILE = "training_runs.jsonl"  # one line per run of train.py in the model folder


def _adam(name: str) -> object:
    return option(None, f"override Adam's {name} of params.ini", type=float)


@dataclass(frozen=True)
class TrainingOptions:
    """The settings of a training run; every field with an :func:`~utils.options.option` is a flag of ``train.py``
    with the original's name and default where the original had it."""

    datadir: Path | None = datadir_option()
    gpu: str | None = option(None, "GPUs to use (CUDA_VISIBLE_DEVICES), e.g. 0 or 0,1; default: $CUDA_VISIBLE_DEVICES, "
                             "else GPU 0 with the default strategy and every GPU with the others", short=("-g",))
    train_on: tuple[str, ...] = option(("2016",), "sections (years) of dataset.ini to train on, one step each in turn",
                                       short=("-d",), many=True)
    batchsize: int = option(16, "global batch size (tiles per step)", short=("-b",), type=int)
    verbose: bool = option(False, "print the network's variables", short=("-v",), switch=True)
    shuffle: bool = option(True, "reshuffle the training files every epoch", short=("-s",), boolean=True)
    augment: bool = option(False, "apply a random one of the 8 symmetries of the square (flips, transposition) to "
                           "each training tile (the original: none)", boolean=True)
    epochs: int = option(1, "train until this many epochs (all training tiles of the training sections) are done",
                         short=("-e",), type=int)
    temporal_samples: int | None = option(None, "train on a sorted random subset of this many time steps per tile "
                                          "(default: all)", short=("-t",), type=int)
    save_frequency: int = option(64, "checkpoint every N steps", type=int)
    summary_frequency: int = option(64, "validate and log every N steps", type=int)
    fold: int = option(0, "fold of train_fold<k>/test_fold<k>.tileids", short=("-f",), type=int)
    prefetch: int = option(6, "batches to prefetch (0: none)", type=int)
    max_models_to_keep: int = option(5, "checkpoints to keep (0: all)", type=int)
    save_every_n_hours: float = option(1.0, "besides those, keep one checkpoint every N hours", type=float)
    queue_capacity: int = option(256, "ignored (unused by the original too)", type=int)
    allow_growth: bool = option(False, "let GPU memory grow as needed", boolean=True)
    limit_batches: int = option(-1, "use only the first N*batchsize training tiles of each section (debugging)",
                                type=int)
    learning_rate: float | None = _adam("learning_rate")
    beta1: float | None = _adam("beta1")
    beta2: float | None = _adam("beta2")
    epsilon: float | None = _adam("epsilon")
    schedule: str = option("constant", "learning rate: constant (the original) or cosine decay to 0 over --epochs",
                           choices=SCHEDULES)
    seed: int | None = option(None, "seed weights, file order and temporal samples, with deterministic ops: two runs "
                              "give identical checkpoints", type=int)
    strategy: str = option("default", "default: one device; mirrored: the local GPUs (or --devices); multiworker: "
                           "the cluster in $TF_CONFIG", choices=STRATEGIES)
    devices: str | None = option(None, "devices of --strategy mirrored, comma-separated, e.g. GPU:0,GPU:1 "
                                 "(CPU:0,CPU:1 splits the CPU)")
    validate_on: tuple[str, ...] | None = option(None, "sections to validate on (default: those of --train_on)",
                                                 many=True)
    validation_partition: str = option("test", "partition of the validation tiles (test: test_fold<k>)",
                                       choices=VALIDATION_PARTITIONS)
    validation_batches: int = option(8, "validation batches per section and summary (-1: the whole partition)",
                                     type=int)
    mixed_precision: str = option("none", "convolutions in float16 (GPUs; dynamic loss scaling) or bfloat16 (GPUs, "
                                  "CPUs with AVX512-BF16); norm statistics, recurrent state and softmax stay float32",
                                  choices=MIXED_PRECISION)
    recompute: bool = option(False, "recompute the recurrent activations in the backward pass (gradient "
                             "checkpointing over time): less memory for long sequences, about a third more time per "
                             "step", boolean=True)
    bn_recalibration_batches: int = option(0, "before every validation and checkpoint, replace the batch norms' "
                                           "moving averages by their statistics under the current weights over N "
                                           "training batches per section, every date of each tile as in evaluation "
                                           "('precise BN'; 0: the original's moving averages)", type=int)

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
        choices = {"validation_partition": VALIDATION_PARTITIONS, "mixed_precision": MIXED_PRECISION,
                   "schedule": SCHEDULES, "strategy": STRATEGIES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"--{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not self.train_on:
            raise UserError("--train_on: no section given")
        if self.datadir is not None:
            object.__setattr__(self, "datadir", Path(self.datadir))
        object.__setattr__(self, "train_on", tuple(dict.fromkeys(self.train_on)))  # duplicates once
        validate_on = self.train_on if self.validate_on is None else tuple(dict.fromkeys(self.validate_on))
        object.__setattr__(self, "validate_on", validate_on)

    @property
    def optimizer(self) -> dict[str, float]:
        """The Adam settings given for this run (they override ``params.ini``'s)."""
        return {name: getattr(self, name) for name in OPTIMIZER_FLAGS if getattr(self, name) is not None}

    @property
    def device_list(self) -> list[str] | None:
        """``--devices`` as a list, or None."""
        names = [device.strip() for device in (self.devices or "").split(",") if device.strip()]
        return names or None

    def cuda_environment(self, environ: dict[str, str]) -> dict[str, str]:
        """The CUDA variables that ``--gpu`` asks for; they must be set before TensorFlow starts.

        ``--gpu`` given: those GPUs. Otherwise ``$CUDA_VISIBLE_DEVICES`` is respected; when it is unset, the default
        strategy sees GPU 0 only (the original's default) and the others see every GPU.
        """
        if self.gpu is None and ("CUDA_VISIBLE_DEVICES" in environ or self.strategy != "default"):
            return {}
        return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0" if self.gpu is None else self.gpu}


def run_record(options: TrainingOptions, **facts: object) -> dict[str, object]:
    """What a run records about itself: the time, the effective options, ``facts`` (e.g. the starting step, the
    replicas), the versions, and the data root's ``synthetic.json`` if it has one."""
    import keras
    import tensorflow as tf

    from utils.synthetic.writer import STAMP as SYNTHETIC_STAMP

    record: dict[str, object] = {"time": datetime.now().isoformat(timespec="seconds"), **facts,
                                 "options": as_record(options),
                                 "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                                              "keras": keras.__version__}}
    stamp = None if options.datadir is None else Path(options.datadir) / SYNTHETIC_STAMP
    if stamp is not None and stamp.is_file():
        try:
            record["data"] = json.loads(read_text(stamp))
        except ValueError as err:
            raise UserError(f"{stamp}: not JSON ({err})") from None
    return record


def append_run_record(folder: str | os.PathLike, record: dict[str, object]) -> None:
    """Append ``record`` as one line of ``training_runs.jsonl`` in the model folder."""
    with open(Path(folder) / RUNS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
