"""predict.py on the synthetic scene: seams (stride = tile against the default half tile), speed against the bare
forward passes, and peak memory on areas of growing size.

    python benchmarks/bench_predict.py seams --model tmp/demo/convgru64_48px     # a trained model (make demo)
    python benchmarks/bench_predict.py speed --filters 64 128
    python benchmarks/bench_predict.py memory --sizes 480 1920

The scenes are written once into ``tmp/bench_predict/`` by ``python -m utils.synthetic --scene``. ``seams``: the
accuracy against the scene's truth of the pixels within 3 px of a tile border (the 48 px grid from the area's
corner) and of the others, and the mean step of the confidence (highest score) between neighbouring pixels across a
tile border and elsewhere. ``speed``: km²/h and the share of the run spent in the forward passes (the network on the
same windows and batches), random weights. ``memory``: peak RSS of whole runs in fresh processes (a ConvGRU-8).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fresh_process import peak_rss_mib, reset_peak_rss, run_fresh  # noqa: E402

from utils.cli import run  # noqa: E402

CACHE = ROOT / "tmp" / "bench_predict"
TILE = 48
BORDER = 3
MEMORY_FILTERS = 8  # the memory of the data path does not depend on the network's size; a small one runs faster


def scene(size: int) -> Path:
    """The synthetic scene of ``size`` px (written on first use)."""
    from utils.synthetic.__main__ import main as synthetic

    folder = CACHE / f"scene{size}"
    if not folder.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        synthetic(["--scene", str(folder), "--size", str(size)])
    return folder


def model_folder(filters: int) -> Path:
    """A ConvGRU for 48 px tiles with random weights (speed and memory do not depend on training)."""
    import init_graph
    from modelzoo import seqencmodel

    folder = CACHE / f"convgru{filters}_48px"
    if not folder.is_dir():
        with contextlib.redirect_stdout(io.StringIO()):
            seqencmodel.main(["--modelfolder", str(folder), "--convrnn_filters", str(filters), "--num_classes", "17",
                              "--pix10m", "48"])
            init_graph.main([str(folder), "--seed", "0"])
    return folder


def predict_run(model: Path, source: Path, stride: int | None, extra: Sequence[str] = ()) -> tuple[Path, float]:
    """Run predict.py into a fresh folder; returns the folder and the seconds spent in forward passes."""
    import predict
    from utils import prediction

    forward_seconds = [0.0]
    make_forward = prediction.make_forward

    def timed(model, strategy):
        forward = make_forward(model, strategy)

        def call(batch):
            start = time.perf_counter()
            scores = forward(batch)
            forward_seconds[0] += time.perf_counter() - start
            return scores

        return call

    prediction.make_forward = timed
    out = Path(tempfile.mkdtemp(dir=CACHE)) / "map"
    args = [str(model), str(source), "--outdir", str(out), *extra]
    if stride:
        args += ["--stride", str(stride)]
    with contextlib.redirect_stdout(io.StringIO()):
        predict.main(args)
    prediction.make_forward = make_forward
    return out, forward_seconds[0]


def seam_table(model: Path, size: int) -> None:
    import rasterio

    from utils.classes import load_classes
    from utils.rasters import write_confidence_png

    source = scene(size)
    with rasterio.open(source / "truth.tif") as src:
        truth = src.read(1)
    classes, _ = load_classes(None)
    labelled = classes.to_index(truth) > 0
    rows, cols = np.indices(truth.shape)
    near = (np.minimum(rows % TILE, TILE - 1 - rows % TILE) < BORDER) | \
           (np.minimum(cols % TILE, TILE - 1 - cols % TILE) < BORDER)
    across = (cols[:, :-1] % TILE) == TILE - 1  # horizontal neighbours on the two sides of a tile border
    print(f"seams on the synthetic scene of {size}² px, {model}; within {BORDER} px of a {TILE} px tile border: "
          f"{near[labelled].mean():.1%} of the labelled px\n")
    print("| stride | OA all | OA near borders | OA interior | border − interior | confidence step across borders | "
          "elsewhere | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    crops = []
    for stride in (TILE, TILE // 2):
        out, _ = predict_run(model, source, stride)
        with rasterio.open(out / "classes.tif") as src:
            correct = src.read(1) == truth
        with rasterio.open(out / "confidence.tif") as src:
            confidence = src.read(1)
        crops += [confidence[5 * TILE:10 * TILE, 5 * TILE:10 * TILE], np.full((5 * TILE, 5), np.nan)]
        step = np.abs(np.diff(confidence, axis=1))
        oa = [correct[labelled & mask].mean() for mask in (np.ones_like(near), near, ~near)]
        border, elsewhere = np.nanmean(step[across]), np.nanmean(step[~across])
        print(f"| {stride} | {oa[0]:.3f} | {oa[1]:.3f} | {oa[2]:.3f} | {oa[1] - oa[2]:+.3f} | {border:.4f} | "
              f"{elsewhere:.4f} | {border / elsewhere:.2f} |", flush=True)
    figure = write_confidence_png(CACHE / "seams.png", np.concatenate(crops[:-1], axis=1), scale=2)
    print(f"\nconfidence of {5 * TILE}² px at both strides (inferno, 0..1): {figure}")


def speed_child(filters: int, size: int, stride: int, batchsize: int) -> dict:
    model, source = model_folder(filters), scene(size)
    start = time.perf_counter()
    _, forward = predict_run(model, source, stride, ["--batchsize", str(batchsize)])
    return {"seconds": time.perf_counter() - start, "forward": forward}


def memory_child(size: int) -> dict:
    model, source = model_folder(MEMORY_FILTERS), scene(size)
    import predict  # noqa: F401  (TensorFlow and the modules, before the peak is reset)

    reset_peak_rss()
    before = peak_rss_mib()
    start = time.perf_counter()
    predict_run(model, source, None)
    return {"seconds": time.perf_counter() - start, "before": before, "peak": peak_rss_mib()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", choices=["seams", "speed", "memory"], default="seams")
    parser.add_argument("--model", default=str(ROOT / "tmp" / "demo" / "convgru64_48px"),
                        help="trained model for the seams (default: the demo's)")
    parser.add_argument("--size", type=int, default=960, help="scene side in px for seams and speed")
    parser.add_argument("--sizes", type=int, nargs="+", default=[480, 1920], help="scene sides for memory")
    parser.add_argument("--filters", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batchsize", type=int, default=16)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *values = args.child
        result = speed_child(*map(int, values)) if kind == "speed" else memory_child(int(values[0]))
        print(json.dumps(result))
        return
    if args.table == "seams":
        seam_table(Path(args.model), args.size)
    elif args.table == "speed":
        km2 = args.size * args.size * 1e-4
        print(f"speed on the synthetic scene of {args.size}² px ({km2:.2f} km²), batch {args.batchsize}, CPU\n")
        print("| model | stride | seconds | km²/h | forward s | run / forward |\n|---|---|---|---|---|---|")
        for filters in args.filters:
            for stride in (TILE, TILE // 2):
                result = run_fresh(__file__, "speed", filters, args.size, stride, args.batchsize)
                rate = km2 / result["seconds"] * 3600
                print(f"| ConvGRU-{filters} | {stride} | {result['seconds']:.0f} | {rate:.1f} | "
                      f"{result['forward']:.0f} | {result['seconds'] / result['forward']:.2f} |", flush=True)
    else:
        print(f"peak RSS of predict.py (ConvGRU-{MEMORY_FILTERS}, default stride), fresh processes; MiB\n")
        print("| area px | km² | seconds | start | peak | peak − start |\n|---|---|---|---|---|---|")
        for size in args.sizes:
            result = run_fresh(__file__, "memory", size)
            print(f"| {size}² | {size * size * 1e-4:.2f} | {result['seconds']:.0f} | {result['before']:.0f} | "
                  f"{result['peak']:.0f} | {result['peak'] - result['before']:.0f} |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run(main)
