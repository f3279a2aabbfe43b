"""evaluate.py end to end against the model's forward pass alone over the same tiles, with its default outputs
(metrics, truepred.npy) and with every per-tile file (-t -c), and the peak memory of evaluations of different
numbers of tiles, which must not grow with them.

    python benchmarks/bench_evaluate.py                          # 500 and 2,000 tiles of 48 px, F = 8
    python benchmarks/bench_evaluate.py --tiles 50 200 --filters 4

The tiles are 32 distinct synthetic 48 px tiles (2016, nobs 46) repeated under new ids and placed on a grid; the
model has random weights (the speed does not depend on them). Every run is a fresh process, so that its peak
resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fresh_process import peak_rss_mib, run_fresh  # noqa: E402

from modelzoo.params import ModelParams, write_params_ini  # noqa: E402
from utils.cli import run  # noqa: E402
from utils.georef import GeoRef, format_geotransform_row  # noqa: E402

PIX = 48
SECTION = "2016"


def make_root(source: Path, root: Path, sizes: Sequence[int]) -> Path:
    """A dataset root of ``max(sizes)`` tiles (links to the tiles of ``source``) on a square grid; partition
    ``test_fold<k>`` holds the first ``sizes[k]`` ids."""
    files = sorted((source / "data16").glob("*.tfrecord.gz"))
    count = max(sizes)
    (root / "data16").mkdir(parents=True)
    (root / "tileids").mkdir()
    for name in ("dataset.ini", "classes.txt"):
        shutil.copy(source / name, root / name)
    side = math.ceil(math.sqrt(count))
    rows = []
    for tileid in range(count):
        (root / "data16" / f"{tileid}.tfrecord.gz").symlink_to(files[tileid % len(files)])
        row, col = divmod(tileid, side)
        georef = GeoRef((600_000.0 + col * PIX * 10, 10.0, 0.0, 5_400_000.0 - row * PIX * 10, 0.0, -10.0), 32632)
        rows.append(format_geotransform_row(tileid, georef) + "\n")
    (root / "geotransforms.csv").write_text("".join(rows))
    for fold, size in enumerate(sizes):
        (root / "tileids" / f"test_fold{fold}.tileids").write_text("".join(f"{i}\n" for i in range(size)))
    return root


def make_model(folder: Path, filters: int) -> Path:
    """A model folder with a checkpoint of random weights."""
    from utils.modelfolder import ModelFolder, TrainingState

    folder.mkdir(parents=True)
    write_params_ini(folder / "params.ini", ModelParams(convrnn_filters=filters, pix10m=PIX))
    model_folder = ModelFolder(folder)
    TrainingState(model_folder.build_model()).save(model_folder)
    return folder


def forward_only(root: Path, modeldir: Path, fold: int, batchsize: int) -> dict:
    """The model loading, pipeline and forward pass of evaluate.py, results fetched to the host, nothing written."""
    from utils.dataset import Dataset, translate_errors
    from utils.evaluation import make_forward
    from utils.modelfolder import ModelFolder

    start = time.perf_counter()
    dataset = Dataset(root, SECTION)
    model, _, _ = ModelFolder(modeldir).load_network()
    pipeline = dataset.pipeline("test", fold, batchsize=batchsize, temporal_samples=None, prefetch=6)
    forward = make_forward(model, pipeline.element_spec)
    tiles = 0
    with translate_errors():
        for batch in pipeline:
            outputs = {name: value.numpy() for name, value in forward(batch).items()}
            tiles += len(outputs["prediction"])
    return {"tiles": tiles, "seconds": time.perf_counter() - start}


def end_to_end(root: Path, modeldir: Path, fold: int, batchsize: int, storedir: Path, files: bool) -> dict:
    """evaluate.py, with --writetiles --writeconfidences if ``files`` (printing silenced)."""
    from utils.evaluation import Settings, evaluate

    settings = Settings(modeldir=modeldir, datadir=root, storedir=storedir, section=SECTION, partition="test",
                        fold=fold, batchsize=batchsize, writetiles=files, writeconfidences=files)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = evaluate(settings)
    timings = result.timings
    return {"tiles": len(result.tileids), "seconds": timings.total, "forward": timings.forward,
            "writer_wait": timings.writer_wait, "finish": timings.finish}


def child(argv: Sequence[str]) -> None:
    """One measurement in this process: prints its result and peak RSS as JSON."""
    mode, root, modeldir, fold, batchsize, storedir = argv
    root, modeldir, fold, batchsize = Path(root), Path(modeldir), int(fold), int(batchsize)
    if mode == "forward":
        result = forward_only(root, modeldir, fold, batchsize)
    else:
        result = end_to_end(root, modeldir, fold, batchsize, Path(storedir), files=mode == "files")
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[500, 2000], help="evaluation sizes (tiles)")
    parser.add_argument("--filters", type=int, default=8, help="ConvGRU filters F of the model (default 8)")
    parser.add_argument("--batchsize", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1,
                        help="times to run the forward pass, evaluate and evaluate -t -c on the first size, "
                             "interleaved (the ratios are their medians: a shared machine drifts)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return
    from utils.synthetic import generate

    with tempfile.TemporaryDirectory(prefix="bench_evaluate.") as work:
        work = Path(work)
        generate(work / "synthetic", seed=0, blocks=(1, 2), years=(2016,))
        root = make_root(work / "synthetic" / "480", work / "root", args.tiles)
        modeldir = make_model(work / "model", args.filters)
        rows = []
        ratios: dict[str, list[float]] = {"evaluate": [], "evaluate -t -c": []}

        def files_row(fold: int, size: int) -> dict:
            result = run_fresh(__file__, "files", root, modeldir, fold, args.batchsize, work / f"out{fold}")
            overlap = f"forward {result['forward']:.1f} s, writer wait {result['writer_wait']:.1f} s"
            rows.append(("evaluate -t -c", size, result, overlap))
            shutil.rmtree(work / f"out{fold}")
            return result

        for _ in range(args.repeats):
            forward = run_fresh(__file__, "forward", root, modeldir, 0, args.batchsize, work / "unused")
            rows.append(("forward pass only", args.tiles[0], forward, "-"))
            plain = run_fresh(__file__, "plain", root, modeldir, 0, args.batchsize, work / "plain")
            rows.append(("evaluate", args.tiles[0], plain, f"forward {plain['forward']:.1f} s"))
            shutil.rmtree(work / "plain")
            ratios["evaluate"].append(plain["seconds"] / forward["seconds"])
            ratios["evaluate -t -c"].append(files_row(0, args.tiles[0])["seconds"] / forward["seconds"])
        for fold, size in enumerate(args.tiles[1:], start=1):
            files_row(fold, size)
    print(f"{PIX} px tiles, nobs 46, ConvGRU F={args.filters}, batch {args.batchsize}, CPU; -t -c writes 21 GeoTIFFs "
          "and 4 PNGs per tile")
    print(f"{'run':<20}{'tiles':>7}{'seconds':>10}{'ms/tile':>10}{'peak RSS MiB':>14}   notes")
    for name, size, result, notes in rows:
        print(f"{name:<20}{size:>7}{result['seconds']:>10.1f}{1000 * result['seconds'] / result['tiles']:>10.1f}"
              f"{result['peak_rss_mib']:>14.0f}   {notes}")
    for name, values in ratios.items():
        print(f"{name} / forward pass, {args.tiles[0]} tiles: median {np.median(values):.2f} "
              f"({', '.join(f'{value:.2f}' for value in values)})")


if __name__ == "__main__":
    run(main)
