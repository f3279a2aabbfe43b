"""``python -m utils.synthetic --outdir DIR [--seed N] [--blocks NY NX] [--nobs N]``: write the synthetic dataset;
``python -m utils.synthetic --scene DIR [--size PX] [--year YEAR] [--seed N]``: write a synthetic area as Sentinel-2
data as users have them (per-date band folders, one SAFE product, the truth)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from utils.cli import ArgumentParser, UserError, run
from utils.synthetic.render import DEFAULT_BLOCKS, DEFAULT_NOBS
from utils.synthetic.scene import DEFAULT_SIZE, DEFAULT_YEAR, summary, write_scene
from utils.synthetic.writer import STAMP, data_folder, generate

DATASET_ONLY = ("blocks", "nobs")
SCENE_ONLY = ("size", "year")


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m utils.synthetic",
                            description="Simulate a Sentinel-2 crop landscape and write it as the MTLCC dataset roots "
                                        "DIR/240 (24 px tiles) and DIR/480 (48 px tiles) (--outdir), or as the "
                                        "Sentinel-2 data of one year of an area as users have them (--scene).")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--outdir", help="folder that receives the roots 240 and 480")
    mode.add_argument("--scene", help="new folder that receives the per-date band folders, one SAFE product, "
                                      "truth.tif, classes.txt and scene.json")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    parser.add_argument("--blocks", type=int, nargs=2, metavar=("NY", "NX"),
                        help="--outdir: size in blocks of 1.92 km x 1.92 km (64 tiles of 24 px each); one in five "
                             f"is eval (default: {DEFAULT_BLOCKS[0]} {DEFAULT_BLOCKS[1]})")
    parser.add_argument("--nobs", type=int, help=f"--outdir: time steps per record (default: {DEFAULT_NOBS})")
    parser.add_argument("--size", type=int,
                        help=f"--scene: side of the square area in 10 m px, a multiple of 48 (default: {DEFAULT_SIZE})")
    parser.add_argument("--year", type=int, help=f"--scene: year of the acquisitions (default: {DEFAULT_YEAR})")
    args = parser.parse_args(argv)
    misplaced = [name for name in (SCENE_ONLY if args.outdir else DATASET_ONLY) if getattr(args, name) is not None]
    if misplaced:
        raise UserError(f"--{misplaced[0]}: only with {'--scene' if args.outdir else '--outdir'}")
    start = time.perf_counter()
    if args.scene:
        info = write_scene(args.scene, size=DEFAULT_SIZE if args.size is None else args.size,
                           year=DEFAULT_YEAR if args.year is None else args.year, seed=args.seed)
        print(summary(Path(args.scene), info, time.perf_counter() - start))
        return
    generate(args.outdir, seed=args.seed, blocks=tuple(args.blocks or DEFAULT_BLOCKS),
             nobs=DEFAULT_NOBS if args.nobs is None else args.nobs)
    seconds = time.perf_counter() - start
    total = 0
    for name in ("240", "480"):
        root = Path(args.outdir) / name
        info = json.loads((root / STAMP).read_text())
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        total += size
        years = ", ".join(f"{year}: {len(list((root / data_folder(int(year))).iterdir()))} tiles with {low}-{high} "
                          f"observations" for year, (low, high) in info["observations_min_max"].items())
        print(f"{root}: {info['pix10']} px tiles; {years}; {size / 1e6:.1f} MB")
    print(f"wrote {total / 1e6:.1f} MB in {seconds:.1f} s")


if __name__ == "__main__":
    run(main)
