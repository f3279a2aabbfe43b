"""Tests of the synthetic dataset (utils.synthetic): format, determinism, physics, realism and learnability."""

from __future__ import annotations

import configparser
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import SYNTHETIC_BLOCKS as BLOCKS

from utils.bands import BANDS, GROUPS
from utils.classes import ORIGINAL_CLASSES
from utils.cli import UserError, run
from utils.georef import read_geotransforms
from utils.records import Tile, decode_tile, read_tile
from utils.synthetic import ensure_default_dataset, generate, make_world, render_tile
from utils.synthetic import writer as synthetic_writer
from utils.synthetic.__main__ import main
from utils.synthetic.phenology import CROPS, FOREST_CONIFER, FOREST_DECIDUOUS
from utils.synthetic.render import block_mean

YEARS = (2016, 2017)
NOBS = 46
PARTITIONS = ["eval"] + [f"{p}_fold{k}" for k in range(10) for p in ("train", "test")]
WHEAT, MAIZE, RAPE, MEADOW = 22, 26, 5, 3
B = {name: BANDS.index(name) for name in BANDS}


@pytest.fixture(scope="module")
def dataset(synthetic_root) -> Path:
    """The session's synthetic dataset (tests/conftest.py), generated with BLOCKS, YEARS and NOBS."""
    return synthetic_root


@pytest.fixture(scope="module")
def records(dataset) -> dict[int, dict[int, Tile]]:
    """Every record of the 240 root per year and tile id (read as one GZIP TFRecord stream)."""
    out = {}
    for year in YEARS:
        files = data_files(dataset / "240", year)
        ids = sorted(files)
        stream = tf.data.TFRecordDataset([str(files[i]) for i in ids], compression_type="GZIP")
        out[year] = {i: decode_tile(data) for i, data in zip(ids, stream.as_numpy_iterator(), strict=True)}
    return out


@pytest.fixture(scope="module")
def world():
    return make_world(0, BLOCKS, YEARS, NOBS)


@pytest.fixture(scope="module")
def scenes(world) -> dict:
    rows, cols = world.tiles
    return {(year, r, c): render_tile(world, year, r, c) for year in YEARS for r in range(rows) for c in range(cols)}


def tileids(root: Path, name: str) -> list[int]:
    return [int(line) for line in (root / "tileids" / f"{name}.tileids").read_text().split()]


def data_files(root: Path, year: int) -> dict[int, Path]:
    folder = root / f"data{year % 100}"
    return {int(path.name.split(".")[0]): path for path in folder.iterdir()}


def by_origin(root: Path) -> dict[tuple[float, float], int]:
    return {georef.origin: tileid for tileid, georef in read_geotransforms(root / "geotransforms.csv").items()}


def clear(scene, t: int) -> np.ndarray:
    """Pixels of date index t without cloud, cirrus, shadow or snow."""
    return (scene.cloud[t] < 0.01) & (scene.cirrus[t] < 0.001) & (scene.shadow[t] < 0.01) & (scene.snow[t] < 0.01)


