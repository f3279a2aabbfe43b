"""The hyper-parameters of the MTLCC network: the flags of the original ``seqencmodel.py`` (ORIGINAL.md §2.1).

:class:`ModelParams` holds every flag with the original's name, type and default (plus ``separate_weights``).
Values may be given as text (command line, ``params.ini``) or as Python values; both are parsed and checked the
same way, and a bad value raises :class:`utils.cli.UserError` naming the flag.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from utils.cli import UserError, str2bool
from utils.fsio import atomic_file

PARAMS_FILENAME = "params.ini"
SECTION = "flags"
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")  # dtype policies of a network (runtime, not saved)


def _parse_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None


def _parse_float(value: object) -> float:
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float(
            str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value!r}")
    return number


def _parse_str(value: object) -> str:
    if not isinstance(value, str):
        raise argparse.ArgumentTypeError(f"expected text, got {value!r}")
    return value.strip()


def _parse_optional_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise argparse.ArgumentTypeError(f"expected a path, got {value!r}")
    text = os.fspath(value).strip()
    return None if text in ("", "None") else text


def _parse_size(value: object) -> tuple[int, ...]:
    """A kernel size: ``"(3,3)"``, ``"3,3"``, ``"[3, 3]"`` or a tuple/list of positive integers."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = None
    if isinstance(parsed, int) and not isinstance(parsed, bool):
        parsed = (parsed,)
    if (
        not isinstance(parsed, (tuple, list))
        or not parsed
        or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in parsed)
    ):
        raise argparse.ArgumentTypeError(f"expected a tuple of positive integers such as (3,3), got {value!r}")
    return tuple(parsed)


def _flag(default: object, parse: Callable[[object], object], help_text: str) -> object:
    return field(default=default, metadata={"parse": parse, "help": help_text})


