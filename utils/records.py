"""The MTLCC TFRecord schema: one ``tf.train.Example`` per tile, every array int64 raw bytes plus its shape.

Keys (ORIGINAL.md §1.7): ``x10/data x10/shape x20/data x20/shape x60/data x60/shape dates/doy dates/year dates/shape
labels/data labels/shape``. Files are ``<tileid>.tfrecord.gz`` (GZIP) or ``<tileid>.tfrecord`` (uncompressed).
"""

from __future__ import annotations

import codecs
import math
import os
import re
from collections.abc import Sequence
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
# Every key is parsed as a variable-length list so that a missing feature reaches the checks of
# :func:`decode_features` (and an error naming the file) instead of failing inside the parser.
FEATURE_SPEC = {
    **{key: tf.io.VarLenFeature(tf.string) for key in DATA_KEYS.values()},
    **{key: tf.io.VarLenFeature(tf.int64) for key in SHAPE_KEYS.values()},
}
TILE_FILE = re.compile(r"(\d+)\.tfrecord(\.gz)?")  # <tileid>.tfrecord.gz (GZIP) or <tileid>.tfrecord
COMPRESSION_LEVEL = 1  # zlib level of .tfrecord.gz files: level 6 is 10 % smaller but 4x slower to write
# Data-error messages raised inside tf.data are wrapped in these markers so that :func:`data_error_message`
# can find them in TensorFlow's error text.
_MESSAGE_START, _MESSAGE_END = "<<", ">>"


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
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def write_tile(path: str | os.PathLike, tile: Tile, compression_level: int = COMPRESSION_LEVEL) -> None:
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
        expected = math.prod(shape) * 8  # exact: a shape may claim more than 2**63 bytes
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


def _text(part: tf.Tensor | str) -> tf.Tensor | str:
    """A message part as a string: text stays, an integer tensor becomes ``[a, b, c]`` or ``a``."""
    if isinstance(part, str) or part.dtype == tf.string:
        return part
    values = tf.strings.as_string(part)
    if part.shape.rank == 0:
        return values
    return tf.strings.join(["[", tf.strings.reduce_join(values, separator=", "), "]"])


def check(condition: tf.Tensor, source: tf.Tensor | str, *parts: tf.Tensor | str) -> tf.Operation:
    """Graph assertion whose failure message is ``<source>: <parts joined>``; see :func:`data_error_message`."""
    message = tf.strings.join([_MESSAGE_START, source, ": ", *(_text(part) for part in parts), _MESSAGE_END])
    return tf.debugging.Assert(condition, [message])


def data_error_message(err: tf.errors.OpError) -> str | None:
    """The one-line message of a failed :func:`check` inside ``err``, or None when ``err`` is another error."""
    start = err.message.find(_MESSAGE_START)
    end = err.message.find(_MESSAGE_END, start + len(_MESSAGE_START))
    if start < 0 or end < 0:
        return None
    # TensorFlow prints the string tensor C-escaped (quotes, non-ASCII bytes as octal): undo that.
    escaped = err.message[start + len(_MESSAGE_START):end]
    return codecs.escape_decode(escaped.encode("utf-8"))[0].decode("utf-8", errors="replace")


def parse_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse a serialised ``tf.train.Example`` into the 1-D value list of every schema key (empty when absent).

    Fails (``InvalidArgumentError``) only when the bytes are not a ``tf.train.Example`` at all.
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    return {key: value.values for key, value in parsed.items()}


def decode_features(features: dict[str, tf.Tensor], source: tf.Tensor | str = "<record>") -> dict[str, tf.Tensor]:
    """Check and decode the output of :func:`parse_features` into int64 arrays ``x10 … labels`` (graph).

    A missing feature, a shape of the wrong rank or a blob whose length does not match its stored shape raises
    ``InvalidArgumentError`` whose message (see :func:`data_error_message`) names ``source`` and the feature.
    """
    counts = {**{DATA_KEYS[name]: 1 for name in ARRAYS}, **{SHAPE_KEYS[name]: RANKS[name] for name in ARRAYS}}
    presence = []
    for key, count in counts.items():
        size = tf.size(features[key])
        problem = tf.where(size == 0, f"record has no feature '{key}'",
                           tf.strings.join([f"feature '{key}' holds ", tf.strings.as_string(size),
                                            f" values instead of {count}"]))
        presence.append(check(tf.equal(size, count), source, problem))
    out = {}
    with tf.control_dependencies(presence):
        for name in ARRAYS:
            blob = features[DATA_KEYS[name]][0]
            shape = features[SHAPE_KEYS[name]]
            nbytes = tf.cast(tf.strings.length(blob, unit="BYTE"), tf.int64)
            needed = tf.reduce_prod(shape) * 8
            negative = tf.reduce_any(shape < 0)
            huge = tf.reduce_prod(tf.cast(shape, tf.float64)) * 8 >= 2.0**62  # the int64 product would overflow
            problem = tf.where(negative, tf.strings.join(["has a negative size in shape ", _text(shape)]),
                               tf.where(huge, tf.strings.join(["has ", _text(nbytes), " bytes but shape ",
                                                               _text(shape), " needs more than 2^62"]),
                                        tf.strings.join(["has ", _text(nbytes), " bytes but shape ", _text(shape),
                                                         " needs ", _text(needed)])))
            match = check(~negative & ~huge & tf.equal(nbytes, needed), source, f"'{DATA_KEYS[name]}' ", problem)
            with tf.control_dependencies([match]):
                out[name] = tf.reshape(tf.io.decode_raw(blob, tf.int64, little_endian=True), shape)
    return out


def tile_file_name(tileid: int) -> str:
    """The file name of a tile's record as this project writes it: ``<tileid>.tfrecord.gz``."""
    return f"{tileid}.tfrecord.gz"


def tile_files(inputs: Sequence[str]) -> list[tuple[int, Path]]:
    """``(tileid, file)`` of every input file and of every tile file in an input folder."""
    found = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files = [(int(m.group(1)), p) for p in sorted(path.iterdir()) if (m := TILE_FILE.fullmatch(p.name))]
            if not files:
                raise UserError(f"{path}: no <tileid>.tfrecord[.gz] files in the folder")
            found += sorted(files)
        elif not path.is_file():
            raise UserError(f"{path}: no such file or folder")
        elif (match := TILE_FILE.fullmatch(path.name)) is None:
            raise UserError(f"{path}: not named <tileid>.tfrecord.gz or <tileid>.tfrecord")
        else:
            found.append((int(match.group(1)), path))
    first: dict[int, Path] = {}
    for tileid, path in found:
        if first.setdefault(tileid, path) != path:
            raise UserError(f"{path}: tile {tileid} is also given as {first[tileid]} (both would go to one folder)")
    return found
