"""activations.py: the per-date gates equal the model's own outputs and the float64 reference, the files and their
count, sequence lengths honoured, and one-line errors for bad input."""

from __future__ import annotations

import keras
import matplotlib
import numpy as np
import pytest
from PIL import Image

import activations as script
from modelzoo.params import ModelParams, write_params_ini
from tests import reference
from utils import activations
from utils.cli import run
from utils.dataset import Dataset, iterate
from utils.modelfolder import ModelFolder, TrainingState, read_checkpoint
from utils.rasters import colorize
from utils.records import read_tile

FILTERS = 4
GATE_FILES = {"lstm": ("iGate", "jGate", "fGate", "oGate", "state", "output"),
              "gru": ("rGate", "uGate", "candidate", "output")}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, ModelFolder]:
    """A freshly initialised GRU and LSTM model folder (F = 4) with one checkpoint each."""
    folders = {}
    keras.utils.set_random_seed(7)
    for cell in ("gru", "lstm"):
        path = tmp_path_factory.mktemp(cell)
        write_params_ini(path / "params.ini", ModelParams(convcell=cell, convrnn_filters=FILTERS))
        folder = ModelFolder(path)
        TrainingState(folder.build_model()).save(folder)
        folders[cell] = folder
    return folders


@pytest.fixture(scope="module")
def tile(synthetic_root) -> tuple[int, int]:
    """(tile id, number of dates) of an eval tile of the 24 px data with fewer dates than nobs."""
    dataset = Dataset(synthetic_root / "240", "2016")
    for tileid, path in dataset.tile_files("eval"):
        length = int((read_tile(path).doy > 0).sum())
        if length < dataset.config.nobs:
            return tileid, length
    raise AssertionError("no padded eval tile in the synthetic dataset")


def _assert_close(actual, desired):
    """float32 recurrence against the float64 reference: rounding differences grow over 20 dates through the layer
    norm and depend on the CPU's kernels, so nearly all values must agree to 1e-4 and none may be off by 2e-3."""
    error = np.abs(np.asarray(actual, np.float64) - desired)
    assert actual.shape == desired.shape
    assert np.quantile(error, 0.999) < 1e-4 and error.max() < 2e-3, (np.quantile(error, 0.999), error.max())


