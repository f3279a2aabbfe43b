"""The network of a model folder as a SavedModel or an ONNX file that runs without this project (``export_model.py``).

Both take the records' values and return the class scores:

- inputs ``x10`` (B, T, H, W, 4), ``x20`` (B, T, H/2, W/2, 6), ``x60`` (B, T, H/6, W/6, 3) in L1C DN, ``doy``
  (B, T) day of year, 0 on the padded dates at the end, and ``year`` (B, T), e.g. 2017; all int64, as the records
  hold them. Batch, dates, height and width are free (a peephole LSTM fixes height and width to ``pix10m``).
- the pipeline's normalisation inside (DN × 1e-4, doy / 365, year − 2016), batch norm in inference mode.
- outputs ``scores`` (B, H, W, K) float32 softmax (channel k is class index k + 1) and ``class_index`` (B, H, W)
  int32, 1..K; the raw class id of class index i is ``class_ids[i]``.

The SavedModel has the one signature ``serving_default``, the variables ``class_ids`` and ``class_names`` and
``assets/metadata.json``; the ONNX file has the same metadata in its ``metadata_props``. ONNX is written by tf2onnx,
the maintained TensorFlow converter, from the graph of a ``tf.function``: Keras 3 models fail its ``from_keras``, but
the function path works with TF 2.21. For it the recurrence is traced as one plain ``tf.while_loop``, which becomes
an ONNX ``Loop`` over the dates, and the layer norms' means one axis at a time (:func:`_onnx_tracing`). Every export
is checked against the Keras model before it is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import tensorflow as tf

from modelzoo import cells, seqencmodel
from modelzoo.params import ModelParams
from modelzoo.seqencmodel import SequentialEncoder
from utils.classes import ClassList, load_classes
from utils.cli import UserError
from utils.dataset import normalized
from utils.fsio import atomic_dir, atomic_file
from utils.modelfolder import ModelFolder

FORMATS = ("savedmodel", "onnx")
DEFAULT_OPSET = 17
SIGNATURE = "serving_default"
METADATA_FILE = "metadata.json"
CHECK_TOLERANCE = 1e-4  # largest score difference to the Keras model an export may show (float32 reorderings)
CHECK_DATES = (4, 2)  # valid dates of the two random tiles every export is checked on
# names of the free dimensions of the ONNX inputs and outputs
DIMENSIONS = {"x10": ("batch", "dates", "height", "width"), "x20": ("batch", "dates", "height/2", "width/2"),
              "x60": ("batch", "dates", "height/6", "width/6"), "doy": ("batch", "dates"),
              "year": ("batch", "dates"), "scores": ("batch", "height", "width"),
              "class_index": ("batch", "height", "width")}


@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote: the format, the path, the checkpoint and the check against the Keras model."""

    format: str
    path: Path
    checkpoint: str
    step: int
    difference: float
    opset: int | None


def input_signature(params: ModelParams) -> list[tf.TensorSpec]:
    """The int64 inputs x10, x20, x60, doy, year; height and width are free unless LSTM peepholes fix them."""
    fixed = params.convcell == "lstm" and params.peephole
    bands = {"x10": (1, params.num_bands_10m), "x20": (2, params.num_bands_20m), "x60": (6, params.num_bands_60m)}
    specs = []
    for key, (factor, count) in bands.items():
        side = params.pix10m // factor if fixed else None
        specs.append(tf.TensorSpec([None, None, side, side, count], tf.int64, key))
    return specs + [tf.TensorSpec([None, None], tf.int64, key) for key in ("doy", "year")]


def serving_function(model: SequentialEncoder) -> tf.types.experimental.PolymorphicFunction:
    """The exported computation: records' values in, ``scores`` and ``class_index`` out (inference mode)."""

    @tf.function(input_signature=input_signature(model.params))
    def serve(x10, x20, x60, doy, year):
        logits = model(normalized({"x10": x10, "x20": x20, "x60": x60, "doy": doy, "year": year}), training=False)
        return {"scores": tf.nn.softmax(logits), "class_index": tf.argmax(logits, axis=-1, output_type=tf.int32) + 1}

    return serve


