"""Dataset-root readers, the tf.data pipeline (values, sampling, shuffling, flips, errors) and the summary CLI."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.builders import drop, edited, random_tile, set_values
from utils import dataset as ds
from utils.classes import ClassList, read_classes
from utils.cli import UserError, run
from utils.dataset import Dataset, SectionConfig, iterate, read_dataset_ini, read_tileids, resolve_datadir
from utils.georef import read_geotransforms
from utils.records import Tile, write_tile

NOBS, PIX = 6, 12
INI = """[2016]
datadir = data16
pix10 = 12
nobs = 6
nbands10 = 4
nbands20 = 6
nbands60 = 3
tiletable = tiles120

[2017]
datadir = data17
pix10 = 12
nobs = 6
nbands10 = 4
nbands20 = 6
nbands60 = 3
tiletable = tiles120
"""
CLASSES = "0|unknown\n1|sugar beet\nlines without a bar are ignored\n5|rape\n26|maize\n"
PARTITIONS = {"train_fold0": [1, 2, 3, 4, 5, 6, 7, 8], "test_fold0": [9, 10, 11, 12, 98, 99], "eval": [13, 14],
              "train_fold1": [5, 6, 7, 8, 9, 10, 11, 12], "test_fold1": [4, 3, 2, 1], "custom": [3, 2]}
TILES17 = (1, 2, 9, 13)


def write_root(root: Path, tiles16: dict[int, Tile], tiles17: dict[int, Tile] | None = None) -> Path:
    """A dataset root: INI, CLASSES, PARTITIONS and the tiles (tile 4 uncompressed, the others GZIP)."""
    (root / "tileids").mkdir(parents=True)
    (root / "dataset.ini").write_text(INI)
    (root / "classes.txt").write_text(CLASSES)
    for name, ids in PARTITIONS.items():
        (root / "tileids" / f"{name}.tileids").write_text("".join(f"{i}\n" for i in ids))
    for folder, tiles in (("data16", tiles16), ("data17", tiles17 or {})):
        (root / folder).mkdir()
        for tileid, tile in tiles.items():
            write_tile(root / folder / f"{tileid}.tfrecord{'' if tileid == 4 else '.gz'}", tile)
    return root


@pytest.fixture(scope="module")
def tiles() -> dict[int, Tile]:
    rng = np.random.default_rng(7)
    return {tileid: random_tile(rng, NOBS, PIX, steps=int(rng.integers(2, NOBS + 1))) for tileid in range(1, 15)}


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiles) -> Path:
    tiles17 = {tileid: random_tile(np.random.default_rng(tileid), NOBS, PIX, year=2017) for tileid in TILES17}
    return write_root(tmp_path_factory.mktemp("root"), tiles, tiles17)


def collect(pipeline: tf.data.Dataset) -> dict[str, np.ndarray]:
    """All batches of a finite pipeline, concatenated along the batch axis."""
    batches = list(iterate(pipeline))
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}


def expected_sample(tile: Tile, classes: ClassList) -> dict[str, np.ndarray]:
    """The pipeline's output for a tile without sampling or flips, computed with numpy in float32."""
    scale = {name: getattr(tile, name).astype(np.float32) * np.float32(1e-4) for name in ("x10", "x20", "x60")}
    return {**scale, "doy": tile.doy.astype(np.float32) / np.float32(365),
            "year": tile.year.astype(np.float32) - np.float32(2016), "labels": classes.to_index(tile.labels[0])}


# --- dataset.ini -------------------------------------------------------------------------------------------------

def test_read_dataset_ini(root):
    sections = ds.read_dataset_ini(root)
    assert list(sections) == ["2016", "2017"]
    assert sections["2016"] == SectionConfig("2016", root / "data16", 12, 6, 4, 6, 3, "tiles120")
    assert ds.read_section(root, "2017").datadir == root / "data17"
    assert sections["2016"].shapes == {"x10": (6, 12, 12, 4), "x20": (6, 6, 6, 6), "x60": (6, 2, 2, 3),
                                       "doy": (6,), "year": (6,), "labels": (6, 12, 12)}


