"""Builders of test inputs shared by several test modules: random batches and weights, record tiles and their
corruptions, model folders in the original TF1 format, dataset roots cut from the synthetic one, and a runner of
``evaluate.py``."""

from __future__ import annotations

import io
import re
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

import evaluate as evaluate_script
from modelzoo.params import ModelParams, write_params_ini
from utils.modelfolder import ModelFolder
from utils.records import Tile, encode_tile

RTOL = 1e-5  # of assert_close
RAW_IDS = (0, 1, 5, 26, 7)  # of random tiles; 7 is not in the test classes.txt
TF1_FILTERS = 8  # of the TF1 model folders
TF1_STEPS = 3  # Adam steps taken in TF1 before their checkpoint
v1 = tf.compat.v1


def randomize(model, seed=0):
    """Random values in every variable (gammas and variances positive); returns them by TF1 name in float64."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, var in model.named_variables().items():
        if name.endswith(("gamma", "moving_variance")):
            value = rng.uniform(0.5, 1.5, var.shape)
        else:
            value = rng.normal(0.0, 0.3, var.shape)
        var.assign(value.astype(np.float32))
        values[name] = value.astype(np.float32).astype(np.float64)
    return values


def make_batch(batch=3, steps=5, size=12, lengths=(5, 3, 1), seed=0):
    """A random batch dict; sample n has lengths[n] valid steps (doy > 0) followed by zero padding."""
    rng = np.random.default_rng(seed)
    doy = np.zeros((batch, steps), np.float32)
    for n, length in enumerate(lengths):
        doy[n, :length] = np.sort(rng.integers(1, 366, length)) / 365
    valid = (doy > 0)[:, :, None, None, None]
    return {
        "x10": (rng.random((batch, steps, size, size, 4)) * valid).astype(np.float32),
        "x20": (rng.random((batch, steps, size // 2, size // 2, 6)) * valid).astype(np.float32),
        "x60": (rng.random((batch, steps, size // 6, size // 6, 3)) * valid).astype(np.float32),
        "doy": doy,
        "year": np.where(doy > 0, 1.0, 0.0).astype(np.float32),
        "labels": rng.integers(0, 6, (batch, size, size)).astype(np.int32),
        "tileid": np.arange(batch, dtype=np.int64),
    }


SMALL = dict(convrnn_filters=6, num_classes=5)


def assert_close(actual, expected, rtol=RTOL):
    """Agreement relative to the largest reference magnitude."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-12)
    assert np.abs(actual - expected).max() <= rtol * scale, np.abs(actual - expected).max() / scale


def edited(tile: Tile, edit) -> bytes:
    """The serialised tile after ``edit(features)`` changed its protobuf features."""
    example = tf.train.Example.FromString(encode_tile(tile))
    edit(example.features.feature)
    return example.SerializeToString()


def set_values(key: str, values: list):
    def edit(features):
        field = features[key].int64_list if isinstance(values[0], int) else features[key].bytes_list
        del field.value[:]
        field.value.extend(values)
    return edit


def drop(key: str):
    def edit(features):
        del features[key]
    return edit


