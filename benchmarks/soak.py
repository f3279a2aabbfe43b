"""Soak test of reliability (issue #15): kill ``train.py`` and ``evaluate.py`` with SIGKILL at random moments, many
times, and check after every kill that the model folder and the storedir stay usable.

Training saves a checkpoint every step and keeps one (``--save_frequency 1 --max_models_to_keep 1``), so kills
land inside saves and rotations often; a kill that left a save's temporary files behind is counted as "inside a
save". After each training kill: the folder's latest checkpoint resolves and restores, and no second training is
locked out. After each evaluation kill: the storedir holds nothing or one complete earlier run (its
``metrics.json`` counts the tiles in ``prediction/``), never a mix. At the end both jobs run to completion on the
folders the kills left. Data: a small synthetic root in ``tmp/soak/`` (24 px tiles, ConvGRU-8).

    python benchmarks/soak.py [--kills 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.cli import run  # noqa: E402

CACHE = ROOT / "tmp" / "soak"
TRAIN = ["--train_on", "2016", "-b", "4", "-t", "8", "--limit_batches", "8", "--validation_batches", "1",
         "--summary_frequency", "2", "--save_frequency", "1", "--max_models_to_keep", "1"]
STARTUP_SECONDS = (4.0, 20.0)  # kill moments after the start: TensorFlow's import to well into the run


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}


def prepare() -> tuple[Path, Path]:
    """The synthetic root (written once) and a fresh model folder."""
    from modelzoo import seqencmodel
    from utils.synthetic import generate

    data = CACHE / "data"
    if not (data / "240" / "dataset.ini").is_file():
        generate(data, seed=0, blocks=(1, 1))
    folder = CACHE / "model"
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    with contextlib.redirect_stdout(io.StringIO()):
        seqencmodel.main(["--modelfolder", str(folder), "--convrnn_filters", "8", "--num_classes", "17",
                          "--pix10m", "24"])
    return data / "240", folder


def killed(argv: list[str], delay: float) -> bool:
    """Start a script, SIGKILL it after ``delay`` seconds; whether it was still running then."""
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env())
    try:
        process.wait(delay)
        return False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return True


def leftovers(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.startswith(".") and "part" in path.name] \
        if folder.is_dir() else []


def epochs_done(folder: Path) -> int:
    """Whole epochs in the latest checkpoint of ``folder`` (32 training tiles an epoch)."""
    from utils.modelfolder import ModelFolder, read_checkpoint

    prefix = ModelFolder(folder).checkpoint(required=False)
    return int(read_checkpoint(prefix)["samples_seen"]) // 32 if prefix else 0


def check_model(folder: Path) -> str | None:
    """What makes the folder unusable, or None: the latest checkpoint must resolve and restore."""
    from utils.cli import UserError
    from utils.modelfolder import ModelFolder, TrainingState

    try:
        model_folder = ModelFolder(folder)
        prefix = model_folder.checkpoint(required=False)
        if prefix is not None:
            TrainingState(model_folder.build_model()).restore(prefix, include_optimizer=False)
        with model_folder.lock():
            pass
    except UserError as err:
        return str(err)
    return None


def check_storedir(storedir: Path) -> str | None:
    """What mixes two runs in the storedir, or None."""
    metrics = storedir / "metrics.json"
    tiles = sorted((storedir / "prediction").glob("*.tif")) if (storedir / "prediction").is_dir() else []
    if not metrics.is_file():
        return f"{len(tiles)} tiles without metrics.json" if tiles else None
    count = json.loads(metrics.read_text())["num_tiles"]
    return None if count == len(tiles) else f"metrics.json counts {count} tiles, prediction/ holds {len(tiles)}"


def soak(job: str, argv: list[str], final: Callable[[], list[str]], kills: int, rng: random.Random,
         check: Callable[[Path], str | None], folder: Path) -> dict:
    """``kills`` runs of ``argv`` killed at random moments, each followed by ``check(folder)``; then ``final()``
    must run to completion and leave a usable folder without leftovers."""
    row = {"job": job, "kills": 0, "inside": 0, "unusable": [], "finished": 0}
    for _ in range(kills):
        if not killed(argv, rng.uniform(*STARTUP_SECONDS)):
            row["finished"] += 1
            continue
        row["kills"] += 1
        row["inside"] += bool(leftovers(folder))
        problem = check(folder)
        if problem:
            row["unusable"].append(problem)
    done = subprocess.run([sys.executable, *final()], capture_output=True, text=True, env=env())
    row["completes"] = done.returncode == 0 and check(folder) is None and not leftovers(folder)
    return row


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per job")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    root, folder = prepare()
    start = time.perf_counter()
    train = [str(ROOT / "train.py"), str(folder), "--datadir", str(root), *TRAIN]
    rows = [soak("train.py", [*train, "-e", "1000"], lambda: [*train, "-e", str(epochs_done(folder) + 1)],
                 args.kills, rng, check_model, folder)]
    storedir = CACHE / "eval"
    evaluate = [str(ROOT / "evaluate.py"), str(folder), "--datadir", str(root), "--storedir", str(storedir),
                "--writetiles", "-b", "2"]
    rows.append(soak("evaluate.py", evaluate, lambda: evaluate, args.kills, rng, check_storedir, storedir))
    print(f"SIGKILL at {STARTUP_SECONDS[0]:.0f}-{STARTUP_SECONDS[1]:.0f} s after the start, {args.kills} tries per job "
          f"(seed {args.seed}), {time.perf_counter() - start:.0f} s\n")
    print("| job | killed | finished before the kill | kills inside a save or staging | unusable after a kill | "
          "then runs to completion |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['job']} | {row['kills']} | {row['finished']} | {row['inside']} | {len(row['unusable'])} | "
              f"{'yes' if row['completes'] else 'no'} |")
    for row in rows:
        for problem in row["unusable"]:
            print(f"{row['job']}: {problem}")


if __name__ == "__main__":
    run(main)