@pytest.mark.parametrize(("text", "message"), [
    (INI.replace("nobs = 6\n", "", 1), "section [2016] has no key 'nobs'"),
    (INI.replace("tiletable = tiles120\n", "", 1), "section [2016] has no key 'tiletable'"),
    (INI.replace("datadir = data16\n", "datadir =\n"), "section [2016] has no key 'datadir'"),
    (INI.replace("pix10 = 12\n", "pix10 = 12px\n", 1), "section [2016] key 'pix10' = '12px' is not an integer"),
    (INI.replace("nbands20 = 6\n", "nbands20 = 0\n", 1), "section [2016] key 'nbands20' = 0 must be positive"),
    ("[2016]\nno equals sign here\n", "Source contains parsing errors"),
])
def test_dataset_ini_errors(tmp_path, text, message):
    (tmp_path / "dataset.ini").write_text(text)
    with pytest.raises(UserError) as info:
        ds.read_section(tmp_path, "2016")
    assert str(info.value).startswith(f"{tmp_path / 'dataset.ini'}: {message}")


def test_dataset_ini_missing_file_and_section(tmp_path, root):
    with pytest.raises(UserError, match=rf"^{tmp_path / 'dataset.ini'}: no such file$"):
        ds.read_dataset_ini(tmp_path)
    with pytest.raises(UserError, match=rf"^{root / 'dataset.ini'}: no section \[2018\] \(sections: 2016, 2017\)$"):
        Dataset(root, "2018")
    (tmp_path / "dataset.ini").write_text("# no sections\n")
    with pytest.raises(UserError, match=rf"^{tmp_path / 'dataset.ini'}: no sections$"):
        ds.read_dataset_ini(tmp_path)


# --- classes.txt -------------------------------------------------------------------------------------------------


# --- tileids -----------------------------------------------------------------------------------------------------

def test_read_tileids(root):
    assert ds.read_tileids(root, "train") == PARTITIONS["train_fold0"]
    assert ds.read_tileids(root, "test", fold=1) == [4, 3, 2, 1]
    assert ds.read_tileids(root, "eval", fold=5) == [13, 14]
    assert ds.read_tileids(root, "custom") == [3, 2]
    assert ds.tileids_file(root, "train", 3) == root / "tileids" / "train_fold3.tileids"


def test_tileids_errors(tmp_path, root):
    with pytest.raises(UserError, match=r"train_fold3.tileids: no such file \(partitions in .*tileids: custom, "
                                        r"eval, test_fold0, test_fold1, train_fold0, train_fold1\)$"):
        ds.read_tileids(root, "train", 3)
    (tmp_path / "tileids").mkdir()
    (tmp_path / "tileids" / "eval.tileids").write_text("1\n\n2\n3a\n")
    with pytest.raises(UserError, match=r"eval.tileids:4: tile id '3a' is not an integer$"):
        ds.read_tileids(tmp_path, "eval")
    (tmp_path / "tileids" / "eval.tileids").write_text("\n")
    with pytest.raises(UserError, match=r"eval.tileids: no tile ids$"):
        ds.read_tileids(tmp_path, "eval")


# --- tile files --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dataset.ini", "classes.txt", "tileids/eval.tileids", "geotransforms.csv"])
def test_a_file_that_is_not_utf8_is_a_one_line_error(tmp_path, root, name):
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    path = copy / name
    path.write_bytes(b"1|ok\n\xff\xfe2|Zuckerr\xfcbe\n")
    read = {"dataset.ini": lambda: read_dataset_ini(copy), "classes.txt": lambda: read_classes(copy),
            "tileids/eval.tileids": lambda: read_tileids(copy, "eval"),
            "geotransforms.csv": lambda: read_geotransforms(copy / "geotransforms.csv")}[name]
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}: not UTF-8 text \(byte 0xff at offset 5\)$"):
        read()


