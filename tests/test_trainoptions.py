"""The options of a training run (utils/trainoptions.py) and the flags of train.py generated from them: the
original's names and defaults, booleans, GPU selection."""

from __future__ import annotations

import dataclasses

import pytest

import train
from utils.cli import run
from utils.options import from_args
from utils.trainoptions import TrainingOptions


def test_flags_have_the_original_names_and_defaults():
    args = train.build_parser().parse_args(["tmp/m"])
    assert (args.modeldir, args.datadir, args.gpu, args.train_on, args.batchsize, args.verbose) == \
        ("tmp/m", None, None, ("2016",), 16, False)
    assert (args.shuffle, args.epochs, args.temporal_samples, args.save_frequency, args.summary_frequency) == \
        (True, 1, None, 64, 64)
    assert (args.fold, args.prefetch, args.max_models_to_keep, args.learning_rate, args.save_every_n_hours) == \
        (0, 6, 5, None, 1.0)
    assert (args.queue_capacity, args.allow_growth, args.limit_batches, args.seed, args.strategy) == \
        (256, False, -1, None, "default")
    assert args.augment is False  # an addition: the original had no augmentation
    assert train.build_parser().parse_args(["tmp/m", "--augment"]).augment is True


def test_the_readme_command_parses():
    command = "tmp/convgru128 --datadir d/240 --temporal_samples 30 --epochs 30 --shuffle True --batchsize 4 " \
              "--train_on 2016 2017"
    argv = command.split()
    args = train.build_parser().parse_args(argv)
    assert (args.temporal_samples, args.epochs, args.shuffle, args.batchsize, args.train_on) == \
        (30, 30, True, 4, ["2016", "2017"])


@pytest.mark.parametrize(("text", "value"), [("True", True), ("true", True), ("1", True), ("False", False),
                                             ("false", False), ("0", False)])
def test_boolean_flags_parse_their_value(text, value):
    args = train.build_parser().parse_args(["m", "-s", text, "--allow_growth", text])
    assert args.shuffle is value and args.allow_growth is value


def test_a_bad_boolean_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(train.main, ["m", "--shuffle", "maybe"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith("error: argument -s/--shuffle: expected True or False, got 'maybe'\n")


@pytest.mark.parametrize(("argv", "environ", "expected"), [
    ([], {}, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0"}),
    (["-g", "1,2"], {}, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1,2"}),
    (["--gpu=3", "--strategy", "mirrored"], {}, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3"}),
    ([], {"CUDA_VISIBLE_DEVICES": "5"}, {}),
    (["--strategy", "mirrored"], {}, {}),
])
def test_gpu_selection(argv, environ, expected):
    options = from_args(TrainingOptions, train.build_parser().parse_args(["m", *argv]))
    assert options.cuda_environment(environ) == expected


def test_flags_are_generated_from_the_training_options():
    args = train.build_parser().parse_args(["m"])
    fields = {spec.name: spec.default for spec in dataclasses.fields(TrainingOptions)}
    assert {name: getattr(args, name) for name in fields} == fields
    options = from_args(TrainingOptions, train.build_parser().parse_args(["m", "--epsilon", "1e-7", "-d", "2017"]))
    assert (options.optimizer, options.train_on, options.validate_on) == ({"epsilon": 1e-7}, ("2017",), ("2017",))
