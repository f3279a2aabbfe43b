"""Copy variables from one model folder's checkpoint into a new checkpoint of another (ORIGINAL.md §5.3).

    python copy_network_weights.py tmp/convgru128 tmp/convgru128_48px

copies every variable of equal name and shape (the 24 px → 48 px transfer copies everything: weights, batch-norm
statistics, Adam slots, counters) into ``TARGET/model.ckpt-<step>``, starting from the target's checkpoint (or,
without one, from a fresh initialisation of the target's ``params.ini``). ``-v 'src=trg,…'`` and
``-s 'srcscope=trgscope,…'`` copy only the mapped variables. Works on checkpoint files by name: the source may be
an original TF1 model folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import numpy as np

from utils.cli import ArgumentParser, UserError, run
from utils.modelfolder import (
    BETA_POWERS,
    COUNTERS,
    ModelFolder,
    comparison_lines,
    find_checkpoint,
    read_checkpoint,
    record_checkpoint,
    write_checkpoint,
)


def parse_mapping(text: str) -> dict[str, str]:
    """``'a=b,c=d'`` → ``{a: b, c: d}``; ``'a,b'`` → ``{a: a, b: b}`` (the original's format)."""
    mapping = {}
    for item in text.split(","):
        source, separator, target = (part.strip() for part in item.partition("="))
        target = target if separator else source
        if not source or not target:
            raise argparse.ArgumentTypeError(f"expected 'src=trg,…' or 'name,…', got {text!r}")
        if source in mapping and mapping[source] != target:
            raise argparse.ArgumentTypeError(f"{source!r} is mapped twice in {text!r}")
        mapping[source] = target
    return mapping


def select_variables(source: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray],
                     variables: Mapping[str, str] | None = None, scopes: Mapping[str, str] | None = None
                     ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Which variables to copy: ``({target name: source name}, [(name, why skipped)])``.

    Without mappings: every name in both checkpoints with equal shapes. ``variables`` maps source to target names
    (an unknown name or a shape mismatch is a :class:`UserError`); ``scopes`` maps source to target scopes: each
    source variable under ``srcscope/`` goes to the same relative name under ``trgscope/`` if the target has it
    with equal shape.
    """
    def shape(values: Mapping[str, np.ndarray], name: str) -> list[int]:
        return list(np.shape(values[name]))

    def shape_mismatch(src: str, trg: str) -> str | None:
        if shape(source, src) == shape(target, trg):
            return None
        where = "" if src == trg else f" of '{trg}'"
        return f"shape {shape(source, src)} in the source, {shape(target, trg)}{where} in the target"

    pairs, skipped = {}, []
    if not variables and not scopes:
        for name in sorted(set(source) | set(target)):
            if name not in target:
                skipped.append((name, "not in the target"))
            elif name not in source:
                skipped.append((name, "not in the source (the target's value is kept)"))
            elif problem := shape_mismatch(name, name):
                skipped.append((name, problem))
            else:
                pairs[name] = name
        return pairs, skipped
    for src, trg in (variables or {}).items():
        for name, values, side in ((src, source, "source"), (trg, target, "target")):
            if name not in values:
                raise UserError(f"-v: the {side} checkpoint has no variable '{name}'")
        if shape(source, src) != shape(target, trg):
            raise UserError(f"-v: '{src}' has shape {shape(source, src)} in the source but '{trg}' has shape "
                            f"{shape(target, trg)} in the target")
        pairs[trg] = src
    for src_scope, trg_scope in (scopes or {}).items():
        members = [name for name in sorted(source) if name.startswith(f"{src_scope}/")]
        if not members:
            raise UserError(f"-s: no variable of the source checkpoint is in scope '{src_scope}'")
        for src in members:
            trg = f"{trg_scope}{src[len(src_scope):]}"
            if trg not in target:
                skipped.append((src, f"no '{trg}' in the target"))
            elif problem := shape_mismatch(src, trg):
                skipped.append((src, problem))
            else:
                pairs[trg] = src
    return pairs, skipped


def main(argv: Sequence[str] | None = None) -> str | None:
    """Copy the selected variables; returns the written checkpoint's prefix (``None`` for --dry and --compare)."""
    parser = ArgumentParser(description="Copy variables of the source model's checkpoint into a new checkpoint "
                                         "of the target model (by default every variable of equal name and shape).")
    parser.add_argument("source", help="source model folder (with a checkpoint; may be an original TF1 model)")
    parser.add_argument("target", help="target model folder (with params.ini; its checkpoint is the starting point)")
    parser.add_argument("-v", "--variables", type=parse_mapping, default=None,
                        help="copy only these variables: 'src_name1=trg_name1,src_name2=trg_name2' or "
                             "'name1,name2' (same names)")
    parser.add_argument("-s", "--scopes", type=parse_mapping, default=None,
                        help="copy the variables of these scopes: 'src_scope1=trg_scope1,…' or 'scope1,scope2' "
                             "(same relative names inside the scopes)")
    parser.add_argument("--sourcecheckpoint", default=None,
                        help="checkpoint of the source, e.g. model.ckpt-13824 (default: the latest)")
    parser.add_argument("--targetcheckpoint", default=None,
                        help="checkpoint of the target to start from (default: the latest; without any, a fresh "
                             "initialisation of the target's params.ini)")
    parser.add_argument("-d", "--dry", action="store_true", help="only report what would be copied; write nothing")
    parser.add_argument("-c", "--compare", action="store_true",
                        help="print the variables and shapes of source and target (as compare_graphs.py) and stop")
    parser.add_argument("-r", "--reset", action="store_true",
                        help="set global_step and samples_seen to 0 (the new checkpoint is model.ckpt-0)")
    args = parser.parse_args(argv)

    source_prefix = find_checkpoint(args.source, args.sourcecheckpoint)
    folder = ModelFolder(args.target)
    target_prefix = folder.checkpoint(args.targetcheckpoint, required=False)
    source = read_checkpoint(source_prefix)
    if target_prefix is None:
        print(f"{folder.path} has no checkpoint: starting from a fresh initialisation of its params.ini")
        target = folder.initial_state().tensors()
    else:
        target = read_checkpoint(target_prefix)
    if args.compare:
        print("\n".join(comparison_lines({n: np.shape(v) for n, v in source.items()},
                                         {n: np.shape(v) for n, v in target.items()})))
        return None

    pairs, skipped = select_variables(source, target, args.variables, args.scopes)
    if not set(pairs) - {*COUNTERS, *BETA_POWERS}:
        raise UserError(f"{source_prefix}: no network variable to copy into {folder.path} (see compare_graphs.py)")
    for trg, src in sorted(pairs.items()):
        print(f"copy {src}{'' if src == trg else f' -> {trg}'} {list(np.shape(source[src]))}")
    for name, reason in skipped:
        print(f"skip {name}: {reason}")

    result = dict(target)
    for trg, src in pairs.items():
        result[trg] = np.asarray(source[src]).astype(np.asarray(target[trg]).dtype)
    if args.reset:
        for counter in COUNTERS:
            if counter in result:
                result[counter] = np.zeros_like(result[counter])
    step = int(result["global_step"]) if "global_step" in result else 0
    prefix = folder.checkpoint_prefix(step)
    summary = (f"{len(pairs)} variables from {source_prefix} into {prefix} (starting from "
               f"{target_prefix or 'a fresh initialisation'}, global_step {step})")
    if args.dry:
        print(f"dry run, nothing written: would copy {summary}")
        return None
    try:
        write_checkpoint(prefix, result)
        record_checkpoint(folder.path, prefix.name)
    except OSError as err:
        raise UserError(f"{folder.path}: cannot write the checkpoint ({err.strerror or err})") from None
    print(f"copied {summary}")
    return str(prefix)


if __name__ == "__main__":
    run(main)
