"""Soak test of reliability (issue #15): kill ``train.py`` and ``evaluate.py`` with SIGKILL at random moments, many
times, and check after every kill that the model folder and the storedir stay usable.

Training saves a checkpoint every step and keeps one (``--save_frequency 1 --max_models_to_keep 1``). Besides the
kills at random moments, training is killed inside saves by fault injection (a wrapper that SIGKILLs the process at
one point of its n-th save): after the temporary checkpoint files are written, after the data file is renamed but
before the index that marks the checkpoint complete, and after the state file names the new checkpoint but before
the old one is deleted. Evaluation is first run once to the end (a complete run in the storedir) and then killed at
random moments of its run time. After each training kill: the folder's latest checkpoint resolves and restores,
and no second training is locked out. After each evaluation kill: the storedir holds nothing or one complete
earlier run (its ``metrics.json`` counts the tiles in ``prediction/``), never a mix. At the end both jobs run to
completion on the folders the kills left, and no temporary file is left. Data: a small synthetic root in
``tmp/soak/`` (24 px tiles, ConvGRU-8).

    python benchmarks/soak.py [--kills 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
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
STARTUP_SECONDS = (4.0, 20.0)  # training kill moments after the start: TensorFlow's import to well into the run
INJECT = """
import os, runpy, signal, sys
import tensorflow as tf
from utils import modelfolder

point, at = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[3:]
save_v2, replace, delete = tf.raw_ops.SaveV2, os.replace, modelfolder.delete_checkpoint
saves = 0

def counted_save(**kwargs):  # every checkpoint write starts here
    global saves
    saves += 1
    result = save_v2(**kwargs)
    if point == "written" and saves == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

def checked_replace(src, dst):
    if point == "renamed" and saves == at and str(dst).endswith(".index"):
        os.kill(os.getpid(), signal.SIGKILL)
    return replace(src, dst)

def checked_delete(prefix):
    if point == "rotated" and saves == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return delete(prefix)

tf.raw_ops.SaveV2, os.replace, modelfolder.delete_checkpoint = counted_save, checked_replace, checked_delete
runpy.run_path(sys.argv[0], run_name="__main__")
"""
INJECTION_POINTS = ("written", "renamed", "rotated")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}


def prepare() -> tuple[Path, Path]:
    """The synthetic root (written once) and a fresh model folder."""
    from modelzoo import seqencmodel
    from utils.synthetic import generate

    data = CACHE / "data"
    if not (data / "240" / "dataset.ini").is_file():
        generate(data, seed=0, blocks=(1, 2))
    folder = CACHE / "model"
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    with contextlib.redirect_stdout(io.StringIO()):
        seqencmodel.main(["--modelfolder", str(folder), "--convrnn_filters", "8", "--num_classes", "17",
                          "--pix10m", "24"])
    return data / "240", folder


def killed(argv: list[str], delay: float) -> bool:
    """Run a script, SIGKILL it after ``delay`` seconds (or let it kill itself); whether SIGKILL ended it."""
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env())
    try:
        process.wait(delay)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.returncode == -signal.SIGKILL


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
    from utils.modelfolder import ModelFolder

    try:
        model_folder = ModelFolder(folder)
        if model_folder.checkpoint(required=False) is not None:
            model_folder.load_network()
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


def soak(job: str, tries: list[tuple[list[str], float]], final: Callable[[], list[str]],
         check: Callable[[Path], str | None], folder: Path) -> dict:
    """Runs ``(argv, seconds before SIGKILL)``, each followed by ``check(folder)``; then ``final()`` must run to
    completion and leave a usable folder without leftovers."""
    row = {"job": job, "kills": 0, "inside": 0, "unusable": [], "finished": 0}
    for argv, delay in tries:
        if not killed(argv, delay):
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


def timed(argv: list[str]) -> float:
    """Seconds of a whole run of a script, which must succeed."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True, env=env())
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per job")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    root, folder = prepare()
    start = time.perf_counter()
    train = [str(ROOT / "train.py"), str(folder), "--datadir", str(root), *TRAIN, "-e", "1000"]
    finish = lambda: [*train[:-1], str(epochs_done(folder) + 1)]  # noqa: E731
    rows = [soak("train.py, random moments", [(train, rng.uniform(*STARTUP_SECONDS)) for _ in range(args.kills)],
                 finish, check_model, folder)]
    injected = [(["-c", INJECT, point, str(rng.randint(2, 6)), *train], 300.0)
                for point in INJECTION_POINTS for _ in range(max(1, args.kills // len(INJECTION_POINTS)))]
    rows.append(soak("train.py, inside saves", injected, finish, check_model, folder))
    storedir = CACHE / "eval"
    evaluate = [str(ROOT / "evaluate.py"), str(folder), "--datadir", str(root), "--storedir", str(storedir),
                "--writetiles", "-b", "2"]
    seconds = timed(evaluate)
    rows.append(soak("evaluate.py, random moments", [(evaluate, rng.uniform(2.0, seconds)) for _ in range(args.kills)],
                     lambda: evaluate, check_storedir, storedir))
    print(f"{args.kills} kills a row (seed {args.seed}); training killed {STARTUP_SECONDS[0]:.0f}-"
          f"{STARTUP_SECONDS[1]:.0f} s after its start or inside its 2nd to 6th save at each of "
          f"{', '.join(INJECTION_POINTS)}; evaluation ({seconds:.0f} s a run) within its run time; "
          f"{time.perf_counter() - start:.0f} s in all\n")
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
