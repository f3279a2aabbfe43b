"""Helpers of the notebooks in ``notebooks/``: figures of tiles (true-colour series, class maps, results, gates of the
recurrent cell), the analysis of evaluation outputs, sliders, and the small dataset and model the notebooks start from.

Figures are :class:`matplotlib.figure.Figure` objects (no pyplot state); a notebook shows them after
``%matplotlib inline``. Class maps take class indices (0 = unknown, white) in the TUM colours of ``utils.rasters``.
"""

from __future__ import annotations

import configparser
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from IPython.display import display
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from modelzoo.params import PARAMS_FILENAME, ModelParams, write_params_ini
from utils.activations import RGB_CHANNELS, SIGNED, Activations, rgb_stretch, to_rgb8
from utils.classes import ClassList, read_classes
from utils.cli import UserError
from utils.dataset import INI_KEYS, read_dataset_ini, read_section
from utils.evaluation import TRUEPRED_NPY
from utils.fsio import atomic_dir
from utils.metrics import CLASSES_CSV, ConfusionMatrix
from utils.modelfolder import ModelFolder
from utils.rasters import class_colors, colorize, error_rgb, read_geotiff
from utils.records import Tile, tile_file_name, write_tile
from utils.training import Trainer
from utils.trainoptions import TrainingOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
DN_MAX = 10_000  # L1C digital numbers: reflectance x 10 000
# The small model of the notebooks: Adam as benchmarks/learning.py's "tuned" run (the original's lr 0.01 and
# epsilon 0.9 learn far more slowly in a few epochs)
DEMO_OPTIMIZER = {"learning_rate": 2e-3, "epsilon": 1e-7}
DEMO_BATCHSIZE = 4
DEMO_TEMPORAL_SAMPLES = 30
DEMO_VALIDATION_BATCHES = 4
DIRECTIONS = {"fw": "forward", "bw": "backward"}
TITLE_INCHES = 0.3  # room for the title of each map of a grid
NO_PIXELS_GREY = colormaps["Blues"].with_extremes(bad="0.8")  # confusion matrices: rows/columns without pixels


def repo_path(path: str | os.PathLike | None) -> Path | None:
    """A path parameter of a notebook: relative paths start at the repository root, absolute ones stay; None stays."""
    return None if path is None else REPO_ROOT / Path(path).expanduser()


# ---------------------------------------------------------------------------------------------------- data


def write_random_root(root: str | os.PathLike, template: str | os.PathLike, section: str = "2016",
                      num_tiles: int = 10, year: int = 2016, seed: int = 0) -> Path:
    """A dataset root of random but valid tiles, like the fake dataset of the original SimpleTrain notebook.

    ``classes.txt`` and section ``[section]`` of ``dataset.ini`` come from the dataset root ``template``. Tiles
    ``0 .. num_tiles-1`` have the shapes that section implies, a random number of dates in ``year`` (sorted; the
    remaining steps zero-padded with doy 0), DN uniform in 0..10 000 and a random map of the raw class ids of
    ``classes.txt``, the same at every date. All are listed in ``tileids/train_fold0.tileids``. The root appears only
    when complete.
    """
    config = read_section(template, section)
    classes = read_classes(template)
    if num_tiles < 1:
        raise UserError(f"num_tiles = {num_tiles} must be at least 1")
    rng = np.random.default_rng(seed)
    shapes, nobs = config.shapes, config.nobs
    ini = configparser.ConfigParser(interpolation=None)
    ini[section] = {key: config.datadir.name if key == "datadir" else str(getattr(config, key)) for key in INI_KEYS}
    with atomic_dir(root) as tmp:
        with open(tmp / "dataset.ini", "w") as handle:
            ini.write(handle)
        shutil.copy(Path(template) / "classes.txt", tmp / "classes.txt")
        for tileid in range(num_tiles):
            dates = int(rng.integers(1, min(nobs, 365) + 1))
            doy = np.zeros(nobs, dtype=np.int64)
            doy[:dates] = np.sort(rng.choice(np.arange(1, 366), dates, replace=False))
            observed = (doy > 0).astype(np.int64)
            bands = {name: rng.integers(0, DN_MAX, shapes[name]) * observed[:, None, None, None]
                     for name in ("x10", "x20", "x60")}
            labels = np.broadcast_to(rng.choice(classes.ids, shapes["labels"][1:]), shapes["labels"])
            write_tile(tmp / config.datadir.name / tile_file_name(tileid),
                       Tile(**bands, doy=doy, year=year * observed, labels=labels))
        (tmp / "tileids").mkdir()
        (tmp / "tileids" / "train_fold0.tileids").write_text("".join(f"{i}\n" for i in range(num_tiles)))
    return Path(root)


