"""The documented learning runs of benchmarks/RESULTS.md ("Learning"): does the faithful network learn, and how fast?

A ConvGRU with 64 filters is trained with ``train.py`` (``--temporal_samples 30 --batchsize 4 --train_on 2016
2017``, seed 0) on the default synthetic 24 px dataset, once per setting of RUNS, each for a wall-clock budget
(then stopped with SIGTERM, which saves a checkpoint). Validation runs on the whole eval partition of both years
every ``--summary_frequency`` steps. The learning curves are printed as Markdown tables from the runs'
``training_log.csv``; a second call resumes unfinished runs and reprints the tables.

    python benchmarks/learning.py                      # original and tuned, 60 minutes each, in tmp/learning
    python benchmarks/learning.py --runs tuned --minutes 30
    python benchmarks/learning.py --runs precise alldates --summary_frequency 430
    python benchmarks/learning.py --report             # only the tables
    python benchmarks/learning.py --report --runs augmented_lr3 --checkpoints   # and the kept checkpoints
"""

from __future__ import annotations

import argparse
import csv
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modelzoo import seqencmodel  # noqa: E402
from utils.cli import UserError, run  # noqa: E402
from utils.dataset import Dataset, add_datadir_argument, iterate, resolve_datadir  # noqa: E402
from utils.evaluation import make_forward  # noqa: E402
from utils.modelfolder import ModelFolder  # noqa: E402

TUNED_ADAM = ["--learning_rate", "2e-3", "--epsilon", "1e-7", "--schedule", "cosine"]
FAST_PRECISE = ["--mixed_precision", "mixed_bfloat16", "--bn_recalibration_batches", "32"]
PRECISE = [*TUNED_ADAM, "--epochs", "45", *FAST_PRECISE]
RUNS = {
    "original": ("the original Adam settings: lr 0.01, ε 0.9, constant", []),
    "adam": ("Adam lr 0.001, ε 1e-7, constant", ["--learning_rate", "1e-3", "--epsilon", "1e-7"]),
    "tuned": ("Adam lr 0.002, ε 1e-7, cosine decay to 0 over 36 epochs", [*TUNED_ADAM, "--epochs", "36"]),
    "precise": ("Adam lr 0.002, ε 1e-7, cosine decay to 0 over 45 epochs, mixed_bfloat16, batch norm recalibrated "
                "over 32 full-series batches per year before every validation", PRECISE),
    "augmented": ("as precise, with each training tile under a random symmetry of the square (--augment)",
                  [*PRECISE, "--augment"]),
    "augmented_lr3": ("as augmented, with Adam lr 0.003", [*PRECISE, "--augment", "--learning_rate", "3e-3"]),
    "alldates": ("as precise, but trained on every date of a tile (--temporal_samples 46) and over 30 epochs",
                 [*TUNED_ADAM, "--epochs", "30", *FAST_PRECISE, "--temporal_samples", "46"]),
}
SECTIONS = ("2016", "2017")
GOAL = 0.85


def training_command(folder: Path, root: Path, extra: Sequence[str], summary_frequency: int) -> list[str]:
    """The ``train.py`` command of a learning run (``extra`` flags override the common ones)."""
    return [sys.executable, str(REPO / "train.py"), str(folder), "--datadir", str(root), "--temporal_samples", "30",
            "--batchsize", "4", "--train_on", *SECTIONS, "--epochs", "1000", "--seed", "0",  # a later --epochs wins
            "--summary_frequency", str(summary_frequency), "--save_frequency", str(summary_frequency),
            "--validation_partition", "eval", "--validation_batches", "-1", *extra]


def read_log(folder: Path) -> list[dict[str, str]]:
    """The rows of a run's ``training_log.csv`` (none before the first validation)."""
    path = folder / "training_log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def train_for(folder: Path, command: list[str], seconds: float, filters: int) -> None:
    """Run (or resume) ``command`` until its training log shows ``seconds`` of training, then SIGTERM it."""
    if not (folder / "params.ini").is_file():
        seqencmodel.main(["--modelfolder", str(folder), "--convcell", "gru", "--convrnn_filters", str(filters)])
    rows = read_log(folder)
    remaining = seconds - (float(rows[-1]["elapsed_s"]) if rows else 0.0)
    if remaining <= 0:
        return
    print(f"training {folder.name} for {remaining / 60:.1f} more minutes, log in {folder / 'train.out'}", flush=True)
    with open(folder / "train.out", "a") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=remaining + 30)  # about 30 s from start to the first step
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            process.wait()
    if process.returncode not in (0, 128 + signal.SIGTERM):
        raise UserError(f"{folder / 'train.out'}: train.py failed with status {process.returncode}")


def majority_rate(root: Path, section: str, partition: str = "eval") -> float:
    """Overall accuracy of always predicting the most frequent class of the partition."""
    dataset = Dataset(root, section)
    counts = sum(np.bincount(batch["labels"].ravel(), minlength=len(dataset.classes.ids))
                 for batch in iterate(dataset.pipeline(partition, batchsize=32, temporal_samples=None)))
    return counts[1:].max() / counts[1:].sum()


