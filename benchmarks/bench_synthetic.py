"""Speed of the synthetic dataset generator on one core: rendering and writing of 24 px and 48 px tiles.

    python benchmarks/bench_synthetic.py                 # a 1 x 2 block landscape (128 + 32 tiles per year)
    python benchmarks/bench_synthetic.py --blocks 2 2    # the default dataset's size

Per tile size and year: observations per tile, milliseconds to render (the 13-band simulation of a 48 px tile,
shared by its four 24 px tiles) and to quantise, encode, gzip and write, tiles/s and MB/s (compressed output and
raw int64 records), then ``generate()`` end to end (both roots, both years).
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
from utils.records import encode_tile, write_tile  # noqa: E402
from utils.synthetic import generate, make_world, render_tile, to_tile  # noqa: E402
from utils.synthetic.writer import COMPRESSION_LEVEL  # noqa: E402

YEARS = (2016, 2017)
NOBS = 46


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs=2, default=(1, 2), metavar=("NY", "NX"))
    args = parser.parse_args(argv)
    blocks = tuple(args.blocks)

    start = time.perf_counter()
    world = make_world(0, blocks, YEARS, NOBS)
    print(f"world (landscape and weather of {len(YEARS)} years, blocks {blocks[0]} x {blocks[1]}): "
          f"{time.perf_counter() - start:.2f} s")
    print("| tiles | year | observations | render ms/tile | write ms/tile | tiles/s | MB/s gzip | MB/s raw |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for pix in (24, 48):
            per_side = 48 // pix
            for year in YEARS:
                render_s = write_s = 0.0
                written = raw = tiles = 0
                observations = []
                for row, col in np.ndindex(world.tiles):
                    start = time.perf_counter()
                    scene = render_tile(world, year, row, col)
                    render_s += time.perf_counter() - start
                    observations.append(len(scene.doy))
                    for r, c in np.ndindex(per_side, per_side):
                        path = Path(tmp) / f"{pix}_{year}_{tiles}.tfrecord.gz"
                        start = time.perf_counter()
                        tile = to_tile(scene, slice(r * pix, (r + 1) * pix), slice(c * pix, (c + 1) * pix), NOBS)
                        write_tile(path, tile, COMPRESSION_LEVEL)
                        write_s += time.perf_counter() - start
                        written += path.stat().st_size
                        raw += len(encode_tile(tile))
                        tiles += 1
                seconds = render_s + write_s
                print(f"| {pix} px | {year} | {min(observations)}-{max(observations)} | {1e3 * render_s / tiles:.1f} "
                      f"| {1e3 * write_s / tiles:.1f} | {tiles / seconds:.0f} | {written / 1e6 / seconds:.1f} "
                      f"| {raw / 1e6 / seconds:.0f} |")
        start = time.perf_counter()
        generate(Path(tmp) / "all", seed=0, blocks=blocks, years=YEARS, nobs=NOBS)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (Path(tmp) / "all").rglob("*") if f.is_file())
        n24 = len(os.listdir(Path(tmp) / "all" / "240" / "data16")) * len(YEARS)
        n48 = len(os.listdir(Path(tmp) / "all" / "480" / "data16")) * len(YEARS)
    print(f"generate() end to end: {n24} tiles of 24 px + {n48} tiles of 48 px, {size / 1e6:.0f} MB in "
          f"{seconds:.1f} s = {60 * n24 / seconds:.0f} tiles of 24 px per minute (with their 48 px root), "
          f"{size / 1e6 / seconds:.1f} MB/s")


if __name__ == "__main__":
    run(main)
