"""The TFRecord schema: round trips, the real Slovenian tiles, and every kind of bad record."""

from __future__ import annotations

import gzip
import json
from datetime import date

import numpy as np
import pytest
import tensorflow as tf

from tests.builders import drop, edited, random_tile, set_values
from utils import records
from utils.cli import UserError
from utils.records import Tile, decode_tile, encode_tile, read_tile, write_tile

RAW_IDS = (0, 1, 5, 26, 7)  # 7 is not in the test classes.txt




def assert_tiles_equal(actual: dict[str, np.ndarray], expected: Tile) -> None:
    for name, value in expected.arrays().items():
        assert actual[name].dtype == np.int64, name
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


def parse_in_graph(serialized: bytes, source: str = "tile.tfrecord") -> dict[str, np.ndarray]:
    """records.parse_features and decode_features inside tf.data, as the pipeline runs them."""
    dataset = tf.data.Dataset.from_tensors(serialized).map(
        lambda s: records.decode_features(records.parse_features(s), source))
    return next(dataset.as_numpy_iterator())


def graph_error(serialized: bytes, source: str = "tile.tfrecord") -> str | None:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        parse_in_graph(serialized, source)
    return records.data_error_message(info.value)








@pytest.mark.parametrize("suffix", [".tfrecord.gz", ".tfrecord"])
def test_write_then_read_tile_round_trip(tmp_path, suffix):
    tile = random_tile(np.random.default_rng(0), steps=4)
    path = tmp_path / f"17{suffix}"
    write_tile(path, tile)
    assert_tiles_equal(read_tile(path).arrays(), tile)
    raw = path.read_bytes()
    serialized = encode_tile(tile)
    if suffix == ".tfrecord.gz":
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    # TFRecord framing: uint64 length, masked crc32, payload, masked crc32; one record per file
    assert int.from_bytes(raw[:8], "little") == len(serialized)
    assert raw[12:12 + len(serialized)] == serialized
    assert len(raw) == len(serialized) + 16
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_encode_stores_int64_little_endian_and_shapes():
    tile = random_tile(np.random.default_rng(1), nobs=3, pix=6)
    features = tf.train.Example.FromString(encode_tile(tile)).features.feature
    assert list(features["x20/shape"].int64_list.value) == [3, 3, 3, 6]
    assert list(features["dates/shape"].int64_list.value) == [3]
    assert features["x10/data"].bytes_list.value[0] == tile.x10.astype("<i8").tobytes()
    assert sorted(features) == sorted([*records.DATA_KEYS.values(), *set(records.SHAPE_KEYS.values())])


def test_parsing_in_graph_equals_decode_tile():
    tile = random_tile(np.random.default_rng(2), steps=5)
    serialized = encode_tile(tile)
    assert_tiles_equal(parse_in_graph(serialized), tile)
    assert_tiles_equal(decode_tile(serialized).arrays(), tile)


def test_encode_rejects_bad_arrays():
    tile = random_tile(np.random.default_rng(3))
    with pytest.raises(ValueError, match="doy"):
        encode_tile(Tile(tile.x10, tile.x20, tile.x60, tile.doy, tile.year[:3], tile.labels))
    with pytest.raises(ValueError, match="x10 must have rank 4"):
        encode_tile(Tile(tile.x10[0], tile.x20, tile.x60, tile.doy, tile.year, tile.labels))