def train_demo_model(folder: str | os.PathLike, datadir: str | os.PathLike, filters: int = 16, epochs: int = 3,
                     limit_batches: int = -1, seed: int = 0) -> Path:
    """A small ConvGRU trained in ``folder`` by the project's trainer (``train.py``'s) on the train partition of every
    section of ``datadir``: 30 random dates per tile, batches of 4, Adam lr 0.002 with ε 1e-7 and cosine decay.

    ``limit_batches > 0`` keeps that many batches per section and epoch. A folder with a checkpoint resumes; one that
    has done its epochs is left as it is. Returns the model folder.
    """
    folder = Path(folder)
    sections = read_dataset_ini(datadir)
    if not (folder / PARAMS_FILENAME).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        pix10 = next(iter(sections.values())).pix10
        write_params_ini(folder / PARAMS_FILENAME, ModelParams(convrnn_filters=filters, pix10m=pix10))
    options = TrainingOptions(datadir=Path(datadir), train_on=tuple(sections), epochs=epochs,
                              batchsize=DEMO_BATCHSIZE, temporal_samples=DEMO_TEMPORAL_SAMPLES,
                              limit_batches=limit_batches, validation_batches=DEMO_VALIDATION_BATCHES, seed=seed,
                              schedule="cosine", **DEMO_OPTIMIZER)
    trainer = Trainer(ModelFolder(folder), options)
    print(trainer.describe())
    trainer.run()
    return folder


def describe_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """One line per array: name, shape, dtype and range of values."""
    lines = []
    for name, array in arrays.items():
        array = np.asarray(array)
        values = f"{array.min():.4g} .. {array.max():.4g}" if array.size else "empty"
        lines.append(f"{name:<14} {str(array.shape):<22} {str(array.dtype):<8} {values}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- widgets


def browse(view: Callable[..., Figure], **controls: tuple[Sequence, object]) -> None:
    """Show ``view(**values)`` with a slider or menu per control ``name=(choices, initial)``.

    ``choices`` is a ``range`` (an integer slider), a list of ``(label, value)`` pairs (a slider over the labels) or
    a list of values (a menu). Without ipywidgets the view of the initial values is shown once.
    """
    initial = {name: value for name, (_, value) in controls.items()}
    try:
        import ipywidgets
    except ImportError:
        print(f"(ipywidgets is not installed: showing {', '.join(f'{k}={v}' for k, v in initial.items())})")
        display(view(**initial))
        return
    widgets = {}
    for name, (choices, value) in controls.items():
        if isinstance(choices, range):
            widgets[name] = ipywidgets.IntSlider(value=value, min=choices.start, max=choices[-1],
                                                 step=choices.step, description=name, continuous_update=False)
        elif all(isinstance(choice, tuple) and len(choice) == 2 for choice in choices):
            widgets[name] = ipywidgets.SelectionSlider(options=list(choices), value=value, description=name,
                                                       continuous_update=False)
        else:
            widgets[name] = ipywidgets.Dropdown(options=list(choices), value=value, description=name)
    output = ipywidgets.interactive_output(lambda **values: display(view(**values)), widgets)
    display(ipywidgets.VBox([ipywidgets.HBox(list(widgets.values())), output]))


# ---------------------------------------------------------------------------------------------------- drawing


def _grid(count: int, columns: int, size: float, extra_width: float = 0.0,
          constrained: bool = False) -> tuple[Figure, list[Axes]]:
    """A figure with ``count`` image axes in rows of ``columns`` (the unused cells hidden), titled above each.

    ``constrained`` layout makes room for a legend beside the grid but takes seconds for dozens of axes; without it
    the margins are fixed (a colour bar takes its room from the axes).
    """
    rows = max(1, -(-count // columns))
    height = rows * (size + TITLE_INCHES)
    figure = Figure(figsize=(columns * size + extra_width, height), layout="constrained" if constrained else None)
    if not constrained:
        figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - TITLE_INCHES / height, wspace=0.05,
                               hspace=TITLE_INCHES / size)
    axes = list(figure.subplots(rows, columns, squeeze=False).ravel())
    for ax in axes:
        ax.set_axis_off()
    return figure, axes[:count]


def _show_classes(ax: Axes, index_map: np.ndarray, title: str) -> None:
    ax.imshow(colorize(np.asarray(index_map, dtype=np.int64)), interpolation="nearest")
    ax.set_title(title, fontsize="medium")
    _framed(ax)


def _framed(ax: Axes) -> None:
    """A map with a thin frame (white unknown pixels stay visible at the border) and no ticks."""
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.6")


def _show_values(ax: Axes, array: np.ndarray, title: str, cmap: str = "inferno", vmin: float = 0.0,
                 vmax: float = 1.0):
    image = ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize="medium")
    ax.set_axis_off()
    return image


def _class_legend(figure: Figure, maps: Iterable[np.ndarray], names: Sequence[str]) -> None:
    """A legend beside the figure of the classes that occur in ``maps`` (class indices)."""
    present = sorted(set().union(*(np.unique(m).tolist() for m in maps)))
    colors = class_colors(len(names)) / 255.0
    handles = [Patch(facecolor=colors[k], edgecolor="0.6", label=names[k]) for k in present if k < len(names)]
    figure.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)


