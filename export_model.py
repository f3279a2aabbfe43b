"""Export a trained model as a SavedModel or an ONNX file that runs without this project (TF Serving, onnxruntime).

    python export_model.py tmp/convgru128_48px tmp/convgru128_48px.savedmodel
    python export_model.py data_IJGI18/models/convlstm256_48px convlstm256_48px.onnx --classes classes.txt

Inputs are the records' int64 values (x10, x20, x60 in DN, doy, year), outputs the softmax scores and the class index;
the class ids and names travel with the export. Details in utils/export.py and the README.
"""

from __future__ import annotations

from collections.abc import Sequence

from utils.cli import ArgumentParser, run
from utils.export import DEFAULT_OPSET, FORMATS, SIGNATURE, export


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="export_model.py", description=__doc__.splitlines()[0])
    parser.add_argument("modeldir", help="model folder with params.ini and a checkpoint (ours or the original's)")
    parser.add_argument("out", help="output: a SavedModel folder, or an ONNX file; must not exist")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="default: onnx for an output ending in .onnx, else savedmodel")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to export, e.g. model.ckpt-13824 (default: the latest)")
    parser.add_argument("--classes", default=None,
                        help="classes.txt of the model's classes, stored with the export (default: the original's "
                             "17 crop classes)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    args = parser.parse_args(argv)
    done = export(args.modeldir, args.out, args.format, args.checkpoint, args.classes, args.opset)
    kind = f"an ONNX file (opset {done.opset})" if done.format == "onnx" else f"a SavedModel (signature '{SIGNATURE}')"
    print(f"exported {done.checkpoint} (step {done.step}) as {kind}: {done.path}")
    print(f"checked on two random tiles: the scores differ from the Keras model's by at most {done.difference:.1e}")


if __name__ == "__main__":
    run(main)
