"""Shared command-line pieces: one-line errors with exit status 2, warnings and notes, boolean flags, the dataset-root
default."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_ROOT = REPO_ROOT / "data" / "synthetic"


class UserError(Exception):
    """Bad input from the user. Reported as one line naming the file and the problem, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are :class:`UserError` (one line, exit status 2 through :func:`run`)."""

    def error(self, message: str):
        raise UserError(message)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: …)" to a flag's help unless its help already names the default or the default is None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def run(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run a script's ``main(argv)``; a :class:`UserError` becomes ``<prog>: error: <message>`` and exit 2."""
    prog = Path(sys.argv[0]).name
    try:
        main(argv)
    except UserError as err:
        print(f"{prog}: error: {clean_message(str(err))}", file=sys.stderr)
        sys.exit(2)


_TF_INTERNALS = re.compile(r"\s*(\{\{function_node [^}]*\}\}|\[Op:[^\]]*\]|\(defined at [^)]*\))")
_TEMPORARY_NAME = re.compile(r"\.([^/\s]+?)\.\d+\.(?:\w{8}\.)?part\b")


def clean_message(message: str) -> str:
    """One line for the user: TensorFlow's internals (``{{function_node …}}``, ``[Op:…]``) left out, and the hidden
    temporary names of :mod:`utils.fsio` (``.name.<pid>.<random>.part``) given as the final ``name``."""
    message = _TEMPORARY_NAME.sub(r"\1", _TF_INTERNALS.sub("", message))
    return " ".join(message.split())


def warn(message: str) -> None:
    """Print a one-line warning on stderr (suspicious input that may be right: say what and the numbers)."""
    print(f"warning: {clean_message(str(message))}", file=sys.stderr)


def note(message: str) -> None:
    """Print a one-line note on stderr (something the user should know about a choice made for them)."""
    print(f"note: {clean_message(str(message))}", file=sys.stderr)


def str2bool(value: str | bool) -> bool:
    """Parse a boolean flag: True/False/true/false/1/0/yes/no (the original's ``type=bool`` took any text as True)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "t"):
        return True
    if text in ("false", "0", "no", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_datadir_argument(parser: argparse.ArgumentParser) -> None:
    """The original's ``--datadir`` flag: a dataset root such as ``data_IJGI18/datasets/full/240``."""
    parser.add_argument(
        "--datadir",
        default=None,
        help="dataset root with dataset.ini, classes.txt, tileids/ and the data folders "
        "(default: $datadir, else the synthetic dataset under data/synthetic, generated on first use)",
    )


def resolve_datadir(value: str | os.PathLike | None, pix10m: int = 24) -> Path:
    """Return the dataset root to use: ``--datadir``, else ``$datadir``, else the embedded synthetic dataset.

    The synthetic dataset root matching the tile size (``240`` for 24 px, ``480`` for 48 px) is generated
    on first use.
    """
    value = value or os.environ.get("datadir") or None  # noqa: SIM112 (the original's variable name)
    if value is None:
        from utils.synthetic import ensure_default_dataset

        return ensure_default_dataset(pix10m)
    root = Path(value)
    if not root.is_dir():
        raise UserError(f"{root}: dataset root does not exist")
    if not (root / "dataset.ini").is_file():
        raise UserError(f"{root}: not a dataset root (no dataset.ini)")
    return root
