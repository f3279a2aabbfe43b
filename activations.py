"""Write the per-date activations of the recurrent cell for one tile as images and arrays (ORIGINAL.md §6).

    python activations.py data_IJGI18/models/convlstm256_48px/ data_IJGI18/datasets/demo/480/ tmp/activations \\
        --dataset 2016 --partition eval --tile 16494

The gates of both directions are computed by the model's own cell code over the tile's valid dates; the layout of
``OUTDIR/sample0`` is described in ``utils/activations.py`` and the README.
"""

from __future__ import annotations

from collections.abc import Sequence

from utils import activations
from utils.cli import ArgumentParser, UserError, run
from utils.dataset import Dataset
from utils.modelfolder import ModelFolder

DEFAULT_CHANNELS = 8


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder with params.ini and a checkpoint")
    parser.add_argument("datadir", help="dataset root, e.g. data_IJGI18/datasets/demo/480")
    parser.add_argument("outdir", help="output folder; OUTDIR/sample0 is replaced")
    parser.add_argument("-d", "--dataset", default="2016", help="section of dataset.ini (default 2016)")
    parser.add_argument("-p", "--partition", default="test", help="train, test or eval (default test)")
    parser.add_argument("-f", "--fold", type=int, default=0, help="fold of the train/test partitions (default 0)")
    parser.add_argument("-t", "--tile", type=int, default=None, help="tile id (default: the partition's first)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint name, e.g. model.ckpt-13824 (default latest)")
    parser.add_argument("--layer", type=int, default=1, help="ConvRNN layer whose gates are written (default 1)")
    parser.add_argument("--gates", default=None,
                        help="comma-separated gates to draw: LSTM i,j,f,o,c,h; GRU r,u,candidate,h (default all)")
    parser.add_argument("--channels", default=None,
                        help=f"cell channels to draw: indices and ranges like 0,5,10-12, or 'all' (default: the "
                             f"first {DEFAULT_CHANNELS}); the .npy arrays always hold every channel")
    parser.add_argument("--no-png", dest="png", action="store_false",
                        help="write only the .npy arrays and dates.csv (no PNGs or GIFs)")
    args = parser.parse_args(argv)

    folder = ModelFolder(args.model)
    params = folder.params
    if not 1 <= args.layer <= params.convrnn_layers:
        raise UserError(f"--layer {args.layer}: the model has {params.convrnn_layers} ConvRNN layer(s)")
    gates = activations.check_gates(args.gates.split(",") if args.gates else None, params.convcell)
    channels = list(range(min(DEFAULT_CHANNELS, params.convrnn_filters)))
    if args.channels is not None:
        channels = activations.parse_channels(args.channels, params.convrnn_filters)
    dataset = Dataset(args.datadir, args.dataset)
    tileid, batch, dates = activations.load_tile(dataset, args.partition, args.tile, args.fold)
    model, _, _ = folder.load_network(args.checkpoint)
    acts = activations.compute(model, batch, tileid, dates, args.layer)
    out = activations.write(args.outdir, acts, gates, channels, args.png)
    print(f"tile {tileid}: {len(dates)} dates, conv{params.convcell} F={params.convrnn_filters}, "
          f"directions {', '.join(acts.gates)}; wrote {out}")


if __name__ == "__main__":
    run(main)