def curve_table(folder: Path) -> str:
    """One Markdown row per validation: step, wall and CPU minutes, epoch, training loss/OA (since the previous
    row), eval loss and OA per year; the first row with both eval OAs >= GOAL is marked."""
    points: dict[int, dict[str, str | float]] = {}
    for row in read_log(folder):
        point = points.setdefault(int(row["global_step"]), {"minutes": float(row["elapsed_s"]) / 60,
                                                           "cpu": float(row.get("cpu_s") or "nan") / 60,
                                                           "epoch": float(row["epoch"])})
        point[f"{row['partition']}{row['section']}"] = (float(row["xe"]), float(row["oa"]))
    lines = ["| step | minutes | CPU minutes | epoch | train loss | train OA | eval loss 2016 / 2017 | "
             "eval OA 2016 / 2017 |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    reached = False
    for step, point in sorted(points.items()):
        train = [point[f"train{s}"] for s in SECTIONS if f"train{s}" in point]
        evals = [point.get(f"eval{s}", (float("nan"), float("nan"))) for s in SECTIONS]
        goal = not reached and all(oa >= GOAL for _, oa in evals)
        reached |= goal
        mark = " **≥ 0.85**" if goal else ""
        train_cells = (f"{np.mean([xe for xe, _ in train]):.3f} | {np.mean([oa for _, oa in train]):.3f}"
                       if train else "– | –")
        lines.append(f"| {step} | {point['minutes']:.1f} | {point['cpu']:.1f} | {point['epoch']:.2f} | {train_cells} | "
                     f"{evals[0][0]:.3f} / {evals[1][0]:.3f} | {evals[0][1]:.3f} / {evals[1][1]:.3f}{mark} |")
    return "\n".join(lines)


def checkpoint_table(folder: Path, root: Path, flags: Sequence[str]) -> str:
    """Overall accuracy of every kept checkpoint of a run on the test and eval tiles of both years (every date, batch
    norm in inference mode, the run's ``--mixed_precision``). The checkpoint with the best mean test accuracy is
    marked: model selection on the test tiles, which are disjoint from the training and the eval tiles."""
    policy = flags[flags.index("--mixed_precision") + 1] if "--mixed_precision" in flags else "none"
    model_folder = ModelFolder(folder)
    inputs = {(section, partition): Dataset(root, section).pipeline(partition, batchsize=16, temporal_samples=None)
              for partition in ("test", "eval") for section in SECTIONS}
    rows = []
    for index in sorted(folder.glob("model.ckpt-*.index"), key=lambda path: int(path.stem.rpartition("-")[2])):
        model, _, step = model_folder.load_network(index.stem, mixed_precision=policy)
        forward = make_forward(model, next(iter(inputs.values())).element_spec)
        accuracies = []
        for pipeline in inputs.values():
            correct = labelled = 0
            for batch in iterate(pipeline):
                prediction, valid = forward(batch)["prediction"].numpy(), batch["labels"] > 0
                correct += int((prediction[valid] == batch["labels"][valid]).sum())
                labelled += int(valid.sum())
            accuracies.append(correct / labelled)
        rows.append((step, accuracies))
    best = max(rows, key=lambda row: np.mean(row[1][:len(SECTIONS)]))[0]
    lines = ["| checkpoint | test OA 2016 / 2017 | eval OA 2016 / 2017 |", "|---:|---:|---:|"]
    for step, accuracies in rows:
        mark = " (best on test)" if step == best else ""
        lines.append(f"| {step}{mark} | {accuracies[0]:.3f} / {accuracies[1]:.3f} | "
                     f"{accuracies[2]:.3f} / {accuracies[3]:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Train the runs that are not done yet, then print their learning curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_datadir_argument(parser)
    parser.add_argument("--outdir", type=Path, default=REPO / "tmp" / "learning", help="one model folder per run")
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=["original", "tuned"],
                        help="optimizer settings")
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget of each run")
    parser.add_argument("--filters", type=int, default=64, help="ConvGRU filters")
    parser.add_argument("--summary_frequency", type=int, default=256, help="steps between validations")
    parser.add_argument("--report", action="store_true", help="only print the tables of the existing runs")
    parser.add_argument("--checkpoints", action="store_true",
                        help="also score every kept checkpoint on the test and eval tiles (model selection on test)")
    args = parser.parse_args(argv)
    root = resolve_datadir(args.datadir, 24)
    for name in args.runs:
        folder = args.outdir / name
        if not args.report:
            train_for(folder, training_command(folder, root, RUNS[name][1], args.summary_frequency),
                      args.minutes * 60, args.filters)
    majority = ", ".join(f"{section} {majority_rate(root, section):.3f}" for section in SECTIONS)
    print(f"dataset {root}; majority-class rate of the eval partition: {majority}")
    for name in args.runs:
        print(f"\n### {name}: {RUNS[name][0]}\n\n{curve_table(args.outdir / name)}")
        if args.checkpoints:
            print(f"\n{checkpoint_table(args.outdir / name, root, RUNS[name][1])}")


if __name__ == "__main__":
    run(main)
