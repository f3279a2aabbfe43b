"""Map a whole area with a trained model: a seamless crop map from Sentinel-2 scenes, in constant memory.

    python predict.py tmp/convgru64_48px S2A_MSIL1C_2016*.zip --outdir tmp/mymap
    python predict.py MODELDIR myarea/ --outdir tmp/map --part 2/4        # rows of part 2 of 4 (a batch array)
    python predict.py --merge tmp/map1 tmp/map2 tmp/map3 tmp/map4 --outdir tmp/map

The sources are those of tif2tfrecord.py (SAFE products, per-date band folders, stacks). Outputs in --outdir:
classes.tif, confidence.tif (and probabilities.tif), Cloud-Optimized GeoTIFFs; classes.png; summary.json. A stopped
run continues where it stopped when the same command runs again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from modelzoo.params import MIXED_PRECISION
from utils.bands import LEVELS
from utils.cli import ArgumentParser, UserError, run
from utils.mapfiles import CLASSES_PNG
from utils.prediction import SUMMARY, Settings, merge, predict
from utils.sentinel2 import SourceOptions

STRATEGIES = ("default", "mirrored")


def parse_part(text: str | None) -> tuple[int, int] | None:
    """``K/N`` as ``(K, N)`` with 1 <= K <= N."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UserError(f"--part {text}: expected K/N with 1 <= K <= N, e.g. 2/8")
    return int(match.group(1)), int(match.group(2))


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="predict.py", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="MODELDIR and the sources of the area (SAFE products, per-date "
                                                  "folders, stacks, folders of them); with --merge: the part maps")
    parser.add_argument("--outdir", required=True, help="output folder (must not exist)")
    parser.add_argument("--stride", type=int, default=None,
                        help="px between windows, a multiple of 6 (default: half the model's tile size; the tile "
                             "size gives today's tile-by-tile maps, with seams)")
    parser.add_argument("--year", type=int, default=None,
                        help="the year of the dates to use (default: the only year of the sources)")
    parser.add_argument("--batchsize", type=int, default=16, help="windows per forward pass (default 16)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write probabilities.tif, one band of blended scores per class")
    parser.add_argument("--labels", default=None,
                        help="raster of reference class ids on the 10 m grid: summary.json gets the accuracy")
    parser.add_argument("--classes", default=None,
                        help="classes.txt of the model's classes (default: the original's 17 crop classes)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint to restore (default: the latest)")
    parser.add_argument("--allow_untrained", action="store_true",
                        help="map with the randomly initialised network when the folder has no checkpoint")
    parser.add_argument("--mixed_precision", choices=MIXED_PRECISION, default="none",
                        help="convolutions in float16 or bfloat16, as in evaluate.py (default none)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="mirrored: split every batch over all local GPUs (default: one device)")
    parser.add_argument("--devices", default=None,
                        help="devices of --strategy mirrored, comma-separated, e.g. GPU:0,GPU:1 (CPU:0,CPU:1 splits "
                             "the CPU in two)")
    parser.add_argument("--part", default=None,
                        help="K/N: map only the rows of part K of N (equal to the same rows of the whole map)")
    parser.add_argument("--merge", action="store_true", help="assemble the maps of all --part K/N into --outdir")
    parser.add_argument("--level", choices=LEVELS, default=None, help="as in tif2tfrecord.py")
    parser.add_argument("--scale", type=float, default=1.0, help="as in tif2tfrecord.py")
    parser.add_argument("--offset", type=float, default=None, help="as in tif2tfrecord.py")
    parser.add_argument("--nodata", type=float, default=None, help="as in tif2tfrecord.py")
    args = parser.parse_args(argv)
    outdir = Path(args.outdir)
    if args.merge:
        summary = merge([Path(name) for name in args.inputs], outdir)
    else:
        if len(args.inputs) < 2:
            raise UserError("give the model folder and at least one source of the area")
        devices = tuple(d.strip() for d in args.devices.split(",") if d.strip()) if args.devices else None
        summary = predict(Settings(
            modeldir=Path(args.inputs[0]), sources=tuple(args.inputs[1:]), outdir=outdir, stride=args.stride,
            year=args.year, batchsize=args.batchsize, probabilities=args.probabilities,
            checkpoint=args.checkpoint, allow_untrained=args.allow_untrained, mixed_precision=args.mixed_precision,
            strategy=args.strategy, devices=devices, part=parse_part(args.part),
            classes=Path(args.classes) if args.classes else None, labels=Path(args.labels) if args.labels else None,
            options=SourceOptions(level=args.level, scale=args.scale, offset=args.offset, nodata=args.nodata)))
    area = summary["area"]
    mapped = sum(entry["pixels"] for entry in summary["classes"])
    print(f"map of {area['height_px']} x {area['width_px']} px ({area['km2']:.2f} km²): {mapped:,} px classified, "
          f"{summary['nodata_pixels']:,} px without data, {summary['seconds']:.0f} s")
    if "reference" in summary:
        reference = summary["reference"]
        print(f"against {reference['labels']}: overall accuracy {reference['overall_accuracy']:.3f}, kappa "
              f"{reference['kappa']:.3f} on {reference['num_pixels']:,} labelled px")
    print(f"outputs in {outdir}/: {', '.join(sorted(p.name for p in outdir.glob('*.tif')))}, {CLASSES_PNG}, "
          f"{SUMMARY}")


if __name__ == "__main__":
    run(main)
