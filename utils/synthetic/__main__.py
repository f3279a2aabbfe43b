"""``python -m utils.synthetic --outdir DIR [--seed N] [--blocks NY NX] [--nobs N]``: write the synthetic dataset."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from utils.cli import ArgumentParser, run
from utils.synthetic.render import DEFAULT_BLOCKS, DEFAULT_NOBS
from utils.synthetic.writer import STAMP, data_folder, generate


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m utils.synthetic",
                                     description="Simulate a Sentinel-2 crop landscape and write it as the MTLCC "
                                                 "dataset roots DIR/240 (24 px tiles) and DIR/480 (48 px tiles).")
    parser.add_argument("--outdir", required=True, help="folder that receives the roots 240 and 480")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    parser.add_argument("--blocks", type=int, nargs=2, default=DEFAULT_BLOCKS, metavar=("NY", "NX"),
                        help="size in blocks of 1.92 km x 1.92 km (64 tiles of 24 px each); one in five is eval "
                             "(default: %(default)s)")
    parser.add_argument("--nobs", type=int, default=DEFAULT_NOBS, help="time steps per record (default: 46)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    generate(args.outdir, seed=args.seed, blocks=tuple(args.blocks), nobs=args.nobs)
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
