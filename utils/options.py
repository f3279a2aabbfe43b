"""Options dataclasses as the one source of a script's flags: each field carries its flag's help, short names and
parsing in its metadata, :func:`add_options` generates the argparse arguments from them (defaults written once, in
the dataclass), :func:`from_args` builds the dataclass back from the parsed flags, and :func:`as_record` gives the
JSON-ready values that a run records with its outputs."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence

from utils.cli import str2bool

DATADIR_HELP = ("dataset root with dataset.ini, classes.txt, tileids/ and the data folders (default: $datadir, else "
                "the synthetic dataset under data/synthetic, generated on first use)")


def option(default: object, help: str, *, short: Sequence[str] = (), type: Callable | None = None,
           choices: Sequence[str] | None = None, many: bool = False, boolean: bool = False, switch: bool = False,
           metavar: str | None = None, flag: str | None = None) -> dataclasses.Field:
    """A dataclass field that is also the flag ``--<field name>`` (or ``--<flag>``) and ``short`` names such as
    ``-b``.

    ``many``: one or more values (``nargs='+'``, stored as a tuple); ``boolean``: ``True``/``False`` text, the bare
    flag meaning True; ``switch``: a bare flag without value (``store_true``).
    """
    metadata = {"help": help, "short": tuple(short), "type": type, "choices": tuple(choices) if choices else None,
                "many": many, "boolean": boolean, "switch": switch, "metavar": metavar, "flag": flag}
    return dataclasses.field(default=default, metadata={"option": metadata})


def datadir_option() -> dataclasses.Field:
    """The original's ``--datadir`` flag (``train.py``, ``evaluate.py``): a dataset root, resolved by
    :func:`utils.dataset.resolve_datadir`."""
    return option(None, DATADIR_HELP)


def _options(cls: type) -> list[tuple[dataclasses.Field, dict]]:
    return [(spec, spec.metadata["option"]) for spec in dataclasses.fields(cls) if "option" in spec.metadata]


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add a flag for every :func:`option` field of the dataclass ``cls``."""
    for spec, meta in _options(cls):
        kwargs: dict[str, object] = {"default": spec.default, "help": meta["help"]}
        if meta["switch"]:
            kwargs["action"] = "store_true"
        elif meta["boolean"]:
            kwargs.update(type=str2bool, nargs="?", const=True, metavar=meta["metavar"] or "BOOL")
        else:
            kwargs.update(type=meta["type"], choices=meta["choices"], metavar=meta["metavar"])
            if meta["many"]:
                kwargs["nargs"] = "+"
        parser.add_argument(*meta["short"], f"--{meta['flag'] or spec.name}", dest=spec.name, **kwargs)


def from_args(cls: type, args: argparse.Namespace, **values: object):
    """The dataclass ``cls`` of parsed flags; ``values`` set or replace fields (e.g. a resolved path)."""
    given = {spec.name: getattr(args, spec.name) for spec, _ in _options(cls) if hasattr(args, spec.name)}
    for spec, meta in _options(cls):
        if meta["many"] and isinstance(given.get(spec.name), list):
            given[spec.name] = tuple(given[spec.name])
    return cls(**{**given, **values})


def as_record(options: object) -> dict[str, object]:
    """The fields of a dataclass as JSON values: paths as text, tuples as lists."""
    def plain(value: object) -> object:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, (tuple, list)):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    return {spec.name: plain(getattr(options, spec.name)) for spec in dataclasses.fields(options)}
