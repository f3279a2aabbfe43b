"""Train an MTLCC network in a model folder (spec §3), resuming from its latest checkpoint.

    python modelzoo/seqencmodel.py --modelfolder tmp/convgru128 --convrnn_filters 128 --convcell gru
    python train.py tmp/convgru128 --datadir data_IJGI18/datasets/full/240 --temporal_samples 30 --epochs 30 \\
        --shuffle True --batchsize 4 --train_on 2016 2017

Ctrl-C or SIGTERM stops after the current step and writes a checkpoint; the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def gpu_environment(argv: Sequence[str], environ: dict[str, str]) -> dict[str, str]:
    """The CUDA variables that ``-g/--gpu`` asks for. They must be set before TensorFlow starts, hence here.

    ``-g`` given: those GPUs. Otherwise ``$CUDA_VISIBLE_DEVICES`` is respected; when it is unset, the default
    strategy sees GPU 0 only (the original's default) and the others see every GPU.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-g", "--gpu", default=None)
    pre.add_argument("--strategy", default="default")
    known, _ = pre.parse_known_args(argv)
    if known.gpu is None and ("CUDA_VISIBLE_DEVICES" in environ or known.strategy != "default"):
        return {}
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0" if known.gpu is None else known.gpu}


if __name__ == "__main__":
    os.environ.update(gpu_environment(sys.argv[1:], dict(os.environ)))

from modelzoo.seqencmodel import MIXED_PRECISION  # noqa: E402
from utils.cli import (  # noqa: E402
    ArgumentParser,
    DefaultsHelpFormatter,
    run,
    str2bool,
)
from utils.dataset import add_datadir_argument, resolve_datadir  # noqa: E402
from utils.modelfolder import ModelFolder  # noqa: E402
from utils.training import (  # noqa: E402
    OPTIMIZER_FLAGS,
    SCHEDULES,
    STRATEGIES,
    VALIDATION_PARTITIONS,
    Trainer,
    TrainingOptions,
    configure_devices,
    make_strategy,
)


def build_parser() -> argparse.ArgumentParser:
    """The flags of the original ``train.py`` (same names and defaults) and this project's additions."""
    parser = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("modeldir", help="model folder with params.ini (modelzoo/seqencmodel.py); checkpoints, "
                                         "TensorBoard runs and training_log.csv are written here")
    add_datadir_argument(parser)
    parser.add_argument("-g", "--gpu", default=None,
                        help="GPUs to use (CUDA_VISIBLE_DEVICES), e.g. 0 or 0,1; default: $CUDA_VISIBLE_DEVICES, "
                             "else GPU 0 with the default strategy and every GPU with the others")
    parser.add_argument("-d", "--train_on", nargs="+", default=["2016"],
                        help="sections (years) of dataset.ini to train on, one step each in turn")
    parser.add_argument("-b", "--batchsize", type=int, default=16, help="global batch size (tiles per step)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the network's variables")
    bool_flag = dict(type=str2bool, nargs="?", const=True, metavar="BOOL")
    parser.add_argument("-s", "--shuffle", default=True, help="reshuffle the training files every epoch", **bool_flag)
    parser.add_argument("--augment", default=False,
                        help="apply a random one of the 8 symmetries of the square (flips, transposition) to each "
                             "training tile (the original: none)", **bool_flag)
    parser.add_argument("-e", "--epochs", type=int, default=1,
                        help="train until this many epochs (all training tiles of the training sections) are done")
    parser.add_argument("-t", "--temporal_samples", type=int, default=None,
                        help="train on a sorted random subset of this many time steps per tile (default: all)")
    parser.add_argument("--save_frequency", type=int, default=64, help="checkpoint every N steps")
    parser.add_argument("--summary_frequency", type=int, default=64, help="validate and log every N steps")
    parser.add_argument("-f", "--fold", type=int, default=0, help="fold of train_fold<k>/test_fold<k>.tileids")
    parser.add_argument("--prefetch", type=int, default=6, help="batches to prefetch (0: none)")
    parser.add_argument("--max_models_to_keep", type=int, default=5, help="checkpoints to keep (0: all)")
    parser.add_argument("--save_every_n_hours", type=float, default=1.0,
                        help="besides those, keep one checkpoint every N hours")
    parser.add_argument("--queue_capacity", type=int, default=256, help="ignored (unused by the original too)")
    parser.add_argument("--allow_growth", default=False, help="let GPU memory grow as needed", **bool_flag)
    parser.add_argument("--limit_batches", type=int, default=-1,
                        help="use only the first N*batchsize training tiles of each section (debugging)")
    for name in OPTIMIZER_FLAGS:
        parser.add_argument(f"--{name}", type=float, default=None, help=f"override Adam's {name} of params.ini")
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant",
                        help="learning rate: constant (the original) or cosine decay to 0 over --epochs")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed weights, file order and temporal samples, with deterministic ops: two runs "
                             "give identical checkpoints")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="default: one device; mirrored: the local GPUs (or --devices); multiworker: the "
                             "cluster in $TF_CONFIG")
    parser.add_argument("--devices", default=None,
                        help="devices of --strategy mirrored, comma-separated, e.g. GPU:0,GPU:1 (CPU:0,CPU:1 "
                             "splits the CPU)")
    parser.add_argument("--validate_on", nargs="+", default=None,
                        help="sections to validate on (default: those of --train_on)")
    parser.add_argument("--validation_partition", choices=VALIDATION_PARTITIONS, default="test",
                        help="partition of the validation tiles (test: test_fold<k>)")
    parser.add_argument("--validation_batches", type=int, default=8,
                        help="validation batches per section and summary (-1: the whole partition)")
    parser.add_argument("--mixed_precision", choices=MIXED_PRECISION, default="none",
                        help="convolutions in float16 (GPUs; dynamic loss scaling) or bfloat16 (GPUs, CPUs with "
                             "AVX512-BF16); norm statistics, recurrent state and softmax stay float32")
    parser.add_argument("--recompute", default=False,
                        help="recompute the recurrent activations in the backward pass (gradient checkpointing over "
                             "time): less memory for long sequences, about a third more time per step",
                        **bool_flag)
    parser.add_argument("--bn_recalibration_batches", type=int, default=0,
                        help="before every validation and checkpoint, replace the batch norms' moving averages by "
                             "their statistics under the current weights over N training batches per section, every "
                             "date of each tile as in evaluation ('precise BN'; 0: the original's moving averages)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Train, then exit; after SIGINT/SIGTERM exit with status 128 + the signal number."""
    args = build_parser().parse_args(argv)
    devices = [device.strip() for device in args.devices.split(",") if device.strip()] if args.devices else None
    configure_devices(devices, args.allow_growth)
    strategy = make_strategy(args.strategy, devices)
    folder = ModelFolder(args.modeldir)
    options = TrainingOptions(
        datadir=resolve_datadir(args.datadir, folder.params.pix10m), train_on=tuple(args.train_on),
        validate_on=tuple(args.validate_on) if args.validate_on else None, batchsize=args.batchsize,
        epochs=args.epochs, temporal_samples=args.temporal_samples, shuffle=args.shuffle, augment=args.augment,
        fold=args.fold, prefetch=args.prefetch, limit_batches=args.limit_batches, save_frequency=args.save_frequency,
        summary_frequency=args.summary_frequency, max_models_to_keep=args.max_models_to_keep,
        save_every_n_hours=args.save_every_n_hours, validation_partition=args.validation_partition,
        validation_batches=args.validation_batches, seed=args.seed, schedule=args.schedule, verbose=args.verbose,
        optimizer={name: getattr(args, name) for name in OPTIMIZER_FLAGS if getattr(args, name) is not None},
        mixed_precision=args.mixed_precision, recompute=args.recompute,
        bn_recalibration_batches=args.bn_recalibration_batches)
    trainer = Trainer(folder, options, strategy)
    print(trainer.describe())
    stopped = trainer.run()
    if stopped is not None:
        sys.exit(128 + stopped)


if __name__ == "__main__":
    run(main)
