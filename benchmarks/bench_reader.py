"""Speed and peak memory of the Sentinel-2 reader and of ``tif2tfrecord.py`` on areas of growing size, from
per-date folders of GeoTIFF or JPEG 2000 band files at native resolution and from L1C SAFE products (baseline
04.00).

    python benchmarks/bench_reader.py
    python benchmarks/bench_reader.py --sizes 480 960 1920 --dates 12 --formats tif jp2 safe

The scenes are smooth random fields with noise in the DN range of real L1C data (written once into
``tmp/bench_reader/``). Every row runs in a fresh process, so that its peak RSS is its own: ``read`` reads the area
block by block (``Area.read``) and cleans every 48 px tile (dates dropped, gaps filled); ``convert`` is the whole of
``tif2tfrecord.py`` (reading, cleaning, GZIP records in a staging folder, geotransforms.csv).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fresh_process import peak_rss_mib, reset_peak_rss, run_fresh  # noqa: E402

from tests.s2fixtures import band_images, write_band_folder, write_safe  # noqa: E402
from utils.bands import BANDS  # noqa: E402
from utils.cli import run  # noqa: E402
from utils.georef import GeoRef  # noqa: E402

CACHE = ROOT / "tmp" / "bench_reader"
TILE = 48
GRID = GeoRef((600000.0, 10.0, 0.0, 5300040.0, 0.0, -10.0), 32632)


def scene(size: int, seed: int) -> np.ndarray:
    """(size, size, 13) DN: a field smooth over ~160 m per band, plus pixel noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(500, 4500, (size // 16 + 1, size // 16 + 1, len(BANDS)))
    smooth = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:size, :size]
    return np.rint(smooth + rng.normal(0, 40, smooth.shape)).clip(1, 20000)


def sources(kind: str, size: int, dates: int) -> Path:
    """The benchmark's sources, written on first use."""
    folder = CACHE / f"{kind}_{size}_{dates}"
    if folder.is_dir():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=".part"))
    for t in range(dates):
        date = datetime.date(2022, 3, 1) + datetime.timedelta(days=10 * t)
        images = band_images(scene(size, t))
        if kind == "safe":
            write_safe(tmp, date, images, GRID)
        else:
            write_band_folder(tmp / f"{date:%Y%m%d}", images, GRID, f".{kind}", date=date)
    tmp.rename(folder)
    return folder


def child(mode: str, folder: str) -> dict:
    """Read or convert one area in this process; seconds, peak RSS and the number of tiles."""
    import tif2tfrecord
    from utils.arearecords import TileGrid
    from utils.sentinel2 import SourceOptions, open_area

    reset_peak_rss()
    before = peak_rss_mib()
    start = time.perf_counter()
    offset = SourceOptions(offset=-1000)
    if mode == "read":
        with open_area([folder], offset) as area:
            grid = TileGrid.of(area.height, area.width, TILE, "pad")
            side = area.block_side(TILE)
            for top in range(0, grid.rows * TILE, side):
                for left in range(0, grid.cols * TILE, side):
                    block = area.read(top, left, min(side, grid.rows * TILE - top), min(side, grid.cols * TILE - left))
                    for r in range(0, block.shape[0], TILE):
                        for c in range(0, block.shape[1], TILE):
                            block.window(r, c, TILE, TILE).cleaned()
        tiles = grid.rows * grid.cols
    else:
        with tempfile.TemporaryDirectory() as out:
            tif2tfrecord.main([folder, "--outdir", f"{out}/data22", "--offset", "-1000"])
            tiles = len(list(Path(out, "data22").iterdir()))
    return {"seconds": time.perf_counter() - start, "before": before, "peak": peak_rss_mib(), "tiles": tiles}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[480, 1920], help="area sides in 10 m px")
    parser.add_argument("--dates", type=int, default=12)
    parser.add_argument("--formats", nargs="+", default=["tif", "jp2", "safe"], choices=["tif", "jp2", "safe"])
    parser.add_argument("--gdal_cache", type=int, default=None,
                        help="GDAL_CACHEMAX in MiB for the rows (default: GDAL's, 5 %% of the RAM)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.gdal_cache is not None:
        os.environ["GDAL_CACHEMAX"] = str(args.gdal_cache)
    cache = f"GDAL_CACHEMAX {args.gdal_cache} MiB" if args.gdal_cache else "GDAL's default cache (5 % of the RAM)"
    print(f"{args.dates} dates, 13 bands at native resolution, 48 px tiles, {cache}; peak RSS in MiB\n")
    print("| source | area px | km² | mode | seconds | Mpx·dates/s | tiles/s | peak RSS | peak − start |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in args.formats:
        for size in args.sizes:
            folder = sources(kind, size, args.dates)
            for mode in ("read", "convert"):
                result = run_fresh(__file__, mode, folder)
                rate = size * size * args.dates / 1e6 / result["seconds"]
                print(f"| {kind} | {size}² | {size * size / 1e4:.2f} | {mode} | {result['seconds']:.1f} | "
                      f"{rate:.2f} | {result['tiles'] / result['seconds']:.1f} | {result['peak']:.0f} | "
                      f"{result['peak'] - result['before']:.0f} |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run(main)
