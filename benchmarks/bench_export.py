"""Time per tile of the exported network (export_model.py): the SavedModel and onnxruntime against the Keras model.

    python benchmarks/bench_export.py                                  # ConvGRU-64, 48 px, 50 dates, batch 1 and 8
    python benchmarks/bench_export.py --cell lstm --filters 128 --batches 4

The model has random weights (the speed does not depend on them); every tile has all dates valid. "Keras" is the
exported computation run in this process as a tf.function (the records' values in, scores out); "SavedModel" the
signature of ``tf.saved_model.load``; "onnxruntime" a CPU session with default options. The three run interleaved,
``--repeats`` times each after a warm-up call, and the table gives the fastest call per tile and the largest
difference of the exports' scores from the Keras model's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelzoo.params import ModelParams, write_params_ini  # noqa: E402
from utils.cli import run  # noqa: E402


def make_inputs(params: ModelParams, batch: int, dates: int, size: int) -> dict[str, np.ndarray]:
    """Random records' values of ``batch`` tiles with ``dates`` valid dates."""
    rng = np.random.default_rng(0)
    features = {key: rng.integers(1, 10_000, (batch, dates, size // factor, size // factor, bands))
                for key, factor, bands in (("x10", 1, params.num_bands_10m), ("x20", 2, params.num_bands_20m),
                                           ("x60", 6, params.num_bands_60m))}
    doy = np.sort(rng.choice(np.arange(1, 366), dates, replace=False))
    return {**features, "doy": np.tile(doy, (batch, 1)), "year": np.full((batch, dates), 2016)}


def seconds(call: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--size", type=int, default=48, help="tile size in px (default 48)")
    parser.add_argument("--dates", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import onnxruntime
    import tensorflow as tf

    from utils.export import export, serving_function
    from utils.modelfolder import ModelFolder, TrainingState

    params = ModelParams(convcell=args.cell, convrnn_filters=args.filters, pix10m=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        write_params_ini(folder / "params.ini", params)
        TrainingState(ModelFolder(folder).build_model()).save(ModelFolder(folder))
        started = time.perf_counter()
        export(folder, Path(tmp) / "model.savedmodel")
        savedmodel_s = time.perf_counter() - started
        started = time.perf_counter()
        export(folder, Path(tmp) / "model.onnx")
        onnx_s = time.perf_counter() - started
        model, _, _ = ModelFolder(folder).load_network()
        keras_forward = serving_function(model)
        signature = tf.saved_model.load(str(Path(tmp) / "model.savedmodel")).signatures["serving_default"]
        session = onnxruntime.InferenceSession(str(Path(tmp) / "model.onnx"), providers=["CPUExecutionProvider"])
        print(f"conv{args.cell}-{args.filters}, {args.size} px, {args.dates} dates; export (with its check) "
              f"{savedmodel_s:.1f} s as SavedModel, {onnx_s:.1f} s as ONNX; TensorFlow {tf.__version__}, "
              f"onnxruntime {onnxruntime.__version__}\n")
        print("| batch | Keras ms/tile | SavedModel ms/tile | onnxruntime ms/tile | SavedModel / Keras | "
              "onnxruntime / Keras | max score difference SavedModel, onnxruntime |")
        print("|---|---|---|---|---|---|---|")
        for batch in args.batches:
            features = make_inputs(params, batch, args.dates, args.size)
            tensors = {key: tf.constant(value) for key, value in features.items()}
            calls = {"keras": lambda t=tensors: keras_forward(**t)["scores"].numpy(),
                     "savedmodel": lambda t=tensors: signature(**t)["scores"].numpy(),
                     "onnxruntime": lambda f=features: session.run(["scores"], f)[0]}
            scores = {name: call() for name, call in calls.items()}  # also the warm-up: tracing, graph optimisation
            delta = {name: float(np.abs(scores[name] - scores["keras"]).max()) for name in calls}
            times = {name: [] for name in calls}
            for _ in range(args.repeats):
                for name, call in calls.items():
                    times[name].append(seconds(call))
            ms = {name: 1000 * min(values) / batch for name, values in times.items()}
            print(f"| {batch} | {ms['keras']:.1f} | {ms['savedmodel']:.1f} | {ms['onnxruntime']:.1f} | "
                  f"{ms['savedmodel'] / ms['keras']:.2f} | {ms['onnxruntime'] / ms['keras']:.2f} | "
                  f"{delta['savedmodel']:.1e}, {delta['onnxruntime']:.1e} |", flush=True)


if __name__ == "__main__":
    run(main)