# --- format -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pix", [24, 48])
def test_root_has_every_file_of_the_original_layout(dataset, pix):
    root = dataset / str(pix * 10)
    config = configparser.ConfigParser()
    config.read(root / "dataset.ini")
    assert config.sections() == ["2016", "2017"]
    for year in YEARS:
        assert dict(config[str(year)]) == {"datadir": f"data{year % 100}", "pix10": str(pix), "nobs": "46",
                                           "nbands10": "4", "nbands20": "6", "nbands60": "3",
                                           "tiletable": f"tiles{pix * 10}"}
    lines = (root / "classes.txt").read_text().splitlines()
    assert lines[0] == "0|unknown" and len(lines) == 18
    assert [int(line.split("|")[0]) for line in lines] == [0, 1, 2, 3, 5, 8, 9, 12, 13, 15, 16, 17, 19, 22, 23, 24,
                                                           25, 26]
    assert lines[13] == "22|winter wheat" and lines[17] == "26|maize" and lines[10] == "16|potatoe"
    assert sorted(p.name for p in (root / "tileids").iterdir()) == sorted(f"{name}.tileids" for name in PARTITIONS)
    n_tiles = (BLOCKS[0] * BLOCKS[1] * 192 // pix) * (192 // pix)
    georefs = read_geotransforms(root / "geotransforms.csv")
    assert len(georefs) == n_tiles
    for year in YEARS:
        files = data_files(root, year)
        assert sorted(files) == sorted(georefs) == list(range(n_tiles))
        assert all(path.name.endswith(".tfrecord.gz") for path in files.values())
    stamp = json.loads((root / "synthetic.json").read_text())
    assert stamp["seed"] == 0 and stamp["blocks"] == list(BLOCKS) and stamp["tiles_per_year"] == n_tiles


@pytest.mark.parametrize("pix", [24, 48])
def test_records_have_the_expected_shapes(dataset, pix):
    tile = read_tile(dataset / str(pix * 10) / "data16" / "3.tfrecord.gz")
    assert tile.x10.shape == (NOBS, pix, pix, 4)
    assert tile.x20.shape == (NOBS, pix // 2, pix // 2, 6)
    assert tile.x60.shape == (NOBS, pix // 6, pix // 6, 3)
    assert tile.doy.shape == tile.year.shape == (NOBS,)
    assert tile.labels.shape == (NOBS, pix, pix)
    assert np.all(tile.labels == tile.labels[:1])


def test_geotransforms_are_10m_utm32_and_480_tiles_align_with_240_tiles(dataset):
    small = read_geotransforms(dataset / "240" / "geotransforms.csv")
    large = read_geotransforms(dataset / "480" / "geotransforms.csv")
    for georef in [*small.values(), *large.values()]:
        assert georef.transform[1:3] == (10, 0) and georef.transform[4:] == (0, -10) and georef.epsg == 32632
        x, y = georef.origin
        assert 600_000 < x < 800_000 and 5_250_000 < y < 5_500_000  # Bavaria in UTM zone 32N
    origins = by_origin(dataset / "240")
    covered = set()
    for georef in large.values():
        x, y = georef.origin
        quarter = {origins[(x + 240.0 * dc, y - 240.0 * dr)] for dr in (0, 1) for dc in (0, 1)}
        assert len(quarter) == 4
        covered |= quarter
    assert covered == set(small)
    row = (dataset / "480" / "geotransforms.csv").read_text().splitlines()[0]
    assert row == "0,690000.0,10,0,5370000.0,0,-10,32632"


def test_each_480_tile_is_the_mosaic_of_four_240_tiles(dataset):
    large = read_geotransforms(dataset / "480" / "geotransforms.csv")
    origins = by_origin(dataset / "240")
    for tileid in (0, 13):
        big = read_tile(dataset / "480" / "data17" / f"{tileid}.tfrecord.gz")
        x, y = large[tileid].origin
        for dr in (0, 1):
            for dc in (0, 1):
                part_id = origins[(x + 240.0 * dc, y - 240.0 * dr)]
                part = read_tile(dataset / "240" / "data17" / f"{part_id}.tfrecord.gz")
                rows, cols = slice(24 * dr, 24 * dr + 24), slice(24 * dc, 24 * dc + 24)
                np.testing.assert_array_equal(part.x10, big.x10[:, rows, cols])
                np.testing.assert_array_equal(part.labels, big.labels[:, rows, cols])
                np.testing.assert_array_equal(part.x20, big.x20[:, 12 * dr:12 * dr + 12, 12 * dc:12 * dc + 12])
                np.testing.assert_array_equal(part.x60, big.x60[:, 4 * dr:4 * dr + 4, 4 * dc:4 * dc + 4])
                np.testing.assert_array_equal(part.doy, big.doy)


@pytest.mark.parametrize("pix", [24, 48])
def test_partitions_hold_out_spatial_blocks_and_deal_the_rest_into_ten_folds(dataset, pix):
    root = dataset / str(pix * 10)
    every = set(read_geotransforms(root / "geotransforms.csv"))
    evaluation = set(tileids(root, "eval"))
    tests = [set(tileids(root, f"test_fold{k}")) for k in range(10)]
    rest = every - evaluation
    assert set().union(*tests) == rest and sum(len(t) for t in tests) == len(rest)
    assert all(len(t) > 0 for t in tests)
    for k in range(10):
        assert set(tileids(root, f"train_fold{k}")) == rest - tests[k]
    # eval is one whole block of 1.92 km x 1.92 km (a fifth of two blocks rounds up to one)
    georefs = read_geotransforms(root / "geotransforms.csv")
    xs = {georefs[i].origin[0] for i in evaluation}
    ys = {georefs[i].origin[1] for i in evaluation}
    assert len(evaluation) == (192 // pix) ** 2 and max(xs) - min(xs) == max(ys) - min(ys) == 1920 - 10 * pix
    assert (min(xs) - 690_000) % 1920 == 0


def test_240_partitions_follow_their_480_tile(dataset):
    large = read_geotransforms(dataset / "480" / "geotransforms.csv")
    origins = by_origin(dataset / "240")
    for name in ["eval", "test_fold0", "test_fold5"]:
        inside = set()
        for tileid in tileids(dataset / "480", name):
            x, y = large[tileid].origin
            inside |= {origins[(x + 240.0 * dc, y - 240.0 * dr)] for dr in (0, 1) for dc in (0, 1)}
        assert inside == set(tileids(dataset / "240", name))


# --- signal -------------------------------------------------------------------------------------------------------

def test_records_are_the_rendered_bands_with_20m_and_60m_as_block_means(dataset, scenes):
    origins = by_origin(dataset / "240")
    for year, row, col in [(2016, 0, 0), (2017, 2, 5)]:
        scene = scenes[(year, row, col)]
        t = len(scene.doy)
        for dr, dc in [(0, 0), (1, 1)]:
            tileid = origins[(690_000.0 + 480 * col + 240 * dc, 5_370_000.0 - 480 * row - 240 * dr)]
            tile = read_tile(dataset / "240" / f"data{year % 100}" / f"{tileid}.tfrecord.gz")
            bands = scene.bands[:, 24 * dr:24 * dr + 24, 24 * dc:24 * dc + 24]
            x10, x20, x60 = (group.positions for group in GROUPS)
            np.testing.assert_array_equal(tile.x10[:t], np.rint(bands[..., x10]))
            assert np.abs(tile.x20[:t] - block_mean(bands[..., x20], 2)).max() <= 0.5 + 1e-6
            assert np.abs(tile.x60[:t] - block_mean(bands[..., x60], 6)).max() <= 0.5 + 1e-6
            np.testing.assert_array_equal(tile.labels[0], scene.labels[24 * dr:24 * dr + 24, 24 * dc:24 * dc + 24])
            np.testing.assert_array_equal(tile.doy[:t], scene.doy)


@pytest.mark.parametrize("year", YEARS)
def test_dates_are_zero_padded_after_the_last_observation(records, year):
    lengths = []
    for tile in records[year].values():
        t = int(np.sum(tile.doy > 0))
        lengths.append(t)
        assert 4 <= t <= NOBS
        assert np.all(np.diff(tile.doy[:t]) > 0) and tile.doy[0] >= 1 and tile.doy[t - 1] <= 366
        assert np.all(tile.year[:t] == year)
        assert not tile.doy[t:].any() and not tile.year[t:].any()
        for x in (tile.x10, tile.x20, tile.x60):
            assert not x[t:].any() and x[:t].min() >= 1  # valid steps are never 0 (the model counts x10 > 0)
    assert len(set(lengths)) >= 2  # tiles under one or two orbits have different numbers of dates


def test_2017_with_sentinel_2b_has_more_observations_than_2016(world):
    counts = {year: [len(dates) for dates in world.skies[year].dates] for year in YEARS}
    assert counts[2017][0] > counts[2016][0] and counts[2017][2] > counts[2016][2]  # zones seen by one orbit
    assert counts[2016][1] > max(counts[2016][0], counts[2016][2])  # both orbits
    sky16, sky17 = world.skies[2016], world.skies[2017]
    assert set(sky16.satellite) == {"S2A"} and set(sky17.satellite) == {"S2A", "S2B"}
    assert set(sky16.doy[sky16.dates[1]]) != set(sky17.doy[sky17.dates[1]])


def test_clouds_are_bright_flat_and_cast_darker_shadows(scenes):
    cover = np.concatenate([scene.cloud.mean(axis=(1, 2)) for scene in scenes.values()])
    assert (cover > 0.98).sum() >= 3 and (cover < 0.001).mean() > 0.25  # some fully cloudy dates, many clear
    opaque, b10_cloud, b10_cirrus, b10_clear, darkening = [], [], [], [], []
    for scene in scenes.values():
        for t in range(len(scene.doy)):
            thick = scene.cloud[t] > 0.95
            opaque.append(scene.bands[t][thick][:, [B["B02"], B["B03"], B["B04"], B["B08"]]])
            b10_cloud.append(scene.bands[t][thick][:, B["B10"]])
            b10_clear.append(scene.bands[t][clear(scene, t)][:, B["B10"]])
            b10_cirrus.append(scene.bands[t][(scene.cirrus[t] > 0.01) & (scene.cloud[t] < 0.01)][:, B["B10"]])
            shaded = (scene.shadow[t] > 0.7) & (scene.cloud[t] < 0.01)
            sunny = clear(scene, t)
            if shaded.sum() > 50 and sunny.sum() > 50:
                darkening.append(np.median(scene.bands[t][shaded][:, B["B08"]])
                                 / np.median(scene.bands[t][sunny][:, B["B08"]]))
    opaque = np.concatenate(opaque)
    assert len(opaque) > 1000 and np.median(opaque.min(axis=1)) > 2500
    assert np.median(opaque.std(axis=1) / opaque.mean(axis=1)) < 0.1  # spectrally flat
    assert np.percentile(np.concatenate(b10_clear), 99) < 40  # B10 sees no surface
    assert np.median(np.concatenate(b10_cirrus)) > 100  # thin cirrus shows in B10
    assert np.concatenate(b10_cloud).max() > 1000  # high clouds are bright in B10
    assert len(darkening) >= 3 and np.median(darkening) < 0.6


# --- landscape and phenology --------------------------------------------------------------------------------------

def test_class_imbalance_follows_the_paper_with_maize_and_winter_wheat_largest(world):
    listed = list(ORIGINAL_CLASSES.ids[1:])
    for y in range(len(YEARS)):
        labels = world.landscape.labels(y, slice(1, -1), slice(1, -1))
        counts = {raw: int(np.sum(labels == raw)) for raw in listed}
        assert sorted(counts, key=counts.get)[-2:] in ([WHEAT, MAIZE], [MAIZE, WHEAT])
        assert (counts[WHEAT] + counts[MAIZE]) / sum(counts.values()) > 0.45
        assert min(counts.values()) > 0  # every class in every block
        assert np.sum(labels == 6) > 0 and 6 not in listed  # a raw id missing from classes.txt
        assert 0.15 < np.mean(labels == 0) < 0.5  # borders, roads, forest, villages, water


def test_crops_rotate_between_years_on_the_same_parcels(world):
    first, second = world.landscape.cover
    crops = first < 100
    permanent = np.isin(first, [crop.raw for crop in CROPS if crop.permanent])
    np.testing.assert_array_equal(first[~crops], second[~crops])
    np.testing.assert_array_equal(first[permanent], second[permanent])
    assert np.all(first[crops & ~permanent] != second[crops & ~permanent])


def median_over_clear(scenes, year, crop, value) -> dict[int, float]:
    """Median of ``value(bands)`` over clear pixels of ``crop`` per day of year."""
    out: dict[int, list] = {}
    for (y, _, _), scene in scenes.items():
        if y != year:
            continue
        for t, doy in enumerate(scene.doy):
            chosen = clear(scene, t) & (scene.labels == crop)
            if chosen.sum() >= 20:
                out.setdefault(int(doy), []).append(value(scene.bands[t][chosen]))
    return {doy: float(np.median(np.concatenate(v))) for doy, v in out.items()}


def ndvi(bands: np.ndarray) -> np.ndarray:
    return (bands[:, B["B08"]] - bands[:, B["B04"]]) / (bands[:, B["B08"]] + bands[:, B["B04"]])


@pytest.mark.parametrize("year", YEARS)
def test_winter_wheat_greens_up_early_and_maize_late(scenes, year):
    wheat = median_over_clear(scenes, year, WHEAT, ndvi)
    maize = median_over_clear(scenes, year, MAIZE, ndvi)
    wheat_peak, maize_peak = max(wheat, key=wheat.get), max(maize, key=maize.get)
    assert 100 < wheat_peak < 185 and 195 < maize_peak < 260
    assert wheat[wheat_peak] > 0.6 and maize[maize_peak] > 0.6
    assert np.median([v for d, v in wheat.items() if 230 < d < 260]) < 0.4  # harvested
    assert np.median([v for d, v in maize.items() if d < 120]) < 0.3  # bare before sowing
    meadow = median_over_clear(scenes, year, MEADOW, ndvi)
    assert np.median([v for d, v in meadow.items() if 170 < d < 280]) > 0.6


def test_rape_flowers_yellow_in_may(scenes):
    def yellow(bands):
        return (bands[:, B["B03"]] + bands[:, B["B04"]]) / 2

    for year in YEARS:
        rape = median_over_clear(scenes, year, RAPE, yellow)
        wheat = median_over_clear(scenes, year, WHEAT, yellow)
        may = [d for d in rape if 118 <= d <= 140 and d in wheat]
        assert may and all(rape[d] > 1.4 * wheat[d] for d in may)
        june = [d for d in rape if 150 <= d <= 166 and d in wheat]  # flowers gone, not yet ripe
        assert june and all(rape[d] < 1.25 * wheat[d] for d in june)


def test_toa_spectra_match_real_sentinel2_l1c(realdata, scenes):
    """Summer forest and meadow medians are within a factor 1.5 of real L1C forest and grassland (Slovenia)."""
    folder = realdata / "eolearn_testeopatch_slovenia"
    real = np.load(folder / "REFERENCE_SCENES.npy")[[2, 3, 4]] * 1e4  # the cloud-free dates (Jul to Sep)
    lulc = np.load(folder / "mask_timeless" / "LULC.npy")[..., 0]
    for real_class, codes in [(2, [FOREST_CONIFER, FOREST_DECIDUOUS]), (3, [MEADOW])]:
        reference = np.median(real[:, lulc == real_class], axis=(0, 1))
        ours = []
        for scene in scenes.values():
            for t in np.flatnonzero((scene.doy >= 190) & (scene.doy <= 255)):
                ours.append(scene.bands[t][clear(scene, t) & np.isin(scene.cover, codes)])
        ours = np.median(np.concatenate(ours), axis=0)
        ratio = np.delete(ours / reference, B["B10"])
        assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), dict(zip(BANDS, np.round(ours / reference, 2), strict=True))
        assert abs(ours[B["B10"]] - reference[B["B10"]]) < 20


# --- learnability -------------------------------------------------------------------------------------------------

MONTH_STARTS = np.array([1, 32, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 367])


def pixel_features(tile) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: median NDVI, green and SWIR reflectance of the dates with B02 < 0.13 (no cloud) per month Apr-Oct."""
    t = int(np.sum(tile.doy > 0))
    red, green, blue, nir = np.moveaxis(tile.x10[:t].astype(float), -1, 0)
    swir = np.repeat(np.repeat(tile.x20[:t, ..., 4], 2, axis=1), 2, axis=2).astype(float)
    month = np.searchsorted(MONTH_STARTS, tile.doy[:t], side="right") - 1
    features = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN months
        for m in range(3, 10):
            usable = (month == m)[:, None, None] & (blue < 1300)
            for value in ((nir - red) / (nir + red), green / 1e4, swir / 1e4):
                features.append(np.nanmedian(np.where(usable, value, np.nan), axis=0))
    return np.stack(features, axis=-1).reshape(-1, len(features)), tile.labels[0].ravel()


def load_pixels(records, root: Path, partition: str) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    for year in YEARS:
        for tileid in tileids(root, partition):
            f, y = pixel_features(records[year][tileid])
            features.append(f)
            labels.append(y)
    return np.concatenate(features), np.concatenate(labels)


@pytest.mark.slow
def test_a_simple_pixel_classifier_learns_but_is_far_from_perfect(dataset, records):
    """Gaussian naive Bayes on monthly cloud-screened medians: train_fold0 -> eval (both years)."""
    root = dataset / "240"
    listed = np.array(list(ORIGINAL_CLASSES.ids[1:]))
    train_x, train_y = load_pixels(records, root, "train_fold0")
    eval_x, eval_y = load_pixels(records, root, "eval")
    keep_train, keep_eval = np.isin(train_y, listed), np.isin(eval_y, listed)
    train_x, train_y, eval_x, eval_y = train_x[keep_train], train_y[keep_train], eval_x[keep_eval], eval_y[keep_eval]
    fill = np.nanmean(train_x, axis=0)
    train_x, eval_x = np.where(np.isnan(train_x), fill, train_x), np.where(np.isnan(eval_x), fill, eval_x)
    present = [c for c in listed if np.any(train_y == c)]
    mean = np.stack([train_x[train_y == c].mean(axis=0) for c in present])
    var = np.stack([train_x[train_y == c].var(axis=0) for c in present]) + 1e-4
    prior = np.array([np.mean(train_y == c) for c in present])
    loglik = -0.5 * (((eval_x[:, None, :] - mean) ** 2) / var + np.log(var)).sum(axis=-1) + np.log(prior)
    accuracy = np.mean(np.array(present)[loglik.argmax(axis=1)] == eval_y)
    majority = max(np.mean(eval_y == c) for c in listed)
    assert majority < 0.4
    assert majority + 0.2 < accuracy < 0.9, (accuracy, majority)


# --- determinism, arguments, default dataset, CLI -----------------------------------------------------------------

def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_another_landscape(tmp_path):
    for name in ("a", "b"):
        generate(tmp_path / name, seed=3, blocks=(1, 2), years=(2017,), nobs=8)
    first, second = all_bytes(tmp_path / "a"), all_bytes(tmp_path / "b")
    assert len(first) == (128 + 25) + (32 + 25) and first == second  # records + 4 files + 21 partitions per root
    assert all(not name.startswith(".") for name in first)  # no leftover temporary files
    seed3, seed4 = make_world(3, (1, 2), (2017,), 8), make_world(4, (1, 2), (2017,), 8)
    assert np.mean(seed3.landscape.labels(0, slice(None), slice(None))
                   == seed4.landscape.labels(0, slice(None), slice(None))) < 0.6
    assert not np.array_equal(render_tile(seed3, 2017, 0, 0).bands, render_tile(seed4, 2017, 0, 0).bands)


@pytest.mark.parametrize("kwargs, message", [
    ({"blocks": (1, 1)}, "at least 2 blocks"),
    ({"blocks": (0, 3)}, "at least 2 blocks"),
    ({"nobs": 0}, "nobs 0"),
    ({"years": ()}, "years"),
    ({"years": (2016, 2016)}, "years"),
    ({"seed": -1}, "seed -1"),
])
def test_bad_arguments_raise_user_errors(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        generate(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_cli_reports_a_bad_argument_in_one_line_with_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(main, ["--outdir", str(tmp_path), "--blocks", "1", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error: blocks 1 1" in err


def test_cli_writes_both_roots_and_prints_a_summary(tmp_path, capsys):
    main(["--outdir", str(tmp_path), "--blocks", "2", "1", "--nobs", "5", "--seed", "7"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{tmp_path / '240'}: 24 px tiles; 2016: 128 tiles with")
    assert out[1].startswith(f"{tmp_path / '480'}: 48 px tiles; 2016: 32 tiles with")
    assert "2017:" in out[0] and out[2].startswith("wrote ") and out[2].endswith(" s")
    assert read_tile(tmp_path / "480" / "data17" / "31.tfrecord.gz").x10.shape == (5, 48, 48, 4)


def test_ensure_default_dataset_generates_once_and_returns_the_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(synthetic_writer, "SYNTHETIC_ROOT", tmp_path / "synthetic")
    monkeypatch.setattr(synthetic_writer, "DEFAULTS", {"seed": 0, "blocks": (2, 1), "years": (2016,), "nobs": 4})
    root = ensure_default_dataset(24)
    assert root == tmp_path / "synthetic" / "240" and (root / "dataset.ini").is_file()
    assert "generating the synthetic dataset in" in capsys.readouterr().err
    assert ensure_default_dataset(48) == tmp_path / "synthetic" / "480"
    assert ensure_default_dataset(24) == root
    assert capsys.readouterr().err == ""  # already there: nothing generated
    (root / "synthetic.json").write_text('{"version": 0}')  # another generator version: regenerate
    ensure_default_dataset(24)
    assert "generating" in capsys.readouterr().err
    with pytest.raises(UserError, match="pix10m 32"):
        ensure_default_dataset(32)
