"""The weight tools: init_graph.py, compare_graphs.py and copy_network_weights.py (ORIGINAL.md §5), incl. the original
README's 24 px → 48 px sequence."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import compare_graphs
import copy_network_weights
import init_graph
from modelzoo import seqencmodel
from modelzoo.params import ModelParams, write_params_ini
from tests.builders import make_batch, make_model_folder
from utils.cli import UserError, run
from utils.modelfolder import ModelFolder, TrainingState, read_checkpoint, record_checkpoint, write_checkpoint

REPO = Path(__file__).resolve().parents[1]
GATES = "convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/kernel"


def make_folder(path: Path, seed: int, steps: int | None = None, **options) -> Path:
    """A model folder (F=4, 5 classes unless given) with an initial checkpoint; with ``steps``, also a checkpoint
    ``model.ckpt-<steps>`` with those counters, as training would leave it."""
    make_model_folder(path, checkpoint=True, seed=seed, **{"convrnn_filters": 4, "num_classes": 5, **options})
    if steps is not None:
        values = read_checkpoint(path / "model.ckpt-0")
        values["global_step"], values["samples_seen"] = np.int64(steps), np.int64(4 * steps)
        write_checkpoint(path / f"model.ckpt-{steps}", values)
        record_checkpoint(path, f"model.ckpt-{steps}")
    return path


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_readme_sequence_24_to_48_px(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    seqencmodel.main(["--modelfolder", "tmp/convgru128", "--convrnn_filters", "128", "--convcell", "gru",
                      "--num_classes", "17", "--pix10m", "24"])
    initial = init_graph.main(["tmp/convgru128/graph.meta", "--seed", "1"])  # stands in for train.py
    trained = read_checkpoint(initial)
    trained["global_step"], trained["samples_seen"] = np.int64(640), np.int64(2560)
    write_checkpoint("tmp/convgru128/model.ckpt-640", trained)
    record_checkpoint("tmp/convgru128", "model.ckpt-640")
    # the README, verbatim from here on
    seqencmodel.main(["--modelfolder", "tmp/convgru128_48px", "--convrnn_filters", "128", "--convcell", "gru",
                      "--num_classes", "17", "--pix10m", "48"])
    init_graph.main(["tmp/convgru128_48px/graph.meta"])
    lines = compare_graphs.main(["tmp/convgru128", "tmp/convgru128_48px"])
    assert lines[-1] == "39 variables: 39 of equal name and shape, 0 of other shapes, 0 only in the source, 0 only " \
                        "in the target"
    assert " [3, 3, 143, 256] <-> [3, 3, 143, 256]  name: " + GATES in lines
    capsys.readouterr()
    prefix = copy_network_weights.main(["tmp/convgru128", "tmp/convgru128_48px"])
    out = capsys.readouterr().out.splitlines()
    assert prefix == "tmp/convgru128_48px/model.ckpt-640"
    assert f"copy {GATES} [3, 3, 143, 256]" in out and not [line for line in out if line.startswith("skip")]
    assert out[-1] == ("copied 39 variables from tmp/convgru128/model.ckpt-640 into tmp/convgru128_48px/model.ckpt-640"
                       " (starting from tmp/convgru128_48px/model.ckpt-0, global_step 640)")

    target = ModelFolder("tmp/convgru128_48px")
    assert target.checkpoint() == prefix
    copied = read_checkpoint(prefix)
    assert copied.keys() == trained.keys()
    for name, value in trained.items():
        np.testing.assert_array_equal(copied[name], value, err_msg=name)
    state = TrainingState(target.build_model(), seqencmodel.make_optimizer(target.params))
    state.restore(prefix)
    assert int(state.global_step.numpy()) == 640 and int(state.samples_seen.numpy()) == 2560
    source = TrainingState(ModelFolder("tmp/convgru128").build_model())
    source.restore("tmp/convgru128/model.ckpt-640")
    batch = make_batch(batch=1, steps=2, size=48, lengths=(2,))
    logits = state.model(batch).numpy()
    assert logits.shape == (1, 48, 48, 17) and np.isfinite(logits).all()
    np.testing.assert_array_equal(logits, source.model(batch))


def test_compare_graphs_lines_and_modes(tmp_path, capsys):
    small = make_folder(tmp_path / "f4", seed=0)
    wide = make_folder(tmp_path / "f6", seed=0, convrnn_filters=6)
    lstm = make_folder(tmp_path / "lstm", seed=0, convcell="lstm")
    lines = compare_graphs.main([str(small), str(wide)])
    assert lines[0] == "   <source shape> <-> <target shape>    name: <variable name>"
    assert "    [3, 3, 19, 8] <-> [3, 3, 21, 12]    name: " + GATES in lines
    assert "              [5] <-> [5]               name: class/bn/beta" in lines
    assert len(lines) == 2 + 39 and lines[-1].startswith("39 variables: 12 of equal name and shape, 27 of other")
    valid = compare_graphs.main([str(small), str(wide), "--mode", "valid"])
    assert len(valid) == 2 + 12 and "              [5] <-> [5]               name: class/bn/beta" in valid
    assert not any(GATES in line for line in valid)
    assert compare_graphs.main([str(small), str(wide), "--compatible"]) == valid
    across = compare_graphs.main([str(small), str(lstm), "--targetcheckpoint", "model.ckpt-0"])
    assert "    [3, 3, 19, 8] <-> x                 name: " + GATES in across
    assert any(line.startswith("                x <-> [3, 3, 19, 16]") for line in across)
    capsys.readouterr()

    (tmp_path / "fresh").mkdir()
    write_params_ini(tmp_path / "fresh" / "params.ini", ModelParams())
    with pytest.raises(UserError, match=f"fresh: no checkpoint in the model folder \\(run 'python init_graph.py "
                                        f"{tmp_path / 'fresh'}'"):
        compare_graphs.main([str(small), str(tmp_path / "fresh")])
    with pytest.raises(UserError, match="model.ckpt-9: no such checkpoint"):
        compare_graphs.main([str(small), str(wide), "--sourcecheckpoint", "model.ckpt-9"])
    with pytest.raises(UserError, match="argument --mode: invalid choice: 'some'"):
        compare_graphs.main([str(small), str(wide), "--mode", "some"])


def test_init_graph_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    folder = make_folder(tmp_path / "m", seed=3, steps=5)
    before, trained = files(folder), read_checkpoint(folder / "model.ckpt-5")
    with pytest.raises(UserError, match="m: already has checkpoint model.ckpt-5 \\(use --force"):
        init_graph.main([str(folder)])
    assert files(folder) == before
    prefix = init_graph.main([str(folder / "graph.meta"), "--force", "--seed", "4"])
    assert ModelFolder(folder).checkpoint() == prefix == str(folder / "model.ckpt-0")
    assert (folder / "model.ckpt-5.index").exists()  # older checkpoints stay
    values = read_checkpoint(prefix)
    assert values["global_step"] == 0 and values["samples_seen"] == 0 and not values[f"{GATES}/Adam"].any()
    assert not np.array_equal(values[GATES], trained[GATES])  # another seed
    assert "wrote " + prefix in capsys.readouterr().out


def test_dry_run_writes_nothing_and_compare_prints_the_table(tmp_path, capsys):
    source, target = make_folder(tmp_path / "s", seed=1, steps=7), make_folder(tmp_path / "t", seed=2)
    before = files(target)
    assert copy_network_weights.main([str(source), str(target), "--dry"]) is None
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("dry run, nothing written: would copy 39 variables from ")
    assert files(target) == before
    assert copy_network_weights.main([str(source), str(target), "-c"]) is None
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "   <source shape> <-> <target shape>    name: <variable name>" and len(out) == 41
    assert files(target) == before


def test_copy_keeps_or_resets_the_counters(tmp_path):
    source, target = make_folder(tmp_path / "s", seed=1, steps=7), make_folder(tmp_path / "t", seed=2)
    prefix = copy_network_weights.main([str(source), str(target)])
    assert prefix == str(target / "model.ckpt-7") and ModelFolder(target).checkpoint() == prefix
    values = read_checkpoint(prefix)
    assert (values["global_step"], values["samples_seen"]) == (7, 28)
    prefix = copy_network_weights.main([str(source), str(target), "-r"])
    assert prefix == str(target / "model.ckpt-0") and ModelFolder(target).checkpoint() == prefix
    values, original = read_checkpoint(prefix), read_checkpoint(source / "model.ckpt-7")
    assert (values["global_step"], values["samples_seen"]) == (0, 0)
    np.testing.assert_array_equal(values[GATES], original[GATES])
    np.testing.assert_array_equal(values["beta2_power"], original["beta2_power"])


def test_variable_and_scope_mappings(tmp_path, capsys):
    source = make_folder(tmp_path / "s", seed=1)
    target = make_folder(tmp_path / "t", seed=2, separate_weights=True)
    initial, original = read_checkpoint(target / "model.ckpt-0"), read_checkpoint(source / "model.ckpt-0")
    prefix = copy_network_weights.main([str(source), str(target), "-v",
                                        "class/conv2d/kernel,class/bn/gamma=class/bn/beta"])
    values = read_checkpoint(prefix)
    changed = {name for name in values if not np.array_equal(values[name], initial[name])}
    assert changed == {"class/conv2d/kernel", "class/bn/beta"}
    np.testing.assert_array_equal(values["class/bn/beta"], original["class/bn/gamma"])
    assert "copy class/bn/gamma -> class/bn/beta [5]" in capsys.readouterr().out

    # the shared cell of a model initialises the backward cell of a separate-weights model
    prefix = copy_network_weights.main([str(source), str(target), "-s",
                                        "convrnn1/bidirectional_rnn/fw=convrnn1/bidirectional_rnn/bw"])
    values = read_checkpoint(prefix)
    bw = [name for name in values if "/bw/" in name]
    assert len(bw) == 24  # 2 kernels and 3 layer norms, each with two Adam slots
    for name in bw:
        np.testing.assert_array_equal(values[name], original[name.replace("/bw/", "/fw/")], err_msg=name)
        fw = name.replace("/bw/", "/fw/")
        np.testing.assert_array_equal(values[fw], initial[fw], err_msg=fw)  # not mapped: the target's own
    np.testing.assert_array_equal(values["class/bn/beta"], original["class/bn/gamma"])  # kept from the last copy
    out = capsys.readouterr().out
    assert f"copy {GATES} -> {GATES.replace('/fw/', '/bw/')} [3, 3, 19, 8]" in out


@pytest.mark.parametrize("argv,message", [
    (["{missing}", "{target}"], "missing: model folder does not exist"),
    (["{empty}", "{target}"], "empty: no checkpoint in the model folder (run 'python init_graph.py"),
    (["{source}", "{missing}"], "missing: model folder does not exist"),
    (["{source}", "{target}", "-v", "class/conv2d/kernel,no/such/variable"],
     "-v: the source checkpoint has no variable 'no/such/variable'"),
    (["{source}", "{target}", "-v", "class/bn/beta=class/bn/bet"], "-v: the target checkpoint has no variable "
                                                                    "'class/bn/bet'"),
    (["{source}", "{target}", "-v", "class/bn/beta=class/conv2d/kernel"],
     "-v: 'class/bn/beta' has shape [5] in the source but 'class/conv2d/kernel' has shape [3, 3, 8, 5] in the target"),
    (["{source}", "{target}", "-v", "a,,b"], "argument -v/--variables: expected 'src=trg,…' or 'name,…'"),
    (["{source}", "{target}", "-s", "convrnn9"], "-s: no variable of the source checkpoint is in scope 'convrnn9'"),
    (["{source}", "{lstm}"], "no network variable to copy"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    paths = {"source": make_folder(tmp_path / "s", seed=1), "target": make_folder(tmp_path / "t", seed=2),
             "missing": tmp_path / "missing", "empty": tmp_path / "empty",
             "lstm": make_folder(tmp_path / "lstm", seed=2, convcell="lstm", num_classes=6)}
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    before = files(paths["target"])
    with pytest.raises(SystemExit) as exit_info:
        run(copy_network_weights.main, [arg.format(**paths) for arg in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert files(paths["target"]) == before


@pytest.mark.slow
def test_script_exits_2_with_one_line_from_the_command_line(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    result = subprocess.run([sys.executable, "copy_network_weights.py", str(tmp_path / "missing"), str(folder)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"copy_network_weights.py: error: {tmp_path}/missing: model folder does not exist\n"