@dataclass(frozen=True)
class ModelParams:
    """Every flag of the original ``seqencmodel.py`` (same names and defaults) plus ``separate_weights``."""

    modelfolder: str | None = _flag(None, _parse_optional_str, "model folder: params.ini and model.txt go here")
    kernel: tuple[int, ...] = _flag((1, 3, 3), _parse_size, "unused (kept from the original)")
    classkernel: tuple[int, ...] = _flag((3, 3), _parse_size, "kernel of the classification convolution")
    cnn_activation: str = _flag("leaky_relu", _parse_str, "'leaky_relu' (slope 0.2) or 'relu' after batch norm")
    bidirectional: bool = _flag(True, str2bool, "bidirectional ConvRNN")
    convrnn_compression_filters: int = _flag(-1, _parse_int, "filters of a 1x1 conv+BN+activation before each "
                                             "ConvRNN layer; <= 0: none")
    convcell: str = _flag("gru", _parse_str, "recurrent cell: 'gru' or 'lstm'")
    convrnn_kernel: tuple[int, ...] = _flag((3, 3), _parse_size, "kernel of the recurrent convolutions")
    convrnn_filters: int = _flag(24, _parse_int, "filters F of the ConvRNN cell (the paper: 128 or 256)")
    recurrent_dropout_i: float = _flag(1.0, _parse_float, "keep probability of the cell input and state dropout "
                                       "(training only)")
    recurrent_dropout_c: float = _flag(1.0, _parse_float, "unused (as in the original)")
    convrnn_layers: int = _flag(1, _parse_int, "stacked ConvRNN layers")
    peephole: bool = _flag(False, str2bool, "LSTM peephole connections (ties the model to --pix10m)")
    convrnn_normalize: bool = _flag(True, str2bool, "layer normalisation inside the cell (else biases)")
    aggr_strat: str = _flag("state", _parse_str, "temporal aggregation: 'state' (the final states)")
    learning_rate: float = _flag(0.01, _parse_float, "Adam learning rate")
    beta1: float = _flag(0.9, _parse_float, "Adam beta1")
    beta2: float = _flag(0.999, _parse_float, "Adam beta2")
    epsilon: float = _flag(0.9, _parse_float, "Adam epsilon")
    expected_datatypes: str = _flag("(tf.float32, tf.float32, tf.float32, tf.float32, tf.float32, tf.int64)",
                                    _parse_str, "unused (the TF1 iterator's output types)")
    pix10m: int = _flag(24, _parse_int, "tile size in 10 m pixels (24 or 48); fixes only the peephole weights")
    num_bands_10m: int = _flag(4, _parse_int, "bands at 10 m")
    num_bands_20m: int = _flag(6, _parse_int, "bands at 20 m")
    num_bands_60m: int = _flag(3, _parse_int, "bands at 60 m")
    num_classes: int = _flag(17, _parse_int, "classes without 'unknown'")
    swap_memory: bool = _flag(True, str2bool, "let the recurrent loop swap activations to host memory (GPU)")
    separate_weights: bool = _flag(False, str2bool, "separate forward and backward cell weights (the released "
                                   "models share one cell)")

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            try:
                value = spec.metadata["parse"](getattr(self, spec.name))
            except argparse.ArgumentTypeError as err:
                raise UserError(f"--{spec.name}: {err}") from None
            object.__setattr__(self, spec.name, value)
        problem = self._problem()
        if problem:
            raise UserError(problem)

    def _problem(self) -> str | None:
        """The first invalid value, as ``--flag: message``, or None."""
        choices = {"cnn_activation": ("relu", "leaky_relu"), "convcell": ("gru", "lstm")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                return f"--{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}"
        if self.aggr_strat != "state":
            return (f"--aggr_strat: {self.aggr_strat!r} is not supported, only 'state' "
                    "(the original's 'avg_output' and 'sum_output' crashed)")
        for name in ("classkernel", "convrnn_kernel"):
            size = getattr(self, name)
            if len(size) != 2 or any(k % 2 == 0 for k in size):
                return f"--{name}: {size} must be two odd sizes such as (3,3)"
        positive = ("convrnn_filters", "convrnn_layers", "pix10m", "num_bands_10m", "num_bands_20m",
                    "num_bands_60m", "num_classes", "learning_rate", "epsilon")
        for name in positive:
            if getattr(self, name) <= 0:
                return f"--{name}: must be > 0, got {getattr(self, name)}"
        for name in ("recurrent_dropout_i", "recurrent_dropout_c"):
            if not 0.0 < getattr(self, name) <= 1.0:
                return f"--{name}: a keep probability must be in (0, 1], got {getattr(self, name)}"
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                return f"--{name}: must be in [0, 1), got {getattr(self, name)}"
        return None

    @property
    def input_channels(self) -> int:
        """Depth of the network input: all bands plus day of year and year."""
        return self.num_bands_10m + self.num_bands_20m + self.num_bands_60m + 2

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], source: str | os.PathLike | None = None) -> ModelParams:
        """Parameters from ``{flag: value}`` (text or Python values); unknown keys are ignored, missing ones default.

        A bad value raises :class:`UserError`, prefixed with ``source`` (a file name) when given.
        """
        names = {spec.name for spec in dataclasses.fields(cls)}
        try:
            return cls(**{name: value for name, value in values.items() if name in names})
        except UserError as err:
            raise UserError(f"{source}: {err}" if source is not None else str(err)) from None

    def as_dict(self) -> dict[str, object]:
        """``{flag: value}`` of every flag."""
        return {spec.name: getattr(self, spec.name) for spec in dataclasses.fields(self)}


def write_params_ini(path: str | os.PathLike, params: ModelParams) -> None:
    """Write ``params.ini`` as the original did: section ``[flags]``, one ``name = str(value)`` per flag."""
    config = configparser.ConfigParser(interpolation=None)
    config[SECTION] = {name: str(value) for name, value in params.as_dict().items()}
    with atomic_file(path) as tmp, open(tmp, "w") as handle:
        config.write(handle)


def read_params_ini(path: str | os.PathLike) -> ModelParams:
    """Read a ``params.ini`` written by this project or by the original TF1 code (extra absl/TF flags ignored)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read(path)
    except (configparser.Error, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a params.ini file ({' '.join(str(err).split())})") from None
    if not config.has_section(SECTION):
        raise UserError(f"{path}: no [{SECTION}] section")
    return ModelParams.from_mapping(dict(config[SECTION]), source=path)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every :class:`ModelParams` flag to ``parser``; values stay text until :func:`params_from_args`."""
    for spec in dataclasses.fields(ModelParams):
        is_bool = spec.metadata["parse"] is str2bool
        parser.add_argument(
            f"--{spec.name}",
            default=argparse.SUPPRESS,
            nargs="?" if is_bool else None,
            const="True" if is_bool else None,
            metavar="BOOL" if is_bool else None,
            help=f"{spec.metadata['help']} (default: {spec.default})",
        )


def params_from_args(args: argparse.Namespace) -> ModelParams:
    """The :class:`ModelParams` of parsed flags (flags not given keep their defaults)."""
    return ModelParams.from_mapping(vars(args))
