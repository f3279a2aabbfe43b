"""Compare the variables of two model folders' checkpoints by name and shape (ORIGINAL.md §5.2, ``compare_graphs.py``).

    python compare_graphs.py tmp/convgru128 tmp/convgru128_48px [--mode all|valid]

prints one line per variable, ``<source shape> <-> <target shape> name: <variable>``, with ``x`` where a
checkpoint lacks the variable: ``all`` lists the union of the names, ``valid`` only the variables of equal name and
shape (those ``copy_network_weights.py`` copies by default). Works on this project's and the original's checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

from utils.cli import ArgumentParser, run
from utils.modelfolder import checkpoint_shapes, comparison_lines, find_checkpoint

MODES = ("all", "valid")


def main(argv: Sequence[str] | None = None) -> list[str]:
    """Print the comparison of two model folders' checkpoints; returns the printed lines."""
    parser = ArgumentParser(description="Compare the variables (names and shapes) of two model folders' "
                                         "checkpoints.")
    parser.add_argument("source", help="source model folder (with a checkpoint)")
    parser.add_argument("target", help="target model folder (with a checkpoint; run init_graph.py first)")
    parser.add_argument("--mode", choices=MODES, default="all",
                        help="'all': every variable of either checkpoint; 'valid': only those of equal name and "
                             "shape (default: all)")
    parser.add_argument("--compatible", action="store_const", dest="mode", const="valid",
                        help="same as --mode valid")
    parser.add_argument("--sourcecheckpoint", default=None,
                        help="checkpoint of the source, e.g. model.ckpt-13824 (default: the latest)")
    parser.add_argument("--targetcheckpoint", default=None,
                        help="checkpoint of the target, e.g. model.ckpt-0 (default: the latest)")
    args = parser.parse_args(argv)
    source = checkpoint_shapes(find_checkpoint(args.source, args.sourcecheckpoint))
    target = checkpoint_shapes(find_checkpoint(args.target, args.targetcheckpoint))
    lines = comparison_lines(source, target, args.mode)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    run(main)
