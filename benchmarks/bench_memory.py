"""Peak resident memory (RSS) of training steps: ConvGRU-128, batch 4, 24 px, 30 dates (issue #8), and the
saving of gradient checkpointing over time (``recompute``) on longer sequences.

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --dates 30 46 92 --filters 64

Every row runs in a fresh process, so that its peak RSS (``ru_maxrss``) is its own: the process builds the model
and a random batch (``before``), then runs three graph-compiled training steps (``peak``); ``step`` is the
difference, the memory the training step needs beyond the model and the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fresh_process import peak_rss_mib, run_fresh  # noqa: E402

from utils.cli import run  # noqa: E402

STEPS = 3


def child(cell: str, filters: int, batchsize: int, dates: int, size: int, recompute: bool) -> dict:
    """Build, then train ``STEPS`` steps in this process; returns the peak RSS before and after and the step time."""
    from bench_model import random_batch, training_step

    from modelzoo.params import ModelParams
    from modelzoo.seqencmodel import build_model, make_optimizer

    model = build_model(ModelParams(convcell=cell, convrnn_filters=filters), recompute=recompute)
    batch = random_batch(batchsize, dates, size)
    step = training_step(lambda data: model(data, training=True), model.trainable_variables,
                         make_optimizer(model.params))
    before = peak_rss_mib()
    seconds = []
    for _ in range(STEPS):
        start = time.perf_counter()
        step(batch).numpy()
        seconds.append(time.perf_counter() - start)
    return {"before": before, "peak": peak_rss_mib(), "seconds": min(seconds[1:])}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="gru", choices=["gru", "lstm"])
    parser.add_argument("--filters", type=int, default=128)
    parser.add_argument("--batchsize", type=int, default=4)
    parser.add_argument("--size", type=int, default=24, help="tile size in px")
    parser.add_argument("--dates", type=int, nargs="+", default=[30, 46, 92], help="sequence lengths")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        cell, filters, batchsize, dates, size, recompute = args.child
        print(json.dumps(child(cell, int(filters), int(batchsize), int(dates), int(size), recompute == "True")))
        return
    print(f"training step, Conv{args.cell.upper()}-{args.filters}, batch {args.batchsize}, {args.size} px, "
          "bidirectional, CPU; peak RSS in MiB\n")
    print("| dates | recompute | before | peak | step | step s |\n|---|---|---|---|---|---|")
    for dates in args.dates:
        for recompute in (False, True):
            result = run_fresh(__file__, args.cell, args.filters, args.batchsize, dates, args.size, recompute)
            print(f"| {dates} | {'on' if recompute else 'off'} | {result['before']:.0f} | {result['peak']:.0f} | "
                  f"{result['peak'] - result['before']:.0f} | {result['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run(main)