def _inference_loop(cell, inputs: tf.Tensor, lengths: tf.Tensor, *_):
    """:func:`modelzoo.cells.run_recurrence` in inference (no dropout masks, gates or recompute) as tf2onnx can
    convert it: one ``tf.while_loop`` from step 0 and the zero state, in which samples past their length keep their
    state through ``tf.where``. The model's own loop runs step 0 before the loop and skips finished samples with a
    ``tf.cond`` whose branches pass their inputs through, a graph tf2onnx 1.17 fails on. The values are the same:
    every step is the cell's own :meth:`step`, and the recurrent convolution of the zero state adds zeros."""
    shape = tf.shape(inputs)
    steps, batch, height, width = shape[0], shape[1], shape[2], shape[3]
    iterations = tf.clip_by_value(tf.reduce_max(tf.concat([lengths, [0]], axis=0)), 1, steps)
    weights, kernels = cell.step_weights(), cell.state_kernels()

    def advance(t, state, outputs):
        output, new_state, _ = cell.step(inputs[t], state, kernels, weights=weights)
        valid = tf.reshape(t < lengths, [-1, 1, 1, 1])
        state = tuple(tf.where(valid, new, old) for new, old in zip(new_state, state, strict=True))
        return t + 1, state, outputs.write(t, tf.where(valid, output, tf.zeros_like(output)))

    outputs = tf.TensorArray(cell.state_dtype, size=iterations)
    _, state, outputs = tf.while_loop(lambda t, *_: t < iterations, advance,
                                      (tf.constant(0), cell.zero_state(batch, height, width), outputs))
    return tf.pad(outputs.stack(), [[0, steps - iterations], [0, 0], [0, 0], [0, 0], [0, 0]]), state, {}


def _normalize_groups_by_axis(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) -> tf.Tensor:
    """:func:`modelzoo.cells.normalize_groups` with every mean over (H, W, F) taken one axis at a time: the same
    values, summed in short runs. onnxruntime's float32 mean over a whole tile at once (147,456 terms for 48 px and
    F = 64) is inexact enough that its scores drift from the float64 reference by 3e-5 after 46 dates (TensorFlow's
    by 3e-6); one axis at a time by 1e-6."""
    x = tf.cast(x, gamma.dtype)
    shape = tf.shape(x)
    grouped = tf.reshape(x, tf.concat([shape[:-1], tf.shape(gamma)], axis=0))

    def mean(values):
        for axis in (4, 2, 1):
            values = tf.reduce_mean(values, axis=axis, keepdims=True)
        return values

    average = mean(grouped)
    variance = mean(tf.math.squared_difference(grouped, average))
    normalised = tf.nn.batch_normalization(grouped, average, variance, beta, gamma, cells.LAYER_NORM_EPSILON)
    return tf.reshape(normalised, shape)


@contextmanager
def _onnx_tracing() -> Iterator[None]:
    """Trace the model for tf2onnx and onnxruntime: its recurrence as :func:`_inference_loop`, its layer norms as
    :func:`_normalize_groups_by_axis`."""
    with mock.patch.object(seqencmodel, "run_recurrence", _inference_loop), \
            mock.patch.object(cells, "normalize_groups", _normalize_groups_by_axis):
        yield


def metadata(folder: ModelFolder, prefix: str, step: int, classes: ClassList) -> dict[str, object]:
    """What travels with an export (the SavedModel's ``assets/metadata.json``; ONNX ``metadata_props``, as JSON)."""
    params = folder.params
    return {
        "class_ids": list(classes.ids),
        "class_names": list(classes.names),
        "inputs": "x10 (B,T,H,W,4), x20 (B,T,H/2,W/2,6), x60 (B,T,H/6,W/6,3): L1C DN; doy (B,T): day of year, 0 on "
                  "the padded dates at the end; year (B,T), e.g. 2017; all int64",
        "outputs": "scores (B,H,W,K) float32 softmax, channel k = class index k+1; class_index (B,H,W) int32 1..K; "
                   "raw class id = class_ids[class_index]",
        "model": f"MTLCC conv{params.convcell} F={params.convrnn_filters}, {params.convrnn_layers} layer(s), "
                 f"pix10m {params.pix10m}",
        "checkpoint": f"{folder.path.name}/{Path(prefix).name}",
        "global_step": step,
        "params": {key: value for key, value in params.as_dict().items() if key != "modelfolder"},
    }


