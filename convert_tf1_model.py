"""Convert a model folder of the original TF1 code (e.g. the released ``data_IJGI18/models/convgru256``) into a clean
model folder of this project (ORIGINAL.md §13 item 13).

    python convert_tf1_model.py data_IJGI18/models/convlstm256_48px models/convlstm256_48px [--no-optimizer]

Every script here reads the original folders directly; converting gives a folder with a ``params.ini`` of this
project's flags only (no absl/TF flags), ``model.txt``, and one checkpoint with exactly the network's variables
(optionally without Adam's state). It reports every variable it mapped and every checkpoint entry it did not use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from modelzoo.params import PARAMS_FILENAME, write_params_ini
from modelzoo.seqencmodel import SUMMARY_FILENAME, make_optimizer, model_summary
from utils.cli import ArgumentParser, UserError, run
from utils.fsio import atomic_dir
from utils.modelfolder import (
    ADAM_SLOTS,
    COUNTERS,
    TF1_BN_ACCUMULATORS,
    ModelFolder,
    TrainingState,
    checkpoint_shapes,
    export_keras,
)

KERAS_FILENAME = "model.keras"


def _role(name: str, variable) -> str:
    if name in COUNTERS:
        return "counter"
    if name.rpartition("/")[2] in ADAM_SLOTS:
        return "Adam slot"
    return "weight" if variable.trainable else "batch-norm statistic"


def _why_unused(name: str) -> str:
    """Why a checkpoint entry was left out (``TrainingState.restore`` rejects any other unused entry)."""
    if name.endswith(TF1_BN_ACCUMULATORS):
        return "zero-debias accumulator of TF1 batch norm (its debiased value is the moving mean)"
    return "Adam state, left out with --no-optimizer"


def main(argv: Sequence[str] | None = None) -> str:
    """Convert SRC into DST; returns the written checkpoint's prefix."""
    parser = ArgumentParser(description="Convert an original TF1 MTLCC model folder (params.ini, checkpoint) into "
                                         "a model folder of this project.")
    parser.add_argument("source", help="model folder of the original code (params.ini with [flags], checkpoint)")
    parser.add_argument("target", help="new model folder to write (must not exist unless --force)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to convert, e.g. model.ckpt-131650 (default: the latest)")
    parser.add_argument("--no-optimizer", action="store_true",
                        help="leave out Adam's slots and beta powers (inference or fresh fine-tuning only)")
    parser.add_argument("--keras", action="store_true", help=f"also write the network as {KERAS_FILENAME}")
    parser.add_argument("--force", action="store_true", help="replace the target folder if it exists")
    args = parser.parse_args(argv)

    source = ModelFolder(args.source)
    prefix = source.checkpoint(args.checkpoint)
    target = Path(args.target)
    if target.resolve() == source.path.resolve():
        raise UserError(f"{target}: the target must be another folder than the source")
    if target.exists() and not args.force:
        raise UserError(f"{target}: already exists (use --force to replace it)")
    params = dataclasses.replace(source.params, modelfolder=str(target))
    model = source.build_model()
    state = TrainingState(model, None if args.no_optimizer else make_optimizer(params))
    unused = state.restore(prefix, include_optimizer=not args.no_optimizer)

    shapes = checkpoint_shapes(prefix)
    mapped = {name: variable for name, variable in state.variables().items() if name in shapes}
    for name, variable in sorted(mapped.items()):
        print(f"mapped {name} {list(shapes[name])}: {_role(name, variable)}")
    for name in sorted(unused):
        print(f"unused {name} {list(shapes[name])}: {_why_unused(name)}")
    try:
        with atomic_dir(target) as staging:
            write_params_ini(staging / PARAMS_FILENAME, params)
            (staging / SUMMARY_FILENAME).write_text(model_summary(model))
            written = Path(state.save(ModelFolder(staging), max_to_keep=0))
            if args.keras:
                export_keras(model, staging / KERAS_FILENAME)
    except OSError as err:
        raise UserError(f"{target}: cannot write the model folder ({err.strerror or err})") from None
    adam = ("without Adam state" if args.no_optimizer else "with Adam state" if len(mapped) > len(
        state.variables(include_optimizer=False)) else "with a fresh Adam state (the source has none)")
    print(f"wrote {target}: {written.name} from {prefix}, {len(state.variables(include_optimizer=False))} network "
          f"variables and counters, {adam}")
    return str(target / written.name)


if __name__ == "__main__":
    run(main)