SLOVENIA_CORNERS = [(0, 0), (0, 48), (48, 0), (48, 48)]  # (row, col) of tiles 0..3 in the eo-learn patch
SCENES_BY_DATE = [4, 1, 0, 3, 2]  # REFERENCE_SCENES index of the dates 2015-07-11, 07-31, 08-20, 08-30, 09-09


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    steps, height, width, bands = values.shape
    return values.reshape(steps, height // factor, factor, width // factor, factor, bands).mean(axis=(2, 4))


def test_real_slovenian_tiles_hold_the_documented_values(realdata):
    eolearn = realdata / "eolearn_testeopatch_slovenia"
    scenes = np.load(eolearn / "REFERENCE_SCENES.npy")[SCENES_BY_DATE].astype(np.float64)
    lulc = np.load(eolearn / "mask_timeless" / "LULC.npy")[..., 0]
    timestamps = json.loads((eolearn / "timestamps.json").read_text())[:5]
    assert [date.fromisoformat(t[:10]).timetuple().tm_yday for t in timestamps] == [192, 212, 232, 242, 252]
    for tileid, (row, col) in enumerate(SLOVENIA_CORNERS):
        tile = read_tile(realdata / "derived_mtlcc_format_slovenia" / f"{tileid}.tfrecord.gz")
        shapes = {name: value.shape for name, value in tile.arrays().items()}
        assert shapes == {"x10": (5, 48, 48, 4), "x20": (5, 24, 24, 6), "x60": (5, 8, 8, 3), "doy": (5,),
                          "year": (5,), "labels": (5, 48, 48)}
        assert tile.doy.tolist() == [192, 212, 232, 242, 252]
        assert tile.year.tolist() == [2015] * 5
        window = scenes[:, row:row + 48, col:col + 48]  # bands B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B10,B11,B12
        np.testing.assert_array_equal(tile.x10, np.round(window[..., [1, 2, 3, 7]] * 1e4))
        np.testing.assert_allclose(tile.x20, block_mean(window[..., [4, 5, 6, 8, 11, 12]], 2) * 1e4, atol=1)
        np.testing.assert_allclose(tile.x60, block_mean(window[..., [0, 9, 10]], 6) * 1e4, atol=1)
        np.testing.assert_array_equal(tile.labels, np.repeat(lulc[None, row:row + 48, col:col + 48], 5, axis=0))


def test_read_tile_errors_name_the_file(tmp_path):
    good = tmp_path / "1.tfrecord.gz"
    write_tile(good, random_tile(np.random.default_rng(4)))
    data = good.read_bytes()
    cases = {"2.tfrecord.gz": data[: len(data) // 2], "3.tfrecord.gz": data[:100] + b"x" * 64 + data[164:],
             "4.tfrecord.gz": b"", "5.tfrecord": gzip.decompress(data)[:-30]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    for name in ("2.tfrecord.gz", "3.tfrecord.gz", "5.tfrecord"):
        with pytest.raises(UserError, match=rf"^{tmp_path / name}: corrupt or truncated TFRecord file"):
            read_tile(tmp_path / name)
    with pytest.raises(UserError, match=rf"^{tmp_path / '4.tfrecord.gz'}: file holds no record$"):
        read_tile(tmp_path / "4.tfrecord.gz")
    with pytest.raises(UserError, match=rf"^{tmp_path / '6.tfrecord.gz'}: no such file$"):
        read_tile(tmp_path / "6.tfrecord.gz")


def test_decode_tile_errors():
    tile = random_tile(np.random.default_rng(5))
    missing = edited(tile, drop("labels/shape"))
    with pytest.raises(UserError, match=r"^t.tfrecord: record has no feature 'labels/shape'$"):
        decode_tile(missing, "t.tfrecord")
    wrong = edited(tile, set_values("x10/shape", [5, 12, 12, 4]))
    with pytest.raises(UserError, match=r"^t.tfrecord: 'x10/data' has 27648 bytes but shape \[5, 12, 12, 4\] needs "
                                        r"23040$"):
        decode_tile(wrong, "t.tfrecord")
    huge = edited(tile, set_values("labels/shape", [2**61, 8, 0]))  # 0 elements; the int64 product of bytes wraps
    with pytest.raises(UserError, match=r"^t.tfrecord: 'labels/data' has 6912 bytes but shape \[2305843009213693952, "
                                        r"8, 0\] needs 0$"):
        decode_tile(huge, "t.tfrecord")
    huge = edited(tile, set_values("labels/shape", [2**61, 8, 1]))
    with pytest.raises(UserError, match=r"needs 147573952589676412928$"):
        decode_tile(huge, "t.tfrecord")
    with pytest.raises(UserError, match=r"^t.tfrecord: not a tf.train.Example"):
        decode_tile(b"\xff\xfe\x01", "t.tfrecord")


@pytest.mark.parametrize(("edit", "message"), [
    (drop("x20/data"), "record has no feature 'x20/data'"),
    (drop("dates/shape"), "record has no feature 'dates/shape'"),
    (set_values("x60/shape", [6, 2, 2, 3, 1]), "feature 'x60/shape' holds 5 values instead of 4"),
    (set_values("x10/data", [b"", b""]), "feature 'x10/data' holds 2 values instead of 1"),
    (set_values("x10/shape", [5, 12, 12, 4]), "'x10/data' has 27648 bytes but shape [5, 12, 12, 4] needs 23040"),
    (set_values("dates/doy", [b"abc"]), "'dates/doy' has 3 bytes but shape [6] needs 48"),
    (set_values("labels/shape", [-6, -12, 12]), "'labels/data' has a negative size in shape [-6, -12, 12]"),
    (set_values("labels/shape", [2**61, 1, 0]), "'labels/data' has 6912 bytes but shape [2305843009213693952, 1, 0] "
                                                "needs 0"),
    (set_values("labels/shape", [2**31, 2**31, 4]), "'labels/data' has 6912 bytes but shape [2147483648, 2147483648, "
                                                    "4] needs more than 2^62"),
])
def test_graph_parsing_errors_name_the_source(edit, message):
    tile = random_tile(np.random.default_rng(6))
    assert graph_error(edited(tile, edit), "/data/it's 12.tfrecord.gz") == f"/data/it's 12.tfrecord.gz: {message}"


def test_data_error_message_ignores_other_errors():
    other = tf.errors.InvalidArgumentError(None, None, "Could not parse example input, value: '<<'")
    assert records.data_error_message(other) is None
    assert records.data_error_message(tf.errors.InvalidArgumentError(None, None, "x <<a: b>> y")) == "a: b"