def test_tile_files_intersect_and_report_missing_once(root, capsys):
    dataset = Dataset(root)
    files = dataset.tile_files("test")
    assert files == [(i, root / "data16" / f"{i}.tfrecord.gz") for i in (9, 10, 11, 12)]
    assert capsys.readouterr().err == (f"2 of 6 tile ids in {root / 'tileids' / 'test_fold0.tileids'} have no file "
                                       f"in {root / 'data16'}/\n")
    assert dataset.tile_files("test") == files
    assert capsys.readouterr().err == ""
    assert dataset.split_tileids([99, 9, 98, 9]) == ([9], [98, 99])
    assert dataset.tile_files("train")[3] == (4, root / "data16" / "4.tfrecord")  # uncompressed files too
    assert [i for i, _ in dataset.tile_files("train", tileids=[7, 3, 3])] == [3, 7]
    assert [i for i, _ in Dataset(root, "2017").tile_files("train")] == [1, 2]


def test_tile_files_errors(tmp_path, tiles):
    root = write_root(tmp_path, {1: tiles[1]})
    with pytest.raises(UserError, match=r"eval.tileids: none of its 2 tile ids has a file in .*data16$"):
        Dataset(root).tile_files("eval")
    with pytest.raises(UserError, match=r"^the tile ids given for train: none of its 1 tile ids has a file"):
        Dataset(root).tile_files("train", tileids=[5])
    write_tile(root / "data16" / "1.tfrecord", tiles[1])
    with pytest.raises(UserError, match=r"data16: tile 1 is stored twice \(1.tfrecord(.gz)?, 1.tfrecord(.gz)?\)$"):
        Dataset(root).tile_files("train")
    shutil.rmtree(root / "data17")
    with pytest.raises(UserError, match=r"data17: data folder of section \[2017\] does not exist$"):
        Dataset(root, "2017").tile_files("train")


# --- the pipeline ------------------------------------------------------------------------------------------------

def test_pipeline_values_shapes_and_dtypes(root, tiles):
    dataset = Dataset(root)
    pipeline = dataset.pipeline("train", batchsize=3)
    spec = pipeline.element_spec
    assert {key: (spec[key].dtype, tuple(spec[key].shape)) for key in spec} == {
        "x10": (tf.float32, (None, 6, 12, 12, 4)), "x20": (tf.float32, (None, 6, 6, 6, 6)),
        "x60": (tf.float32, (None, 6, 2, 2, 3)), "doy": (tf.float32, (None, 6)), "year": (tf.float32, (None, 6)),
        "labels": (tf.int32, (None, 12, 12)), "tileid": (tf.int64, (None,))}
    assert [len(batch["tileid"]) for batch in iterate(pipeline)] == [3, 3, 2]
    assert [len(batch["tileid"]) for batch in iterate(dataset.pipeline("train", batchsize=3, drop_remainder=True))
            ] == [3, 3]
    out = collect(pipeline)
    assert out["tileid"].tolist() == PARTITIONS["train_fold0"]
    for position, tileid in enumerate(out["tileid"]):
        for key, value in expected_sample(tiles[tileid], dataset.classes).items():
            np.testing.assert_array_equal(out[key][position], value, err_msg=key)
    # the unlisted raw id 7 and unknown 0 both become index 0; listed ids keep their class index
    raw = np.stack([tiles[tileid].labels[0] for tileid in out["tileid"]])
    assert set(np.unique(raw)) == {0, 1, 5, 7, 26}
    np.testing.assert_array_equal(out["labels"] == 0, (raw == 0) | (raw == 7))
    np.testing.assert_array_equal(out["labels"][raw == 26], 3)