def rgb_frames(x: np.ndarray) -> np.ndarray:
    """True-colour images (T, H, W, 3) uint8 of a (T, H, W, C) series whose channels 0..2 are B04 B03 B02 (x10 or
    the network input), with one 2–98 % stretch taken from the clearer dates (as ``activations.py``)."""
    rgb = np.asarray(x)[..., list(RGB_CHANNELS)]
    return to_rgb8(rgb, *rgb_stretch(rgb))


def dates_figure(x: np.ndarray, dates: Sequence, columns: int = 8, size: float = 1.5) -> Figure:
    """The true-colour image of every date of a (T, H, W, C) series, titled by date."""
    frames = rgb_frames(x)
    figure, axes = _grid(len(frames), columns, size)
    for ax, frame, date in zip(axes, frames, dates, strict=True):
        ax.imshow(frame, interpolation="nearest")
        ax.set_title(str(date), fontsize="small")
    return figure


def class_maps_figure(maps: Mapping[str, np.ndarray], names: Sequence[str], size: float = 3.0) -> Figure:
    """Class-index maps side by side, titled by their keys, with a legend of the classes present."""
    figure, axes = _grid(len(maps), len(maps), size, extra_width=2.0, constrained=True)
    for ax, (title, index_map) in zip(axes, maps.items(), strict=True):
        _show_classes(ax, index_map, title)
    _class_legend(figure, maps.values(), names)
    return figure