class _Module(tf.Module):
    """The SavedModel's root: the serving function, the network's variables and the class list."""

    def __init__(self, model: SequentialEncoder, classes: ClassList):
        super().__init__(name="mtlcc")
        self.model = model
        self.serve = serving_function(model)
        self.class_ids = tf.Variable(np.asarray(classes.ids, np.int64), trainable=False, name="class_ids")
        self.class_names = tf.Variable(list(classes.names), trainable=False, name="class_names")


def write_savedmodel(model: SequentialEncoder, classes: ClassList, info: dict[str, object], path: Path) -> None:
    """Save the SavedModel of ``model`` into the (new, empty) folder ``path``."""
    module = _Module(model, classes)
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})
    (path / "assets").mkdir(exist_ok=True)
    (path / "assets" / METADATA_FILE).write_text(json.dumps(info, indent=1) + "\n")


def onnx_model(model: SequentialEncoder, opset: int, source: Path, info: dict[str, object]):
    """The ONNX ``ModelProto`` of ``model``; an op tf2onnx cannot express at ``opset`` is a :class:`UserError`
    naming it."""
    import onnx
    import tf2onnx

    if opset not in tf2onnx.constants.OPSET_TO_IR_VERSION:
        raise UserError(f"--opset {opset}: tf2onnx {tf2onnx.__version__} writes opsets "
                        f"{min(tf2onnx.constants.OPSET_TO_IR_VERSION)} to {max(tf2onnx.constants.OPSET_TO_IR_VERSION)}")
    failures = _FirstError()
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(failures)
    propagate, logger.propagate = logger.propagate, False
    try:
        with _onnx_tracing():
            function = serving_function(model)
            proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature,
                                                     opset=opset)
    except ValueError as err:  # tf2onnx's own checks (utils.make_sure)
        raise _inexpressible(source, opset, "this network", failures.first or str(err)) from None
    finally:
        logger.removeHandler(failures)
        logger.propagate = propagate
    unconverted = sorted({node.op_type for node in _nodes(proto.graph) if not onnx.defs.has(node.op_type)})
    if unconverted:
        raise _inexpressible(source, opset, f"{', '.join(unconverted)} of this network", failures.first)
    for value in (*proto.graph.input, *proto.graph.output):
        for dim, name in zip(value.type.tensor_type.shape.dim, DIMENSIONS[value.name], strict=False):
            if not dim.HasField("dim_value"):
                dim.dim_param = name
    onnx.helper.set_model_props(proto, {key: value if isinstance(value, str) else json.dumps(value)
                                        for key, value in info.items()})
    proto.doc_string = "MTLCC (Russwurm & Koerner 2018) crop-type classifier of Sentinel-2 time series"
    return proto


def _inexpressible(source: Path, opset: int, what: str, reason: str | None) -> UserError:
    import tf2onnx

    return UserError(f"{source}: tf2onnx {tf2onnx.__version__} cannot express {what} in ONNX opset {opset}"
                     + (f" ({' '.join(reason.split())})" if reason else ""))


class _FirstError(logging.Handler):
    """Keeps the first error tf2onnx logs (a node it could not convert)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.first = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.first is None:
            error = record.exc_info[1] if record.exc_info else None
            self.first = str(error or record.getMessage())


def _nodes(graph) -> Iterator:
    """Every node of an ONNX graph, those of its subgraphs (loop bodies, branches) included."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in (attribute.g, *attribute.graphs):
                yield from _nodes(subgraph)


