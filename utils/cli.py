"""Shared command-line pieces: one-line errors with exit status 2, warnings and notes, boolean flags."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


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
# the hidden temporary names that utils.fsio writes: .<name>.<pid>[.<random>].part
TEMPORARY_NAME = re.compile(r"\.(?P<name>[^/\s]+?)\.(?P<pid>\d+)(?:\.\w{8})?\.part\b")


def clean_message(message: str) -> str:
    """One line for the user: TensorFlow's internals (``{{function_node …}}``, ``[Op:…]``) left out, and the hidden
    temporary names of :mod:`utils.fsio` (``.name.<pid>.<random>.part``) given as the final ``name``."""
    message = TEMPORARY_NAME.sub(r"\g<name>", _TF_INTERNALS.sub("", message))
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