def test_real_tiles_through_the_pipeline(tmp_path, realdata):
    (tmp_path / "tileids").mkdir()
    (tmp_path / "data15").mkdir()
    (tmp_path / "dataset.ini").write_text(INI.split("\n\n")[0].replace("data16", "data15").replace(
        "pix10 = 12", "pix10 = 48").replace("nobs = 6", "nobs = 5").replace("[2016]", "[2015]"))
    (tmp_path / "classes.txt").write_text("0|no data\n1|cultivated land\n2|forest\n3|grassland\n4|shrubland\n")
    (tmp_path / "tileids" / "eval.tileids").write_text("0\n1\n2\n3\n")
    for tileid in range(4):
        name = f"{tileid}.tfrecord.gz"
        shutil.copy(realdata / "derived_mtlcc_format_slovenia" / name, tmp_path / "data15" / name)
    out = collect(Dataset(tmp_path, "2015").pipeline("eval", batchsize=4))
    scenes = np.load(realdata / "eolearn_testeopatch_slovenia" / "REFERENCE_SCENES.npy")[[4, 1, 0, 3, 2]]
    lulc = np.load(realdata / "eolearn_testeopatch_slovenia" / "mask_timeless" / "LULC.npy")[..., 0]
    x10 = np.round(scenes[:, 48:96, 0:48][..., [1, 2, 3, 7]] * 1e4).astype(np.float32) * np.float32(1e-4)
    np.testing.assert_array_equal(out["x10"][2], x10)
    np.testing.assert_allclose(out["doy"][0] * 365, [192, 212, 232, 242, 252], rtol=1e-6)
    np.testing.assert_array_equal(out["year"], -1.0)
    np.testing.assert_array_equal(out["labels"][3], np.where(lulc[48:96, 48:96] == 8, 0, lulc[48:96, 48:96]))


def test_temporal_sampling_keeps_order_and_padding_at_the_end(root, tiles):
    out = collect(Dataset(root, temporal_samples=4).pipeline("train", batchsize=8, seed=5, repeat=False))
    assert out["x10"].shape == (8, 4, 12, 12, 4)
    chosen = []
    for position, tileid in enumerate(out["tileid"]):
        tile = tiles[tileid]
        valid = out["doy"][position] > 0
        assert valid.tolist() == sorted(valid.tolist(), reverse=True)  # padded steps only at the end
        steps = [int(np.flatnonzero(tile.doy.astype(np.float32) / np.float32(365) == d)[0])
                 for d in out["doy"][position][valid]]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)
        x10 = tile.x10[steps].astype(np.float32) * np.float32(1e-4)
        np.testing.assert_array_equal(out["x10"][position][valid], x10)
        np.testing.assert_array_equal(out["x60"][position][~valid], 0)
        chosen.append(tuple(steps))
    assert len(set(chosen)) > 4  # not always the same steps
    with pytest.raises(UserError, match=r"temporal_samples = 7 must lie in 1..nobs = 6 of section \[2016\]"):
        Dataset(root, temporal_samples=7)
    with pytest.raises(UserError, match=r"temporal_samples = 0 must lie in 1..nobs = 6"):
        Dataset(root).pipeline("train", temporal_samples=0)


def first_batches(pipeline: tf.data.Dataset, count: int) -> list[dict[str, np.ndarray]]:
    return [batch for batch, _ in zip(iterate(pipeline), range(count), strict=False)]


