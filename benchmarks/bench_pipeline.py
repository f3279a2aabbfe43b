"""Throughput of the tf.data pipeline (samples/s) as training uses it: temporal_samples 30, batch 4, shuffle on.

    python benchmarks/bench_pipeline.py                 # generated datasets of 24 px and 48 px tiles, nobs 46
    python benchmarks/bench_pipeline.py --datadir ROOT  # an existing dataset root (its train partition)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import run  # noqa: E402
from utils.dataset import Dataset, iterate  # noqa: E402
from utils.records import Tile, write_tile  # noqa: E402

NOBS = 46
CLASS_IDS = (0, 1, 2, 3, 5, 8, 9, 12, 13, 15, 16, 17, 19, 22, 23, 24, 25, 26)


def plausible_tile(rng: np.random.Generator, pix: int) -> Tile:
    """A random tile with L1C-like statistics: per-parcel spectra, per-date brightness, noise, zero padding."""
    steps = int(rng.integers(25, NOBS + 1))
    parcels = rng.integers(0, 6, (pix, pix))
    parcels[:, pix // 2:] += 6

    def bands(size: int, count: int) -> np.ndarray:
        field = parcels[:: pix // size, :: pix // size][:size, :size]
        spectra = rng.uniform(300, 4000, (12, count))
        brightness = rng.uniform(0.8, 2.5, (steps, 1, 1, 1))
        values = spectra[field][None] * brightness + rng.normal(0, 80, (steps, size, size, count))
        out = np.zeros((NOBS, size, size, count), np.int64)
        out[:steps] = np.clip(np.rint(values), 0, 20000)
        return out

    doy = np.zeros(NOBS, np.int64)
    doy[:steps] = np.sort(rng.choice(np.arange(1, 366), steps, replace=False))
    year = np.where(doy > 0, 2016, 0)
    labels = np.repeat(np.asarray(CLASS_IDS)[rng.integers(0, len(CLASS_IDS), 12)][parcels][None], NOBS, axis=0)
    return Tile(bands(pix, 4), bands(pix // 2, 6), bands(pix // 6, 3), doy, year, labels)


def generate(root: Path, pix: int, tiles: int, seed: int = 0) -> Path:
    """Write a dataset root with ``tiles`` GZIP tiles of ``pix`` px, all in ``train_fold0``."""
    rng = np.random.default_rng(seed)
    (root / "tileids").mkdir(parents=True)
    (root / "dataset.ini").write_text(f"[2016]\ndatadir = data16\npix10 = {pix}\nnobs = {NOBS}\nnbands10 = 4\n"
                                      f"nbands20 = 6\nnbands60 = 3\ntiletable = tiles{pix}0\n")
    (root / "classes.txt").write_text("".join(f"{raw}|class {raw}\n" for raw in CLASS_IDS))
    (root / "tileids" / "train_fold0.tileids").write_text("".join(f"{i}\n" for i in range(tiles)))
    for tileid in range(tiles):
        write_tile(root / "data16" / f"{tileid}.tfrecord.gz", plausible_tile(rng, pix))
    return root


def throughput(root: Path, section: str, batches: int, batchsize: int, temporal_samples: int) -> tuple[float, float]:
    """(samples per second, CPU milliseconds per sample) over ``batches`` batches after one warm-up batch.

    The CPU time (all threads of this process) tells what the pipeline costs independent of other load.
    """
    pipeline = Dataset(root, section).pipeline("train", batchsize=batchsize, shuffle=True, seed=0, repeat=True,
                                               temporal_samples=temporal_samples)
    batches_iter = iterate(pipeline)
    next(batches_iter)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(batches_iter)
    samples = batches * batchsize
    return samples / (time.perf_counter() - start), 1000 * (time.process_time() - cpu_start) / samples


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datadir", type=Path, help="an existing dataset root (default: generated datasets)")
    parser.add_argument("--section", default="2016", help="section of dataset.ini (default 2016)")
    parser.add_argument("--tiles", type=int, default=300, help="tiles per generated dataset (default 300)")
    parser.add_argument("--batches", type=int, default=150, help="batches timed per row (default 150)")
    parser.add_argument("--batchsize", type=int, default=4)
    parser.add_argument("--temporal_samples", type=int, default=30)
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPU cores\n"
          "| px | tiles | MB/tile (gz) | temporal_samples | batch | shuffle | samples/s | CPU ms/sample |\n"
          "|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        roots = [args.datadir] if args.datadir else [generate(Path(tmp) / f"{pix}", pix, args.tiles)
                                                     for pix in (24, 48)]
        for root in roots:
            dataset = Dataset(root, args.section)
            files = dataset.tile_files("train")
            size = sum(path.stat().st_size for _, path in files) / len(files) / 1e6
            rate, cpu = throughput(root, args.section, args.batches, args.batchsize, args.temporal_samples)
            print(f"| {dataset.config.pix10} | {len(files)} | {size:.2f} | {args.temporal_samples} | "
                  f"{args.batchsize} | on | {rate:.0f} | {cpu:.1f} |")


if __name__ == "__main__":
    run(main)