def _run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        run(script.main, argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def written(models, tile, synthetic_root, tmp_path_factory) -> dict[str, object]:
    """The output folder ``sample0`` of one activations.py run per cell type, drawing channel 3 only."""
    folders = {}
    for cell, folder in models.items():
        out = tmp_path_factory.mktemp(f"activations_{cell}")
        script.main([str(folder.path), str(synthetic_root / "240"), str(out), "-p", "eval", "-t", str(tile[0]),
                     "--channels", "3"])
        folders[cell] = out / "sample0"
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gates_equal_the_reference_and_the_final_state(cell, models, tile, written, synthetic_root):
    tileid, length = tile
    folder, sample = models[cell], written[cell]
    arrays = {name: np.load(sample / "arrays" / f"{name}.npy") for name in ("x", "final_state", "prediction_scores",
                                                                            "ground_truth", "predictions")}
    fw = {name: np.load(sample / "arrays" / f"{name}.npy") for name in GATE_FILES[cell]}
    bw = {name: np.load(sample / "backward" / "arrays" / f"{name}.npy") for name in GATE_FILES[cell]}
    assert all(a.shape == (length, 24, 24, FILTERS) for a in [*fw.values(), *bw.values()])

    # the final state is h (GRU) or c (LSTM) of the last valid date forward and of date 0 backward
    state = "output" if cell == "gru" else "state"
    np.testing.assert_allclose(arrays["final_state"][..., :FILTERS], fw[state][length - 1], atol=1e-6)
    np.testing.assert_allclose(arrays["final_state"][..., FILTERS:], bw[state][0], atol=1e-6)

    # every gate equals the float64 reference of the network with the checkpoint's weights
    dataset = Dataset(synthetic_root / "240", "2016")
    batch = next(iterate(dataset.pipeline("eval", batchsize=1, tileids=[tileid], temporal_samples=None)))
    weights = read_checkpoint(folder.checkpoint())
    x, lengths, _, final, gates = reference.encoder(batch, weights, folder.params)
    assert lengths[0] == length
    names = dict(zip(GATE_FILES[cell], ("i", "j", "f", "o", "c", "h") if cell == "lstm"
                     else ("r", "u", "candidate", "h"), strict=True))
    for direction, values in (("fw", fw), ("bw", bw)):
        for file, array in values.items():
            _assert_close(array, gates[0][direction][names[file]][0, :length])
    np.testing.assert_allclose(arrays["x"], x[0, :length], atol=1e-6)
    _assert_close(arrays["final_state"], final[0])

    np.testing.assert_allclose(arrays["prediction_scores"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(arrays["predictions"], arrays["prediction_scores"].argmax(-1) + 1)
    np.testing.assert_array_equal(arrays["ground_truth"], batch["labels"][0])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_png_names_count_and_sequence_length(cell, tile, written):
    length = tile[1]
    sample = written[cell]
    gates = GATE_FILES[cell]
    expected = {f"time{t}_x.png" for t in range(length)} | {"ground_truth.png", "predictions.png"}
    expected |= {"final_state/3.png", f"final_state/{FILTERS + 3}.png"}
    expected |= {f"prediction_scores/{k}.png" for k in range(17)}
    for prefix in ("", "backward/"):
        expected |= {f"{prefix}time{t}/3_{g}.png" for t in range(length) for g in gates}
    written_pngs = {str(p.relative_to(sample)) for p in sample.rglob("*.png")}
    assert written_pngs == expected
    assert len(written_pngs) == 2 * length * len(gates) + length + 2 + 2 + 17
    assert not (sample / f"time{length}").exists()  # no images of padded dates
    gifs = {str(p.relative_to(sample)) for p in sample.rglob("*.gif")}
    assert gifs == {"animations/x.gif"} | {f"{p}animations/3_{g}.gif" for p in ("", "backward/") for g in gates}
    with Image.open(sample / "animations" / f"3_{gates[0]}.gif") as gif:
        assert gif.n_frames == length
    assert (sample / "dates.csv").read_text().count("\n") == length + 1

    # gate PNGs use the original's colour maps: inferno for a gate in (0, 1), the value read back by its colour
    gate = np.load(sample / "arrays" / f"{gates[0]}.npy")[length - 1, ..., 3]
    with Image.open(sample / f"time{length - 1}" / f"3_{gates[0]}.png") as image:
        rgb = np.asarray(image.convert("RGB"))[::10, ::10]  # upscaled 10x
    lut = matplotlib.colormaps["inferno"](np.arange(256), bytes=True)[:, :3].astype(int)
    found = np.abs(rgb[..., None, :].astype(int) - lut).sum(-1).argmin(-1) / 255.0
    np.testing.assert_allclose(found, gate, atol=1.5 / 255)
    with Image.open(sample / "ground_truth.png") as image:
        truth = np.load(sample / "arrays" / "ground_truth.npy")
        np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[::10, ::10], colorize(truth))


def test_no_png_writes_only_arrays_of_the_partitions_first_tile(models, synthetic_root, tmp_path, capsys):
    script.main([str(models["gru"].path), str(synthetic_root / "240"), str(tmp_path), "-p", "eval", "--no-png"])
    first, path = Dataset(synthetic_root / "240", "2016").tile_files("eval")[0]
    assert capsys.readouterr().out.startswith(f"tile {first}:")
    sample = tmp_path / "sample0"
    assert not list(sample.rglob("*.png")) and not list(sample.rglob("*.gif"))
    length = int((read_tile(path).doy > 0).sum())
    assert np.load(sample / "backward" / "arrays" / "rGate.npy").shape == (length, 24, 24, FILTERS)


@pytest.mark.parametrize(("extra", "message"), [
    (["-t", "99999"], "no file for tile 99999 (tiles of partition eval: "),
    (["--gates", "r"], "--gates: 'r' is a ConvGRU gate; the model's ConvLSTM cell has i, j, f, o, c, h"),
    (["--gates", "x"], "--gates: 'x' is no gate"),
    (["--channels", "0,9"], "--channels: channel 9 does not exist (the cell has 4, 0..3)"),
    (["--channels", "a-b"], "--channels 'a-b': expected 'all' or indices and ranges"),
    (["--layer", "2"], "--layer 2: the model has 1 ConvRNN layer(s)"),
    (["-d", "2015"], "no section [2015]"),
    (["--checkpoint", "model.ckpt-7"], "model.ckpt-7: no such checkpoint"),
])
def test_bad_input_is_a_one_line_error(extra, message, models, tile, synthetic_root, tmp_path, capsys):
    argv = [str(models["lstm"].path), str(synthetic_root / "240"), str(tmp_path), "-p", "eval", "--no-png", *extra]
    code, err = _run(argv, capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "sample0").exists()


def test_unknown_tile_lists_valid_ids(models, synthetic_root, tmp_path, capsys):
    code, err = _run([str(models["gru"].path), str(synthetic_root / "240"), str(tmp_path), "-p", "eval",
                      "-t", "99999"], capsys)
    valid = Dataset(synthetic_root / "240", "2016").tile_files("eval")
    assert code == 2 and ", ".join(str(tileid) for tileid, _ in valid[:8]) in err


def test_channel_selection():
    assert activations.parse_channels("2", FILTERS) == [2]
    assert activations.parse_channels("0-1", FILTERS) == [0, 1]
    assert activations.parse_channels("all", FILTERS) == [0, 1, 2, 3]
    assert activations.parse_channels("3,0-1,1", FILTERS) == [0, 1, 3]


def test_rgb_stretch_ignores_cloudy_dates():
    rng = np.random.default_rng(0)
    clear = rng.uniform(0.02, 0.10, size=(5, 8, 8, 3))
    cloudy = rng.uniform(0.5, 0.9, size=(5, 8, 8, 3))
    low, high = activations.rgb_stretch(np.concatenate([clear, cloudy]))
    np.testing.assert_allclose(low, np.percentile(clear.reshape(-1, 3), 2, axis=0))
    np.testing.assert_allclose(high, np.percentile(clear.reshape(-1, 3), 98, axis=0))
    rgb = activations.to_rgb8(np.array([[low - 1, low, low + 0.2 * (high - low), high, high + 1]]), low, high)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 0, 51, 255, 255])
