"""The MTLCC TFRecord schema: one ``tf.train.Example`` per tile, every array int64 raw bytes plus its shape.

Keys (spec §1.7): ``x10/data x10/shape x20/data x20/shape x60/data x60/shape dates/doy dates/year dates/shape
labels/data labels/shape``. Files are ``<tileid>.tfrecord.gz`` (GZIP) or ``<tileid>.tfrecord`` (uncompressed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from utils.cli import UserError
from utils.fsio import atomic_file

ARRAYS = ("x10", "x20", "x60", "doy", "year", "labels")
RANKS = {"x10": 4, "x20": 4, "x60": 4, "doy": 1, "year": 1, "labels": 3}
DATA_KEYS = {"x10": "x10/data", "x20": "x20/data", "x60": "x60/data", "doy": "dates/doy", "year": "dates/year",
             "labels": "labels/data"}
SHAPE_KEYS = {"x10": "x10/shape", "x20": "x20/shape", "x60": "x60/shape", "doy": "dates/shape",
              "year": "dates/shape", "labels": "labels/shape"}
FEATURE_SPEC = {
    **{key: tf.io.FixedLenFeature([], tf.string) for key in DATA_KEYS.values()},
    **{SHAPE_KEYS[name]: tf.io.FixedLenFeature([RANKS[name]], tf.int64) for name in ARRAYS},
}


@dataclass
class Tile:
    """One tile as stored: int64 arrays ``x10 (T,H,W,4)``, ``x20 (T,H/2,W/2,6)``, ``x60 (T,H/6,W/6,3)``,
    ``doy (T,)``, ``year (T,)`` and ``labels (T,H,W)`` (raw class ids, the same map repeated over time)."""

    x10: np.ndarray
    x20: np.ndarray
    x60: np.ndarray
    doy: np.ndarray
    year: np.ndarray
    labels: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}


def compression_of(path: str | os.PathLike) -> str:
    """TFRecord compression type from the file name: ``GZIP`` for ``.gz``, else uncompressed."""
    return "GZIP" if str(path).endswith(".gz") else ""


def encode_tile(tile: Tile) -> bytes:
    """Serialise a tile as the original ``S2parser.write`` does (int64 little-endian raw bytes + shapes)."""
    arrays = tile.arrays()
    if arrays["doy"].shape != arrays["year"].shape:
        raise ValueError(f"doy {arrays['doy'].shape} and year {arrays['year'].shape} differ in shape")
    feature = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.ndim != RANKS[name]:
            raise ValueError(f"{name} must have rank {RANKS[name]}, got shape {array.shape}")
        raw = np.ascontiguousarray(array, dtype="<i8").tobytes()
        feature[DATA_KEYS[name]] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
        feature[SHAPE_KEYS[name]] = tf.train.Feature(int64_list=tf.train.Int64List(value=list(array.shape)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tile(path: str | os.PathLike, tile: Tile, compression_level: int | None = None) -> None:
    """Write one tile as a TFRecord file (GZIP when the name ends in ``.gz``); the file appears only when complete."""
    options = tf.io.TFRecordOptions(compression_type=compression_of(path), compression_level=compression_level)
    with atomic_file(path) as tmp, tf.io.TFRecordWriter(str(tmp), options) as writer:
        writer.write(encode_tile(tile))


def decode_tile(serialized: bytes, source: str = "<record>") -> Tile:
    """Parse one serialised example into numpy arrays, checking every key and that each shape matches its bytes."""
    try:
        features = tf.train.Example.FromString(serialized).features.feature
    except Exception as err:  # protobuf raises its own DecodeError
        raise UserError(f"{source}: not a tf.train.Example ({err})") from None
    arrays = {}
    for name in ARRAYS:
        for key in (DATA_KEYS[name], SHAPE_KEYS[name]):
            if key not in features:
                raise UserError(f"{source}: record has no feature '{key}'")
        blobs = features[DATA_KEYS[name]].bytes_list.value
        shape = tuple(int(v) for v in features[SHAPE_KEYS[name]].int64_list.value)
        if len(blobs) != 1 or len(shape) != RANKS[name]:
            raise UserError(f"{source}: feature '{DATA_KEYS[name]}' must hold one byte string with a rank-"
                            f"{RANKS[name]} shape, got {len(blobs)} strings and shape {list(shape)}")
        expected = int(np.prod(shape)) * 8
        if len(blobs[0]) != expected:
            raise UserError(f"{source}: '{DATA_KEYS[name]}' has {len(blobs[0])} bytes but shape {list(shape)} "
                            f"needs {expected}")
        arrays[name] = np.frombuffer(blobs[0], dtype="<i8").reshape(shape).astype(np.int64)
    return Tile(**arrays)


def read_tile(path: str | os.PathLike) -> Tile:
    """Read the single tile stored in a ``.tfrecord[.gz]`` file, with one-line errors for corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    dataset = tf.data.TFRecordDataset(str(path), compression_type=compression_of(path))
    try:
        serialized = next(iter(dataset), None)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as err:
        raise UserError(f"{path}: corrupt or truncated TFRecord file ({err.message.splitlines()[0]})") from None
    if serialized is None:
        raise UserError(f"{path}: file holds no record")
    return decode_tile(serialized.numpy(), str(path))


def parse_example(serialized: tf.Tensor, source: tf.Tensor | str = "<record>") -> dict[str, tf.Tensor]:
    """Graph version of :func:`decode_tile` for tf.data: a dict of int64 tensors ``x10 … labels``.

    A blob whose length does not match its stored shape raises ``InvalidArgumentError`` whose message names
    ``source`` (pass the file name) and the feature.
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    out = {}
    for name in ARRAYS:
        values = tf.io.decode_raw(parsed[DATA_KEYS[name]], tf.int64, little_endian=True)
        shape = parsed[SHAPE_KEYS[name]]
        check = tf.debugging.Assert(
            tf.equal(tf.size(values, out_type=tf.int64), tf.reduce_prod(shape)),
            [source, f": '{DATA_KEYS[name]}' does not match its shape"])
        with tf.control_dependencies([check]):
            out[name] = tf.reshape(values, shape)
    return out