def check_inputs(params: ModelParams) -> dict[str, np.ndarray]:
    """Two random tiles of the model's size with 4 and 2 valid dates (padding at the end), as the records hold them."""
    rng = np.random.default_rng(0)
    size, steps = params.pix10m, max(CHECK_DATES)
    doy = np.zeros((len(CHECK_DATES), steps), np.int64)
    for sample, dates in enumerate(CHECK_DATES):
        doy[sample, :dates] = np.sort(rng.choice(np.arange(1, 366), dates, replace=False))
    valid = (doy > 0)[:, :, None, None, None]
    features = {key: rng.integers(1, 10_000, (*doy.shape, size // factor, size // factor, bands)) * valid
                for key, factor, bands in (("x10", 1, params.num_bands_10m), ("x20", 2, params.num_bands_20m),
                                           ("x60", 6, params.num_bands_60m))}
    return {**features, "doy": doy, "year": np.where(doy > 0, 2017, 0)}


def difference(scores: Callable[[dict[str, np.ndarray]], np.ndarray], model: SequentialEncoder) -> float:
    """The largest difference between the scores of an export (``scores`` of the inputs) and those of the Keras model
    on :func:`check_inputs`."""
    features = check_inputs(model.params)
    expected = tf.nn.softmax(model(normalized(features), training=False)).numpy()
    return float(np.max(np.abs(scores(features) - expected)))


def _checked(delta: float, path: Path, kind: str) -> float:
    if not delta <= CHECK_TOLERANCE:
        raise UserError(f"{path}: the {kind} gives scores {delta:.1e} away from the Keras model's (at most "
                        f"{CHECK_TOLERANCE:.0e} expected); nothing written")
    return delta


def _load(folder: ModelFolder, classes: ClassList, classes_source: str, checkpoint: str | None
          ) -> tuple[SequentialEncoder, str, int]:
    """The network of ``folder`` with its checkpoint restored, float32."""
    folder.check_classes(classes.num_classes, classes_source)
    model, prefix, step = folder.load_network(checkpoint, allow_untrained=True)
    if prefix is None:
        raise UserError(f"{folder.path}: no checkpoint in the model folder: nothing to export (train the model or "
                        "run init_graph.py first)")
    return model, prefix, step


def export(modeldir: str | Path, out: str | Path, fmt: str | None = None, checkpoint: str | None = None,
           classes_file: str | Path | None = None, opset: int = DEFAULT_OPSET) -> Exported:
    """Export the network of ``modeldir`` (``checkpoint`` or the latest) to ``out``, which must not exist: a
    SavedModel folder, or with ``fmt="onnx"`` (the default for a name ending in ``.onnx``) an ONNX file.
    ``classes_file``: the ``classes.txt`` whose ids and names travel with it (default: the original's classes)."""
    out = Path(out)
    fmt = fmt or ("onnx" if out.suffix == ".onnx" else "savedmodel")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: not one of {', '.join(FORMATS)}")
    if out.exists() or out.is_symlink():
        raise UserError(f"{out}: already exists (remove it or choose another output)")
    folder = ModelFolder(modeldir)
    classes, classes_source = load_classes(Path(classes_file) if classes_file else None)
    model, prefix, step = _load(folder, classes, classes_source, checkpoint)
    info = metadata(folder, prefix, step, classes)
    if fmt == "onnx":
        import onnxruntime

        data = onnx_model(model, opset, folder.path, info).SerializeToString()
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        delta = _checked(difference(lambda features: session.run(["scores"], features)[0], model), out, "ONNX model")
        with atomic_file(out) as tmp:
            tmp.write_bytes(data)
        return Exported(fmt, out, prefix, step, delta, opset)
    with atomic_dir(out) as tmp:
        write_savedmodel(model, classes, info, tmp)
        signature = tf.saved_model.load(str(tmp)).signatures[SIGNATURE]
        delta = _checked(difference(lambda features: signature(**features)["scores"].numpy(), model), out,
                         "SavedModel")
    return Exported(fmt, out, prefix, step, delta, None)
