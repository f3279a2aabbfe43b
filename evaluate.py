"""Evaluate a trained MTLCC model on a dataset partition: per-tile GeoTIFFs and PNG maps, accuracy reports, mosaics.

    python evaluate.py tmp/convgru128 \\
        --datadir data_IJGI18/datasets/demo/240 \\
        --storedir tmp/eval/24 \\
        --writetiles \\
        --writeconfidences \\
        --batchsize 1 \\
        --dataset 2017

The output files are listed in utils/evaluation.py and the README.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from modelzoo.seqencmodel import MIXED_PRECISION
from utils.cli import ArgumentParser, run
from utils.dataset import PARTITIONS, add_datadir_argument, resolve_datadir
from utils.evaluation import Settings, evaluate
from utils.modelfolder import ModelFolder


def build_parser() -> argparse.ArgumentParser:
    """The original's flags (spec §4) plus ``--partition``, ``--fold``, ``--checkpoint``, ``--allow_untrained``,
    ``--mixed_precision`` and ``--mosaic``."""
    parser = ArgumentParser(prog="evaluate.py", description=__doc__.splitlines()[0])
    parser.add_argument("modeldir", help="model folder with params.ini and checkpoints (or its graph.meta)")
    add_datadir_argument(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="print the timings of the evaluation")
    parser.add_argument("-t", "--writetiles", action="store_true",
                        help="write per-tile GeoTIFFs (prediction, ground_truth, mask, loss) and PNG maps "
                             "(png/prediction, png/ground_truth, png/error, png/confidence, png/legend.png)")
    parser.add_argument("-c", "--writeconfidences", action="store_true",
                        help="write per-tile GeoTIFFs of every class's softmax score (confidences/<k>_<class>/)")
    parser.add_argument("-b", "--batchsize", type=int, default=32, help="tiles per batch (default 32)")
    parser.add_argument("-d", "--dataset", default="2016", help="section of dataset.ini, e.g. 2016 or 2017 "
                                                               "(default 2016)")
    parser.add_argument("--prefetch", type=int, default=6, help="batches prepared ahead (default 6)")
    parser.add_argument("--storedir", default="tmp", help="output folder (default tmp)")
    parser.add_argument("--partition", choices=PARTITIONS, default="eval",
                        help="tile ids to evaluate: tileids/eval.tileids (default), or train/test of --fold")
    parser.add_argument("--fold", type=int, default=0, help="fold of the train/test partitions (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to restore, e.g. model.ckpt-13824 (default: the latest)")
    parser.add_argument("--allow_untrained", action="store_true",
                        help="evaluate the randomly initialised network when the folder has no checkpoint")
    parser.add_argument("--mixed_precision", choices=MIXED_PRECISION, default="none",
                        help="convolutions in float16 or bfloat16 (GPUs; bfloat16 also speeds up CPUs with "
                             "AVX512-BF16); norm statistics, recurrent state and softmax stay float32 (default none)")
    parser.add_argument("--mosaic", action="store_true",
                        help="merge every per-tile GeoTIFF product into one Cloud-Optimized GeoTIFF "
                             "(prediction.tif, ..., confidences/<k>_<class>.tif); implies --writetiles")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags and run :func:`utils.evaluation.evaluate`."""
    args = build_parser().parse_args(argv)
    folder = ModelFolder(args.modeldir)
    evaluate(Settings(
        modeldir=folder.path, datadir=resolve_datadir(args.datadir, folder.params.pix10m),
        storedir=Path(args.storedir), section=args.dataset, partition=args.partition, fold=args.fold,
        batchsize=args.batchsize, prefetch=args.prefetch, writetiles=args.writetiles,
        writeconfidences=args.writeconfidences, mosaic=args.mosaic, checkpoint=args.checkpoint,
        allow_untrained=args.allow_untrained, verbose=args.verbose, mixed_precision=args.mixed_precision))


if __name__ == "__main__":
    run(main)
