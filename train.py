"""Train an MTLCC network in a model folder (ORIGINAL.md §3), resuming from its latest checkpoint.

    python modelzoo/seqencmodel.py --modelfolder tmp/convgru128 --convrnn_filters 128 --convcell gru
    python train.py tmp/convgru128 --datadir data_IJGI18/datasets/full/240 --temporal_samples 30 --epochs 30 \\
        --shuffle True --batchsize 4 --train_on 2016 2017

Ctrl-C or SIGTERM stops after the current step and writes a checkpoint; the same command resumes. Each run appends
its effective options to ``training_runs.jsonl`` in the model folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

from utils.cli import ArgumentParser, DefaultsHelpFormatter, run
from utils.options import add_options, from_args
from utils.trainoptions import TrainingOptions


def build_parser() -> argparse.ArgumentParser:
    """The flags of the original ``train.py`` (same names and defaults) and this project's additions, generated from
    :class:`utils.trainoptions.TrainingOptions`."""
    parser = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("modeldir", help="model folder with params.ini (modelzoo/seqencmodel.py); checkpoints, "
                                         "TensorBoard runs and training_log.csv are written here")
    add_options(parser, TrainingOptions)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Train, then exit; after SIGINT/SIGTERM exit with status 128 + the signal number."""
    args = build_parser().parse_args(argv)
    options = from_args(TrainingOptions, args)
    os.environ.update(options.cuda_environment(dict(os.environ)))  # before TensorFlow starts
    from utils.dataset import resolve_datadir
    from utils.distribution import configure_devices, make_strategy
    from utils.modelfolder import ModelFolder
    from utils.training import Trainer

    configure_devices(options.device_list, options.allow_growth)
    strategy = make_strategy(options.strategy, options.device_list)
    folder = ModelFolder(args.modeldir)
    options = dataclasses.replace(options, datadir=resolve_datadir(options.datadir, folder.params.pix10m))
    trainer = Trainer(folder, options, strategy)
    print(trainer.describe())
    stopped = trainer.run()
    if stopped is not None:
        sys.exit(128 + stopped)


if __name__ == "__main__":
    run(main)
