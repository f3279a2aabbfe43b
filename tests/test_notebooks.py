"""The notebooks (issue #6 item 4) run top to bottom on the synthetic dataset with small parameters, in a Jupyter
kernel started by nbclient; the values they compute are checked against the data; the notebooks in git carry no
outputs."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

from utils.classes import ClassList, read_classes
from utils.cli import UserError
from utils.dataset import read_dataset_ini, read_tileids
from utils.interactive import (
    evaluated_sections,
    evaluated_tiles,
    evaluation_classes,
    pooled_confusion,
    write_random_root,
)
from utils.records import read_tile

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("SimpleTrain", "NetworkVisualization", "Evaluation")
REPORT = "NOTEBOOK-REPORT "
WIDGET = "application/vnd.jupyter.widget-view+json"
CELL_TIMEOUT = 600  # seconds per cell: generous for a machine shared by parallel test runs
FILTERS = 8
STEPS = 40


def parameter_cell(notebook: nbformat.NotebookNode) -> int:
    """Index of the cell tagged ``parameters``."""
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    return tagged[0]


def parameter_names(notebook: nbformat.NotebookNode) -> set[str]:
    """The names assigned in the parameter cell."""
    tree = ast.parse(notebook.cells[parameter_cell(notebook)].source)
    return {target.id for node in tree.body for target in node.targets}


def execute(name: str, workdir: Path, parameters: dict, report: str) -> tuple[dict, list[str]]:
    """Run notebook ``name`` with ``parameters`` set after its parameter cell; return the JSON of the expression
    ``report`` evaluated in the kernel at the end, and the types of the outputs of every cell (e.g. image/png)."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    unknown = set(parameters) - parameter_names(notebook)
    assert not unknown, f"{name} has no parameters {unknown}"
    injected = nbformat.v4.new_code_cell("\n".join(f"{key} = {value!r}" for key, value in parameters.items()))
    notebook.cells.insert(parameter_cell(notebook) + 1, injected)
    notebook.cells.append(nbformat.v4.new_code_cell(f"import json\nprint({REPORT!r} + json.dumps({report}))"))
    workdir.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's modules
        # Unix sockets, not TCP on loopback: on this project's sandboxed machines a notebook of 16 s sometimes
        # waited about 10 minutes on its kernel's TCP messages (kernel idle, client waiting)
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(workdir / "kernel"))
        NotebookClient(notebook, km=kernel, timeout=CELL_TIMEOUT,
                       resources={"metadata": {"path": str(workdir)}}).execute()
    text = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    kinds = [kind for cell in notebook.cells[:-1] for output in cell.get("outputs", [])
             for kind in output.get("data", {})]
    return json.loads(text.split(REPORT, 1)[1]), kinds


def views(kinds: list[str]) -> int:
    """Figures and widgets shown: with ipywidgets, a slider view is one widget (its figure lives in the widget's
    state); without, the view of the initial values is one figure."""
    return kinds.count("image/png") + kinds.count(WIDGET)


