"""Write the initial checkpoint ``model.ckpt-0`` of a model folder (ORIGINAL.md §5.1, ``init_graph.py``).

    python init_graph.py tmp/convgru128_48px            # or, as in the original README: .../graph.meta

builds the network that ``params.ini`` describes (freshly initialised, as ``train.py`` would), creates Adam's slots,
sets ``global_step`` and ``samples_seen`` to 0 and saves everything by the original TF1 names. The other weight
tools (``compare_graphs.py``, ``copy_network_weights.py``) then have a checkpoint to work on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from utils.cli import ArgumentParser, UserError, run
from utils.modelfolder import ModelFolder


def main(argv: Sequence[str] | None = None) -> str:
    """Write ``<folder>/model.ckpt-0``; returns its prefix."""
    parser = ArgumentParser(description="Initialise the network of a model folder's params.ini and write its "
                                         "step-0 checkpoint (weights, Adam slots, counters at 0).")
    parser.add_argument("modelfolder", help="model folder with params.ini (or its graph.meta / params.ini path, "
                                            "as in the original README)")
    parser.add_argument("--force", action="store_true", help="write model.ckpt-0 even if the folder already has "
                                                             "checkpoints (they stay on disk; model.ckpt-0 becomes "
                                                             "the latest)")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the initialisation")
    args = parser.parse_args(argv)
    folder = ModelFolder(args.modelfolder)
    existing = folder.checkpoint(required=False)
    if existing is not None and not args.force:
        raise UserError(f"{folder.path}: already has checkpoint {Path(existing).name} (use --force to write "
                        "model.ckpt-0 anyway)")
    state = folder.initial_state(seed=args.seed)
    try:
        prefix = state.save(folder, max_to_keep=0)  # keep all: --force must not delete the folder's checkpoints
    except OSError as err:
        raise UserError(f"{folder.path}: cannot write the checkpoint ({err.strerror or err})") from None
    params = folder.params
    print(f"wrote {prefix} (conv{params.convcell} F={params.convrnn_filters}: network, Adam slots, global_step 0)")
    return prefix


if __name__ == "__main__":
    run(main)
