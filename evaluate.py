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

from utils.cli import ArgumentParser, DefaultsHelpFormatter, run
from utils.dataset import resolve_datadir
from utils.evaluation import Settings, evaluate
from utils.modelfolder import ModelFolder
from utils.options import add_options, from_args


def build_parser() -> argparse.ArgumentParser:
    """The original's flags (ORIGINAL.md §4) and this project's, generated from :class:`utils.evaluation.Settings`."""
    parser = ArgumentParser(prog="evaluate.py", description=__doc__.splitlines()[0],
                            formatter_class=DefaultsHelpFormatter)
    parser.add_argument("modeldir", type=Path,
                        help="model folder with params.ini and checkpoints (or its graph.meta)")
    add_options(parser, Settings)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags and run :func:`utils.evaluation.evaluate`."""
    args = build_parser().parse_args(argv)
    folder = ModelFolder(args.modeldir)
    evaluate(from_args(Settings, args, modeldir=folder.path,
                       datadir=resolve_datadir(args.datadir, folder.params.pix10m)))


if __name__ == "__main__":
    run(main)