def tile_results_figure(labels: np.ndarray, prediction: np.ndarray, names: Sequence[str],
                        scores: np.ndarray | None = None, loss: np.ndarray | None = None, title: str = "",
                        columns: int = 6, size: float = 2.0) -> Figure:
    """A classified tile: ground truth, prediction, errors (green correct, orange wrong, white unlabelled), the
    per-pixel loss if given, the highest softmax score, then the score of every class (``inferno``, 0..1).

    ``labels`` and ``prediction`` are (H, W) class indices, ``scores`` (H, W, K) softmax scores of class indices
    1..K, ``loss`` (H, W) cross-entropy (shown on 0..1 as in the 2018_IJGI notebook).
    """
    scores = None if scores is None else np.asarray(scores)
    summary = 3 + (loss is not None) + (scores is not None)
    first_row = -(-summary // columns) * columns
    count = first_row + (0 if scores is None else scores.shape[-1])
    figure, axes = _grid(count, columns, size, extra_width=2.0, constrained=True)
    _show_classes(axes[0], labels, "ground truth")
    _show_classes(axes[1], prediction, "prediction")
    axes[2].imshow(error_rgb(labels, prediction), interpolation="nearest")
    _framed(axes[2])
    labelled = np.asarray(labels) > 0
    accuracy = (np.asarray(prediction)[labelled] == np.asarray(labels)[labelled]).mean() if labelled.any() else 0
    axes[2].set_title(f"errors (accuracy {accuracy:.0%})", fontsize="medium")
    position = 3
    if loss is not None:
        _show_values(axes[position], loss, "loss")
        position += 1
    if scores is not None:
        image = _show_values(axes[position], scores.max(axis=-1), "highest score")
        for k in range(scores.shape[-1]):
            _show_values(axes[first_row + k], scores[..., k], names[k + 1])
        figure.colorbar(image, ax=axes[first_row:], shrink=0.6, label="softmax score")
    _class_legend(figure, (labels, prediction), names)
    if title:
        figure.suptitle(title)
    return figure


def ndvi_figure(x10: np.ndarray, labels: np.ndarray, dates: Sequence, names: Sequence[str]) -> Figure:
    """Median NDVI of the pixels of every class of a tile at each date, from (T, H, W, 4) x10 (B04 B03 B02 B08)
    and (H, W) class indices: the phenology the network has to read (clouds and shadows pull NDVI down)."""
    x10 = np.asarray(x10, dtype=np.float64)
    red, nir = x10[..., 0], x10[..., 3]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    colors = class_colors(len(names)) / 255.0
    figure = Figure(figsize=(11, 4), layout="constrained")
    ax = figure.subplots()
    for k in np.unique(labels):
        if k > 0:
            ax.plot(np.median(ndvi[:, labels == k], axis=1), marker=".", color=colors[k],
                    label=f"{names[k]} ({(labels == k).sum()} px)")
    ax.set_ylabel("median NDVI")
    _dates_axis(ax, dates)
    figure.legend(loc="outside right upper", fontsize="small", frameon=False)
    return figure


def training_curves_figure(history: Sequence[tuple[float, float]], window: int = 10) -> Figure:
    """Cross-entropy and overall accuracy of every training step (``history``: ``(xe, oa)`` per step), with their
    moving average over ``window`` steps."""
    values = np.asarray(history, dtype=np.float64).reshape(-1, 2)
    figure = Figure(figsize=(11, 3.5), layout="constrained")
    for ax, column, label in zip(figure.subplots(1, 2), values.T, ("cross-entropy", "overall accuracy"), strict=True):
        ax.plot(column, color="0.7", linewidth=0.8, label="per step")
        if len(column) >= window:
            ax.plot(np.arange(window - 1, len(column)), np.convolve(column, np.ones(window) / window, "valid"),
                    label=f"mean of {window} steps")
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
    return figure


def _dates_axis(ax: Axes, dates: Sequence) -> None:
    ax.set_xticks(range(len(dates)), [str(date)[5:] for date in dates], rotation=90, fontsize="x-small")
    ax.set_xlim(-0.5, len(dates) - 0.5)


def _brightness(acts: Activations) -> np.ndarray:
    """Mean visible reflectance of every date (clouds and snow are bright)."""
    return acts.x[..., list(RGB_CHANNELS)].mean(axis=(1, 2, 3))


def _with_brightness(ax: Axes, acts: Activations) -> None:
    """Grey bars of the mean visible reflectance of every date on a second axis of ``ax``."""
    twin = ax.twinx()
    twin.bar(range(len(acts.dates)), _brightness(acts), color="0.8", width=0.8, zorder=0)
    twin.set_ylabel("mean visible\nreflectance", fontsize="small", color="0.5")
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)