def random_tile(rng: np.random.Generator, nobs: int = 6, pix: int = 12, steps: int | None = None,
                year: int = 2016) -> Tile:
    """A tile with random DN values and labels; steps after ``steps`` are zero padding as in the original."""
    steps = nobs if steps is None else steps

    def bands(size: int, count: int) -> np.ndarray:
        values = np.zeros((nobs, size, size, count), np.int64)
        values[:steps] = rng.integers(1, 10000, (steps, size, size, count))
        return values

    doy = np.zeros(nobs, np.int64)
    doy[:steps] = np.sort(rng.choice(np.arange(1, 366), steps, replace=False))
    labels = np.repeat(rng.choice(RAW_IDS, (1, pix, pix)), nobs, axis=0).astype(np.int64)
    return Tile(bands(pix, 4), bands(pix // 2, 6), bands(pix // 6, 3), doy, np.where(doy > 0, year, 0), labels)


def write_tf1_model(folder, cell: str, pix10m: int, seed: int = 0):
    """Write ``params.ini`` and a TF1 checkpoint ``model.ckpt-3`` (3 Adam steps with constant gradients, absolute
    paths in the state file, int32 counters, as the TF1 ``Saver`` wrote them).

    Returns (the constant gradients, the trainable values after a 4th TF1 step) by name.
    """
    folder.mkdir(parents=True)
    (folder / "params.ini").write_text(original_params_ini(cell, pix10m))
    rng = np.random.default_rng(seed)
    gradients, after = {}, {}
    graph = v1.Graph()
    with graph.as_default():
        trainable, loss = [], 0.0
        for name, (shape, is_trainable) in tf1_variables(cell, TF1_FILTERS).items():
            if name.endswith(("gamma", "moving_variance")):
                value = rng.uniform(0.5, 1.5, shape)
            elif name.endswith("local_step"):
                value = np.array(40.0)
            else:
                value = rng.normal(0.0, 0.3, shape)
            variable = v1.get_variable(name, initializer=value.astype(np.float32), trainable=is_trainable)
            if is_trainable:
                gradients[name] = rng.normal(size=shape).astype(np.float32)
                loss += tf.reduce_sum(variable * gradients[name])
                trainable.append((name, variable))
        global_step = v1.Variable(0, name="global_step", trainable=False)
        samples_seen = v1.Variable(0, name="samples_seen", trainable=False)
        with tf.control_dependencies([v1.assign_add(samples_seen, 4)]):
            train_op = v1.train.AdamOptimizer(0.01, 0.9, 0.999, epsilon=0.9).minimize(loss, global_step=global_step)
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            for _ in range(TF1_STEPS):
                session.run(train_op)
            saver.save(session, str(folder / "model.ckpt"), global_step=global_step)
            session.run(train_op)
            after = dict(zip([n for n, _ in trainable], session.run([v for _, v in trainable]), strict=True))
    return gradients, after


def call(argv: list[str]) -> SimpleNamespace:
    """Run evaluate.py's main in-process; return its stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        evaluate_script.main([str(arg) for arg in argv])
    return SimpleNamespace(stdout=stdout.getvalue(), stderr=stderr.getvalue())


def make_root(source: Path, root: Path, eval_ids: list[int], test_ids: list[int], georef_rows: bool = True,
              drop: tuple[int, ...] = ()) -> Path:
    """A dataset root sharing the tile files of ``source``, with its own partitions and geotransforms.csv rows."""
    root.mkdir(parents=True)
    for name in ("dataset.ini", "classes.txt"):
        shutil.copy(source / name, root / name)
    for data in ("data16", "data17"):
        (root / data).symlink_to(source / data)
    (root / "tileids").mkdir()
    (root / "tileids" / "eval.tileids").write_text("".join(f"{i}\n" for i in eval_ids))
    (root / "tileids" / "test_fold1.tileids").write_text("".join(f"{i}\n" for i in test_ids))
    if georef_rows:
        rows = (source / "geotransforms.csv").read_text().splitlines()
        (root / "geotransforms.csv").write_text("".join(
            f"{row}\n" for row in rows if int(row.split(",")[0]) not in drop))
    return root


# a params.ini as the original TF 1.7 code wrote it: absl and TF internal flags mixed in
ORIGINAL_PARAMS_INI = """[flags]
logtostderr = False
alsologtostderr = False
log_dir =
v = -1
verbosity = -1
stderrthreshold = fatal
showprefixforinfo = True
run_with_pdb = False
pdb_post_mortem = False
run_with_profiling = False
profile_file = None
use_cprofile_for_profiling = True
only_check_args = False
? = False
help = False
helpshort = False
helpfull = False
helpxml = False
h = False
modelfolder = /data/models/convlstm256_48px
kernel = (1,3,3)
classkernel = (3,3)
cnn_activation = leaky_relu
bidirectional = True
convrnn_compression_filters = -1
convcell = lstm
convrnn_kernel = (3,3)
convrnn_filters = 256
recurrent_dropout_i = 1.0
recurrent_dropout_c = 1.0
convrnn_layers = 1
peephole = False
convrnn_normalize = True
aggr_strat = state
learning_rate = 0.01
beta1 = 0.9
beta2 = 0.999
epsilon = 0.9
expected_datatypes = (tf.float32, tf.float32, tf.float32, tf.float32, tf.float32, tf.int64)
pix10m = 48
num_bands_10m = 4
num_bands_20m = 6
num_bands_60m = 3
num_classes = 17
swap_memory = True
test_srcdir =
test_tmpdir = /tmp/absl_testing
log_format = %(asctime)s %(message)s
"""


def tf1_variables(cell: str, filters: int, classes: int = 17, channels: int = 15):
    """``{name: (shape, trainable)}`` of the original graph, written from ``cell.py``, ``seqencmodel.py`` and
    ``tf.contrib.layers.batch_norm(zero_debias_moving_mean=True)`` (not from this project's code)."""
    scope = f"convrnn1/bidirectional_rnn/fw/conv_{cell}_cell"
    depth = channels + filters
    if cell == "gru":
        kernels = {f"{scope}/gates/kernel": 2 * filters, f"{scope}/candidate/kernel": filters}
        norms = ["gates/LayerNorm", "gates/LayerNorm_1", "candidate/LayerNorm"]
    else:
        kernels = {f"{scope}/kernel": 4 * filters}
        norms = ["LayerNorm"] + [f"LayerNorm_{k}" for k in range(1, 5)]
    names = {name: ((3, 3, depth, out), True) for name, out in kernels.items()}
    names.update({f"{scope}/{norm}/{p}": ((filters,), True) for norm in norms for p in ("beta", "gamma")})
    names["class/conv2d/kernel"] = ((3, 3, 2 * filters, classes), True)
    names.update({f"class/bn/{p}": ((classes,), True) for p in ("beta", "gamma")})
    names.update({f"class/bn/{p}": ((classes,), False) for p in ("moving_mean", "moving_variance")})
    names["class/bn/class/bn/moving_mean/biased"] = ((classes,), False)
    names["class/bn/class/bn/moving_mean/local_step"] = ((), False)
    return names
def original_params_ini(cell: str, pix10m: int, filters: int = TF1_FILTERS) -> str:
    """A params.ini as the original wrote it (absl and TF flags mixed in) for this network."""
    text = ORIGINAL_PARAMS_INI
    for flag, value in (("convcell", cell), ("convrnn_filters", filters), ("pix10m", pix10m),
                        ("modelfolder", f"/data/models/conv{cell}{filters}_{pix10m}px")):
        text = re.sub(rf"^{flag} = .*$", f"{flag} = {value}", text, flags=re.MULTILINE)
    return text


def make_model_folder(path: Path, checkpoint: bool = False, seed: int | None = None, step: int = 0,
                      **flags) -> Path:
    """A model folder: ``params.ini`` of ``ModelParams(**flags)``; with ``checkpoint``, the freshly initialised network
    (from ``seed``) with its Adam slots saved as ``model.ckpt-<step>`` (``samples_seen`` = 4 × ``step``)."""
    path.mkdir(parents=True, exist_ok=True)
    write_params_ini(path / "params.ini", ModelParams(**{"modelfolder": str(path), **flags}))
    if checkpoint:
        folder = ModelFolder(path)
        state = folder.initial_state(seed)
        state.global_step.assign(step)
        state.samples_seen.assign(4 * step)
        state.save(folder, max_to_keep=0)
    return path