def test_shuffle_is_reproducible_per_seed_and_new_every_epoch(root):
    def run_epochs(seed: int) -> list[dict[str, np.ndarray]]:
        pipeline = Dataset(root, temporal_samples=3).pipeline(
            "train", batchsize=4, shuffle=True, seed=seed, repeat=True, augment=True)
        return first_batches(pipeline, 6)  # three epochs of 8 tiles

    first, again, other = run_epochs(11), run_epochs(11), run_epochs(12)
    for a, b in zip(first, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    orders = [np.concatenate([b["tileid"] for b in first[i:i + 2]]).tolist() for i in (0, 2, 4)]
    assert all(sorted(order) == PARTITIONS["train_fold0"] for order in orders)
    assert len({tuple(order) for order in orders}) == 3  # reshuffled every epoch
    assert np.concatenate([b["tileid"] for b in other[:2]]).tolist() != orders[0]
    unshuffled = first_batches(Dataset(root).pipeline("train", batchsize=4, repeat=True), 4)
    assert np.concatenate([b["tileid"] for b in unshuffled]).tolist() == PARTITIONS["train_fold0"] * 2


SYMMETRIES = [(flip_h, flip_w, swap) for flip_h in (False, True) for flip_w in (False, True) for swap in (False, True)]


def test_augmentation_applies_one_symmetry_of_the_square_to_all_arrays(root, tiles):
    pipeline = Dataset(root).pipeline("train", batchsize=8, seed=3, repeat=True, augment=True)
    seen = set()
    for batch in first_batches(pipeline, 6):
        for position, tileid in enumerate(batch["tileid"]):
            plain = expected_sample(tiles[tileid], ds.read_classes(root))
            matches = [symmetry for symmetry in SYMMETRIES if all(
                np.array_equal(batch[key][position], transformed(plain[key], *symmetry, 0 if key == "labels" else 1))
                for key in ("x10", "x20", "x60", "labels"))]
            assert len(matches) == 1
            np.testing.assert_array_equal(batch["doy"][position], plain["doy"])
            seen.add(matches[0])
    assert seen == set(SYMMETRIES)


def transformed(value: np.ndarray, flip_h: bool, flip_w: bool, swap: bool, height_axis: int) -> np.ndarray:
    value = np.flip(value, height_axis) if flip_h else value
    value = np.flip(value, height_axis + 1) if flip_w else value
    return np.swapaxes(value, height_axis, height_axis + 1) if swap else value


@pytest.mark.parametrize(("partition", "fold", "expected"), [
    ("train", 0, PARTITIONS["train_fold0"]), ("test", 0, [9, 10, 11, 12]), ("train", 1, PARTITIONS["train_fold1"]),
    ("test", 1, [1, 2, 3, 4]), ("eval", 0, [13, 14]), ("custom", 0, [2, 3]),
])
def test_partitions_by_name_and_fold(root, partition, fold, expected):
    assert [tileid for tileid, _ in Dataset(root).tile_files(partition, fold)] == expected


def test_pipeline_file_selection(root):
    dataset = Dataset(root)
    tileids = collect(dataset.pipeline("train", batchsize=2, limit_batches=2, shuffle=True, seed=0))["tileid"]
    assert sorted(tileids.tolist()) == [1, 2, 3, 4]
    assert collect(dataset.pipeline("eval", fold=1, batchsize=2, tileids=[12, 2]))["tileid"].tolist() == [2, 12]
    assert collect(dataset.pipeline("test", fold=1, prefetch=None))["tileid"].tolist() == [1, 2, 3, 4]
    with pytest.raises(UserError, match="batchsize = 0 must be at least 1"):
        dataset.pipeline("train", batchsize=0)


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupted(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:164] = b"x" * 64
    path.write_bytes(bytes(data))


def rewritten(edit):
    def mutate(path: Path) -> None:
        tile = random_tile(np.random.default_rng(0), NOBS, PIX)
        with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
            writer.write(edited(tile, edit))
    return mutate


def replaced(**shape) -> callable:
    def mutate(path: Path) -> None:
        write_tile(path, random_tile(np.random.default_rng(0), **shape))
    return mutate


UNREADABLE = "no readable tf.train.Example record (the file is empty, truncated, corrupt or not a TFRecord)"


@pytest.mark.parametrize(("mutate", "message"), [
    (truncated, UNREADABLE),
    (corrupted, UNREADABLE),
    (lambda path: path.write_bytes(b""), UNREADABLE),
    (lambda path: path.write_bytes(gzip.compress(b"not a tfrecord")), UNREADABLE),
    (rewritten(drop("x60/data")), "record has no feature 'x60/data'"),
    (rewritten(set_values("x10/shape", [6, 12, 12, 3])), "'x10/data' has 27648 bytes but shape [6, 12, 12, 3] "
                                                         "needs 20736"),
    (replaced(nobs=5, pix=12), "x10 has shape [5, 12, 12, 4] but section [2016] of dataset.ini expects "
                               "[6, 12, 12, 4] (nobs, pix10, pix10, nbands10)"),
    (replaced(nobs=6, pix=24), "x10 has shape [6, 24, 24, 4] but section [2016] of dataset.ini expects "
                               "[6, 12, 12, 4] (nobs, pix10, pix10, nbands10)"),
], ids=["truncated", "corrupt", "empty", "not-tfrecord", "missing-feature", "bytes-vs-shape", "nobs", "pix10"])
def test_bad_records_raise_one_line_errors_naming_the_file(tmp_path, tiles, mutate, message):
    root = write_root(tmp_path, {1: tiles[1], 2: tiles[2], 3: tiles[3]})
    bad = root / "data16" / "2.tfrecord.gz"
    mutate(bad)
    with pytest.raises(UserError) as info:
        collect(Dataset(root).pipeline("train", batchsize=2))
    assert str(info.value) == f"{bad}: {message}"


def test_translate_errors_leaves_other_errors_alone():
    with pytest.raises(tf.errors.InvalidArgumentError), ds.translate_errors():
        raise tf.errors.InvalidArgumentError(None, None, "some model error")


# --- the summary CLI ---------------------------------------------------------------------------------------------

def test_cli_summary_numbers(root, tiles, capsys):
    ds.main([str(root)])
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0] == f"dataset {root}: 3 classes + unknown, sections 2016, 2017, fold 0"
    raw = np.stack([tiles[i].labels[0] for i in range(1, 15)])
    unlisted = {i: int((raw == i).sum()) for i in np.unique(raw) if i not in (0, 1, 5, 26)}
    listed = ", ".join(f"{i} ({n:,} px)" for i, n in sorted(unlisted.items(), key=lambda item: -item[1]))
    assert f"warning: {root / 'classes.txt'}: label ids of section [2016] that it does not list count as unknown " \
           f"(index 0): {listed}: {sum(unlisted.values()):,} of {int((raw != 0).sum()):,} labelled px" in captured.err
    observations = {tileid: int((tile.doy > 0).sum()) for tileid, tile in tiles.items()}

    def row(name: str, ids: list[int], missing: int, counts: dict[int, int] = observations) -> str:
        values = [counts[i] for i in ids]
        return (f"  {name:<14}{len(ids):>7}{missing:>9}   {min(values):>3} / {np.mean(values):.1f} / "
                f"{max(values)}")

    section = out[out.index("[2016] datadir data16/, pix10 12, nobs 6, bands 4/6/3"):]
    assert section[2:6] == [row("train_fold0", list(range(1, 9)), 0), row("test_fold0", [9, 10, 11, 12], 2),
                            row("eval", [13, 14], 0), "  class histogram of the 14 tiles of all partitions:"]
    labels = ds.read_classes(root).to_index(np.stack([tiles[i].labels[0] for i in range(1, 15)]))
    pixels = np.bincount(labels.ravel(), minlength=4)
    assert section[7] == f"      0    0  unknown             {pixels[0]:>12}{100 * pixels[0] / pixels.sum():>8.2f}%"
    assert section[10] == f"      3   26  maize               {pixels[3]:>12}{100 * pixels[3] / pixels.sum():>8.2f}%"
    section = out[out.index("[2017] datadir data17/, pix10 12, nobs 6, bands 4/6/3"):]
    full = {tileid: NOBS for tileid in TILES17}
    assert section[2:6] == [row("train_fold0", [1, 2], 6, full), row("test_fold0", [9], 5, full),
                            row("eval", [13], 1, full), "  class histogram of the 4 tiles of all partitions:"]


def test_cli_bad_root_exits_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run(ds.main, [str(tmp_path / "nowhere")])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: {tmp_path / 'nowhere'}: dataset root does not exist\n")


def test_resolve_datadir(tmp_path, monkeypatch):
    monkeypatch.delenv("datadir", raising=False)
    with pytest.raises(UserError, match="does not exist"):
        resolve_datadir(tmp_path / "missing")
    with pytest.raises(UserError, match="no dataset.ini"):
        resolve_datadir(tmp_path)
    (tmp_path / "dataset.ini").write_text("[2016]\n")
    assert resolve_datadir(tmp_path) == tmp_path
    monkeypatch.setenv("datadir", str(tmp_path))
    assert resolve_datadir(None) == tmp_path