def gate_figure(acts: Activations, gate: str, channel: int, step: int) -> Figure:
    """Channel ``channel`` of ``gate`` at date ``step`` (index into ``acts.dates``) in both directions beside the
    true-colour image, and the tile mean of that channel at every date against the mean visible reflectance."""
    values = {direction: gates[gate][..., channel] for direction, gates in acts.gates.items()}
    vmin, cmap = (-1.0, "RdBu_r") if gate in SIGNED else (0.0, "inferno")
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1.1, 1))
    panels = top.subplots(1, 1 + len(values))
    panels[0].imshow(rgb_frames(acts.x)[step], interpolation="nearest")
    panels[0].set_title(f"{acts.dates[step]}", fontsize="medium")
    panels[0].set_axis_off()
    for ax, (direction, value) in zip(panels[1:], values.items(), strict=True):
        image = _show_values(ax, value[step], f"{gate}, channel {channel}, {DIRECTIONS[direction]}", cmap, vmin,
                             1.0)
    top.colorbar(image, ax=panels[1:], shrink=0.8)
    curve = bottom.subplots()
    for direction, value in values.items():
        curve.plot(value.mean(axis=(1, 2)), marker=".", label=f"{DIRECTIONS[direction]} (tile mean)")
    curve.axvline(step, color="black", linewidth=0.8)
    curve.set_ylabel(f"{gate}, channel {channel}")
    curve.legend(fontsize="small", loc="upper left")
    _dates_axis(curve, acts.dates)
    _with_brightness(curve, acts)
    return figure


def gate_activity_figure(acts: Activations) -> Figure:
    """The mean of every gate over the tile and all channels at each date, per direction, against the mean visible
    reflectance of the date: where gates open or close on cloudy observations."""
    names = list(next(iter(acts.gates.values())))
    figure = Figure(figsize=(11, 1.9 * len(names) + 0.8), layout="constrained")
    axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        for direction, gates in acts.gates.items():
            ax.plot(gates[name].mean(axis=(1, 2, 3)), marker=".", label=DIRECTIONS[direction])
        ax.set_ylabel(name)
        _with_brightness(ax, acts)
    axes[0].legend(fontsize="small", loc="upper left")
    _dates_axis(axes[-1], acts.dates)
    figure.suptitle(f"tile {acts.tileid}: mean gate values per date (grey: mean visible reflectance)")
    return figure


def channels_figure(maps: np.ndarray, titles: Sequence[str], cmap: str = "inferno", vmin: float = 0.0,
                    vmax: float = 1.0, columns: int = 8, size: float = 1.5) -> Figure:
    """The channels of a (H, W, N) array as a grid of maps with one colour bar (e.g. final states)."""
    figure, axes = _grid(maps.shape[-1], columns, size)
    for k, ax in enumerate(axes):
        image = _show_values(ax, maps[..., k], titles[k], cmap, vmin, vmax)
    figure.colorbar(image, ax=axes, shrink=0.6)
    return figure


# ---------------------------------------------------------------------------------------------------- evaluation