def labelled_pixels(root: Path, section: str, partition: str) -> int:
    """Labelled pixels (class index > 0) of a partition, read tile by tile without the pipeline."""
    classes = read_classes(root)
    folder = read_dataset_ini(root)[section].datadir
    return sum(int((classes.to_index(read_tile(folder / f"{tileid}.tfrecord.gz").labels[0]) > 0).sum())
               for tileid in read_tileids(root, partition))


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_in_git_have_no_outputs_and_a_parameter_cell(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert "widgets" not in notebook.metadata
    index = parameter_cell(notebook)
    assert notebook.cells[index] is code[0], "the parameter cell must be the first code cell"
    tree = ast.parse(notebook.cells[index].source)  # plain assignments of literals, so that they can be replaced
    assert all(isinstance(node, ast.Assign) for node in tree.body)
    for node in tree.body:
        ast.literal_eval(node.value)
    assert {"workdir"} <= parameter_names(notebook)


@pytest.fixture(scope="module")
def simple_train(synthetic_root, tmp_path_factory):
    """SimpleTrain run small: its report, output kinds and work folder (its model is used by Evaluation)."""
    workdir = tmp_path_factory.mktemp("simpletrain")
    report, kinds = execute("SimpleTrain", workdir, {
        "workdir": str(workdir), "datadir": str(synthetic_root / "240"), "filters": FILTERS, "steps": STEPS},
        "{'random': {k: [list(v.shape), str(v.dtype)] for k, v in random_batch.items()},"
        " 'batch': {k: list(v.shape) for k, v in batch.items()}, 'history': history, 'checkpoint': checkpoint,"
        " 'tileid': int(tileid), 'dates': [str(d) for d in dates]}")
    return report, kinds, workdir


@pytest.mark.slow
def test_simple_train(simple_train, synthetic_root):
    report, kinds, workdir = simple_train
    # part 1: random tiles of the template's shape, parsed by the pipeline
    assert report["random"] == {"x10": [[2, 46, 24, 24, 4], "float32"], "x20": [[2, 46, 12, 12, 6], "float32"],
                                "x60": [[2, 46, 4, 4, 3], "float32"], "doy": [[2, 46], "float32"],
                                "year": [[2, 46], "float32"], "labels": [[2, 24, 24], "int32"],
                                "tileid": [[2], "int64"]}
    tile = read_tile(workdir / "random" / "data16" / "0.tfrecord.gz")
    observed = tile.doy > 0
    dates = int(observed.sum())
    assert 1 <= dates <= 46 and observed[:dates].all() and np.all(np.diff(tile.doy[:dates]) > 0)
    assert np.all(tile.year[observed] == 2016) and not tile.x10[~observed].any()
    assert tile.x10.max() < 10_000 and np.all(tile.labels == tile.labels[0])
    assert set(np.unique(tile.labels)) <= set(read_classes(synthetic_root / "240").ids)
    # part 2: a training batch of 30 sampled dates; the tile's dates are those of its record
    assert report["batch"]["x10"] == [4, 30, 24, 24, 4] and report["batch"]["labels"] == [4, 24, 24]
    record = read_tile(synthetic_root / "240" / "data16" / f"{report['tileid']}.tfrecord.gz")
    assert len(report["dates"]) == int((record.doy > 0).sum())
    assert report["tileid"] == min(read_tileids(synthetic_root / "240", "train"))
    # part 3: the loss falls over the steps and a checkpoint of the last step exists
    history = np.array(report["history"])
    assert history.shape == (STEPS, 2) and np.isfinite(history).all()
    assert history[-10:, 0].mean() < 0.9 * history[:10, 0].mean()
    assert history[-10:, 1].mean() > history[:10, 1].mean()
    assert report["checkpoint"] == str(workdir / "model" / f"model.ckpt-{STEPS}")
    assert Path(f"{report['checkpoint']}.index").is_file()
    assert views(kinds) == 4  # dates, labels, NDVI, training curves


@pytest.mark.slow
def test_network_visualization(synthetic_root, tmp_path):
    root = synthetic_root / "480"
    report, kinds = execute("NetworkVisualization", tmp_path, {
        "workdir": str(tmp_path), "datadir": str(root), "train_datadir": str(synthetic_root / "240"),
        "filters": FILTERS, "epochs": 1, "limit_batches": 1, "dump_channels": "0"},
        "{'tileid': int(tileid), 'dates': len(acts.dates), 'x': list(acts.x.shape),"
        " 'gates': {k: list(v.shape) for k, v in gates.items()}, 'final': list(acts.final_state.shape),"
        " 'scores': list(acts.scores.shape), 'score_sums': [float(acts.scores.sum(-1).min()),"
        " float(acts.scores.sum(-1).max())], 'step': step}")
    tileid = min(read_tileids(root, "eval"))
    dates = int((read_tile(root / "data16" / f"{tileid}.tfrecord.gz").doy > 0).sum())
    assert report["tileid"] == tileid and report["dates"] == dates
    assert report["x"] == [dates, 48, 48, 15]
    assert report["gates"] == {f"{d}/{g}": [dates, 48, 48, FILTERS] for d in ("fw", "bw")
                               for g in ("r", "u", "candidate", "h")}
    assert report["final"] == [48, 48, 2 * FILTERS] and report["scores"] == [48, 48, 17]
    assert report["score_sums"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert report["step"] == 2  # the small model: one batch per section, one epoch
    sample = tmp_path / "activations" / "sample0"
    assert np.load(sample / "arrays" / "uGate.npy").shape == (dates, 48, 48, FILTERS)
    assert (sample / f"time{dates - 1}" / "0_uGate.png").is_file() and not (sample / "time0" / "1_uGate.png").exists()
    assert views(kinds) == 5  # dates, results, gate activity, one gate view, final states


@pytest.mark.slow
def test_evaluation(simple_train, synthetic_root, tmp_path):
    _, _, trained = simple_train
    report, kinds = execute("Evaluation", tmp_path, {
        "workdir": str(tmp_path), "modeldir": str(trained / "model"), "datadir": str(synthetic_root / "240"),
        "viewer_datadir": str(synthetic_root / "480"), "partition": "test", "batchsize": 32},
        "{'sections': sections, 'matrices': {k: v.tolist() for k, v in matrices.items()},"
        " 'summaries': summaries, 'tiles': tiles}")
    root = synthetic_root / "240"
    pixels = {section: labelled_pixels(root, section, "test") for section in ("2016", "2017")}
    matrices = {name: np.array(matrix) for name, matrix in report["matrices"].items()}
    assert report["sections"] == ["2016", "2017"]
    assert {name: int(m.sum()) for name, m in matrices.items()} == {**pixels, "pooled": sum(pixels.values())}
    np.testing.assert_array_equal(matrices["pooled"], matrices["2016"] + matrices["2017"])
    for section in ("2016", "2017"):  # the per-year analysis agrees with evaluate.py's own metrics.json
        written = json.loads((tmp_path / "eval" / section / "metrics.json").read_text())
        assert report["summaries"][section]["overall_accuracy"] == pytest.approx(written["overall_accuracy"])
        assert report["summaries"][section]["kappa"] == pytest.approx(written["kappa"])
    pooled = report["summaries"]["pooled"]
    assert pooled["overall_accuracy"] == pytest.approx(np.trace(matrices["pooled"]) / sum(pixels.values()))
    assert json.loads((tmp_path / "pooled" / "metrics.json").read_text())["num_pixels"] == sum(pixels.values())
    assert (tmp_path / "pooled" / "confusion_matrix.png").is_file()
    assert report["tiles"] == sorted(read_tileids(synthetic_root / "480", "test"))
    assert views(kinds) == 3  # annotated confusion matrix, both normalisations, one tile


# ---------------------------------------------------------------------------------------------------- helpers


def test_pooled_confusion_stacks_evaluation_folders(tmp_path):
    classes = ClassList((0, 10, 20), ("unknown", "a", "b"))
    for name, rows in {"2016": [[10, 10], [20, 10]], "2017": [[20, 20], [20, 20], [10, 20]]}.items():
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "truepred.npy", np.array(rows))
    matrix = pooled_confusion([tmp_path / "2016", tmp_path / "2017"], classes)
    np.testing.assert_array_equal(matrix, [[1, 1], [1, 2]])
    assert evaluated_sections(tmp_path) == ["2016", "2017"]


@pytest.mark.parametrize(("rows", "message"), [(np.zeros((3, 3), dtype=int), r"expected \(pixels, 2\)"),
                                               (np.array([[10, 30]]), "predicted raw id 30")])
def test_pooled_confusion_rejects_bad_truepred(tmp_path, rows, message):
    np.save(tmp_path / "truepred.npy", rows)
    with pytest.raises(UserError, match=message):
        pooled_confusion([tmp_path], ClassList((0, 10, 20), ("unknown", "a", "b")))


def test_bad_evaluation_folders_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="truepred.npy: no such file"):
        pooled_confusion([tmp_path], ClassList((0, 10), ("unknown", "a")))
    with pytest.raises(UserError, match="no <section>/truepred.npy"):
        evaluated_sections(tmp_path)
    with pytest.raises(UserError, match="no <tileid>.tif files"):
        evaluated_tiles(tmp_path)
    with pytest.raises(UserError, match="classes.csv: no such file"):
        evaluation_classes(tmp_path)
    (tmp_path / "classes.csv").write_text("10, meadow\nmaize\n")
    with pytest.raises(UserError, match=r"classes.csv:2: expected '<raw id>, <name>', got 'maize'"):
        evaluation_classes(tmp_path)
    (tmp_path / "classes.csv").write_text("\n")
    with pytest.raises(UserError, match="classes.csv: no classes"):
        evaluation_classes(tmp_path)
    (tmp_path / "classes.csv").write_text("10, meadow\n\n20, winter wheat\n")
    assert evaluation_classes(tmp_path) == ClassList((0, 10, 20), ("unknown", "meadow", "winter wheat"))


def test_write_random_root_rejects_no_tiles(synthetic_root, tmp_path):
    with pytest.raises(UserError, match="num_tiles = 0"):
        write_random_root(tmp_path / "random", synthetic_root / "240", num_tiles=0)
    assert not (tmp_path / "random").exists()