def read_classes_csv(path: str | os.PathLike) -> ClassList:
    """The classes of an evaluation folder's ``classes.csv`` (``<raw id>, <name>`` rows), with unknown (0) first."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    ids, names = [0], ["unknown"]
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        raw, _, name = line.partition(",")
        try:
            ids.append(int(raw))
        except ValueError:
            raise UserError(f"{path}:{lineno}: expected '<raw id>, <name>', got {line.strip()!r}") from None
        names.append(name.strip())
    if len(ids) == 1:
        raise UserError(f"{path}: no classes")
    return ClassList(tuple(ids), tuple(names))


def evaluation_classes(folder: str | os.PathLike) -> ClassList:
    """The classes of an ``evaluate.py`` output folder."""
    return read_classes_csv(Path(folder) / CLASSES_CSV)


def evaluated_sections(folder: str | os.PathLike) -> list[str]:
    """The sections (years) evaluated into ``<folder>/<section>/`` by ``evaluate.py`` (those with ``truepred.npy``)."""
    sections = sorted(path.parent.name for path in Path(folder).glob(f"*/{TRUEPRED_NPY}"))
    if not sections:
        raise UserError(f"{folder}: no <section>/{TRUEPRED_NPY} (evaluate.py outputs of one folder per year)")
    return sections


def pooled_confusion(folders: Iterable[str | os.PathLike], classes: ClassList) -> np.ndarray:
    """The K×K confusion matrix (class indices 1..K) of the ``truepred.npy`` files of several ``evaluate.py`` output
    folders together, e.g. both years as in the paper's evaluation."""
    matrix = ConfusionMatrix(classes.num_classes)
    for folder in folders:
        path = Path(folder) / TRUEPRED_NPY
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        truepred = np.load(path)
        if truepred.ndim != 2 or truepred.shape[1] != 2:
            raise UserError(f"{path}: expected (pixels, 2) rows of true and predicted raw ids, got {truepred.shape}")
        predicted = classes.to_index(truepred[:, 1])
        if (predicted == 0).any():
            raise UserError(f"{path}: predicted raw id {truepred[predicted == 0, 1][0]} is not in {CLASSES_CSV}")
        matrix.update(classes.to_index(truepred[:, 0]), predicted)
    return matrix.matrix


def confusion_figure(matrix: np.ndarray, names: Sequence[str]) -> Figure:
    """The confusion matrix normalised per true class (row: recall) and per predicted class (column: precision), in
    %, side by side; classes without pixels stay grey."""
    counts = np.asarray(matrix, dtype=np.float64)
    labels = [str(name) for name in names[1:]]
    figure = Figure(figsize=(15, 7), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, axis, title in ((axes[0], 1, "recall: % of each true class (rows)"),
                            (axes[1], 0, "precision: % of each predicted class (columns)")):
        totals = counts.sum(axis=axis, keepdims=True)
        percent = np.full(counts.shape, np.nan)
        np.divide(100 * counts, totals, out=percent, where=totals > 0)
        image = ax.imshow(np.ma.masked_invalid(percent), cmap=NO_PIXELS_GREY, vmin=0, vmax=100)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize="small")
        ax.set_yticks(range(len(labels)), labels, fontsize="small")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.7, label="%")
    return figure


def evaluated_tiles(folder: str | os.PathLike) -> list[int]:
    """The tile ids of the per-tile outputs (``ground_truth/<tileid>.tif``) of an ``evaluate.py`` folder."""
    path = Path(folder) / "ground_truth"
    tiles = sorted(int(tif.stem) for tif in path.glob("*.tif") if tif.stem.isdigit())
    if not tiles:
        raise UserError(f"{path}: no <tileid>.tif files (run evaluate.py with --writetiles)")
    return tiles


def read_evaluated_tile(folder: str | os.PathLike, tileid: int, classes: ClassList) -> dict[str, np.ndarray | None]:
    """One tile of an ``evaluate.py`` folder (this project's or the original's) as arguments of
    :func:`tile_results_figure`: class indices ``labels`` and ``prediction``, ``loss`` and the class ``scores`` of
    ``confidences/<k>_<class>/`` (None without ``--writeconfidences``)."""
    folder = Path(folder)
    tif = f"{tileid}.tif"
    labels = classes.to_index(read_geotiff(folder / "ground_truth" / tif)[0])
    prediction = classes.to_index(read_geotiff(folder / "prediction" / tif)[0])
    loss = read_geotiff(folder / "loss" / tif)[0]
    scores = None
    if (folder / "confidences").is_dir():
        scores = np.stack([read_geotiff(folder / "confidences" / name / tif)[0] for name in classes.folder_names],
                          axis=-1)
    return {"labels": labels, "prediction": prediction, "loss": loss, "scores": scores}


def evaluated_tile_figure(folder: str | os.PathLike, tileid: int, classes: ClassList) -> Figure:
    """The tile viewer of the 2018_IJGI notebook: ground truth, prediction, errors, loss and class scores of a tile
    of an ``evaluate.py`` folder."""
    return tile_results_figure(**read_evaluated_tile(folder, tileid, classes), names=classes.names,
                               title=f"tile {tileid}")
