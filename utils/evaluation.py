"""Evaluation of a model folder on one partition of a dataset root (ORIGINAL.md §4): the original's per-tile GeoTIFFs
and report files, plus PNG maps, ``metrics.json``, a confusion-matrix plot and mosaics.

The pipeline streams: one graph-compiled forward pass per batch (batch norm in inference mode, every date, no
sampling); the confusion matrix and ``truepred.npy`` grow on the host in fixed memory (``truepred.npy`` is appended
to a temporary file and converted at the end); the per-tile files are written by a few threads while the next batch
computes, with a bounded number of tiles in flight. Memory therefore does not grow with the number of tiles.

Layout of ``storedir`` (the original's names; ``png/`` and the mosaics are new):

- ``prediction/``, ``ground_truth/`` (raw class ids, Int16), ``mask/`` (0/1) and ``loss/`` (per-pixel
  cross-entropy, Float32) ``<tileid>.tif`` and ``png/{prediction,ground_truth,error,confidence}/<tileid>.png``
  with ``png/legend.png`` (``--writetiles``);
- ``confidences/<k>_<class_name>/<tileid>.tif``: softmax score of class k, Float32 (``--writeconfidences``);
- ``truepred.npy``, ``confusion_matrix.csv``, ``classes.csv``, ``classification_report.txt``, ``metrics.csv``,
  ``metrics.json`` and ``confusion_matrix.png`` (always);
- ``prediction.tif``, ``ground_truth.tif``, ``mask.tif``, ``loss.tif`` and ``confidences/<k>_<class_name>.tif``:
  Cloud-Optimized GeoTIFF mosaics of the tiles (``--mosaic``).

A run's outputs are one unit: written into a hidden staging folder inside ``storedir`` and moved in place when
complete, replacing every output of an earlier run (a storedir never mixes two checkpoints or two years; after a
failed or killed run it holds the last complete one). ``metrics.json`` moves last.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from modelzoo.params import MIXED_PRECISION
from modelzoo.seqencmodel import SequentialEncoder, per_pixel_xe
from utils.classes import ClassList
from utils.cli import UserError, warn
from utils.dataset import PARTITIONS, Dataset, translate_errors
from utils.fsio import atomic_file, staged_files
from utils.georef import GeoRef, read_geotransforms
from utils.metrics import METRICS_JSON, REPORT_FILES, ConfusionMatrix, format_summary, write_reports
from utils.modelfolder import ModelFolder
from utils.options import as_record, datadir_option, option
from utils.rasters import (
    mosaic,
    write_class_png,
    write_confidence_png,
    write_confusion_png,
    write_error_png,
    write_geotiff,
    write_legend_png,
)

TILE_PRODUCTS = ("prediction", "ground_truth", "mask", "loss")  # the original's per-tile GeoTIFF folders
CONFIDENCES = "confidences"
PNG = "png"
PNG_MAPS = ("prediction", "ground_truth", "error", "confidence")
LEGEND_PNG = "legend.png"
CONFUSION_PNG = "confusion_matrix.png"
TRUEPRED_NPY = "truepred.npy"
GEOTRANSFORMS_CSV = "geotransforms.csv"
EVALUATION_OUTPUTS = (*TILE_PRODUCTS, *(f"{product}.tif" for product in TILE_PRODUCTS), CONFIDENCES, PNG,
                      TRUEPRED_NPY, CONFUSION_PNG, *REPORT_FILES)  # what a run replaces of an earlier one
WRITER_THREADS = 8  # the writes wait on the disk as much as on the CPU


@dataclass(frozen=True)
class Settings:
    """What to evaluate and which files to write: the flags of ``evaluate.py`` (the original's plus
    ``--partition``, ``--fold``, ``--checkpoint``, ``--allow_untrained``, ``--mixed_precision`` and ``--mosaic``)."""

    modeldir: Path
    datadir: Path | None = datadir_option()
    storedir: Path = option(Path("tmp"), "output folder", type=Path)
    section: str = option("2016", "section of dataset.ini, e.g. 2016 or 2017", short=("-d",), flag="dataset",
                          metavar="DATASET")
    partition: str = option("eval", "tile ids to evaluate: tileids/eval.tileids, or train/test of --fold",
                            choices=PARTITIONS)
    fold: int = option(0, "fold of the train/test partitions", type=int)
    batchsize: int = option(32, "tiles per batch", short=("-b",), type=int)
    prefetch: int = option(6, "batches prepared ahead", type=int)
    writetiles: bool = option(False, "write per-tile GeoTIFFs (prediction, ground_truth, mask, loss) and PNG maps "
                              "(png/prediction, png/ground_truth, png/error, png/confidence, png/legend.png)",
                              short=("-t",), switch=True)
    writeconfidences: bool = option(False, "write per-tile GeoTIFFs of every class's softmax score "
                                    "(confidences/<k>_<class>/)", short=("-c",), switch=True)
    mosaic: bool = option(False, "merge every per-tile GeoTIFF product into one Cloud-Optimized GeoTIFF "
                          "(prediction.tif, ..., confidences/<k>_<class>.tif); implies --writetiles", switch=True)
    checkpoint: str | None = option(None, "checkpoint to restore, e.g. model.ckpt-13824 (default: the latest)")
    allow_untrained: bool = option(False, "evaluate the randomly initialised network when the folder has no "
                                   "checkpoint", switch=True)
    verbose: bool = option(False, "print the timings of the evaluation", short=("-v",), switch=True)
    mixed_precision: str = option("none", "convolutions in float16 or bfloat16 (GPUs; bfloat16 also speeds up CPUs "
                                  "with AVX512-BF16); norm statistics, recurrent state and softmax stay float32",
                                  choices=MIXED_PRECISION)


@dataclass
class Timings:
    """Wall-clock seconds of an evaluation: waiting for input, forward passes (and their results on the host),
    host bookkeeping, waiting for the tile writers, and the reports/plots/mosaics at the end."""

    input: float = 0.0
    forward: float = 0.0
    host: float = 0.0
    writer_wait: float = 0.0
    finish: float = 0.0
    total: float = 0.0


@dataclass
class Result:
    """Outcome of :func:`evaluate`: the metrics of ``metrics.json``, the tiles evaluated, the timings."""

    metrics: dict
    tileids: list[int]
    timings: Timings = field(default_factory=Timings)


def make_forward(model: SequentialEncoder, element_spec: Mapping[str, tf.TensorSpec]
                 ) -> Callable[[Mapping[str, tf.Tensor]], dict[str, tf.Tensor]]:
    """The graph-compiled forward pass of a pipeline batch, batch norm in inference mode.

    Returns ``prediction`` (B, H, W) int32 class index 1..K (arg-max), ``scores`` (B, H, W, K) float32 softmax
    and ``loss`` (B, H, W) float32 per-pixel cross-entropy, 0 where the label is unknown.
    """

    @tf.function(input_signature=[dict(element_spec)])
    def forward(batch):
        logits = tf.cast(model(batch, training=False), tf.float32)
        return {"prediction": tf.argmax(logits, axis=-1, output_type=tf.int32) + 1,
                "scores": tf.nn.softmax(logits),
                "loss": per_pixel_xe(batch["labels"], logits)}

    return forward


class TruePredWriter:
    """``truepred.npy`` (int64 rows ``true raw id, predicted raw id`` of the labelled pixels), written streaming.

    Rows are appended to a temporary file opened once; on a clean exit of the ``with`` block they are copied behind
    an ``.npy`` header into ``path``, which appears only then.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows = 0
        self._raw = None

    def __enter__(self) -> TruePredWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw = tempfile.TemporaryFile(dir=self.path.parent, prefix=f".{self.path.name}.")
        return self

    def append(self, true_raw: np.ndarray, pred_raw: np.ndarray) -> None:
        """Append the pixels of two equally long 1-D raw-id arrays."""
        rows = np.stack([np.ravel(true_raw), np.ravel(pred_raw)], axis=1).astype("<i8")
        self._raw.write(rows.tobytes())
        self.rows += len(rows)

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                self._raw.seek(0)
                with atomic_file(self.path) as tmp, open(tmp, "wb") as out:
                    np.lib.format.write_array_header_1_0(
                        out, {"descr": "<i8", "fortran_order": False, "shape": (self.rows, 2)})
                    shutil.copyfileobj(self._raw, out, 1 << 20)
        finally:
            self._raw.close()


class WriterPool:
    """Runs jobs on a few threads with at most ``limit`` pending, so that memory stays bounded.

    :meth:`submit` blocks while the pool is full; a job's exception is raised in the submitting thread. Leaving the
    ``with`` block waits for every job, or cancels those not started when the block raised.
    """

    def __init__(self, threads: int, limit: int):
        self.limit = max(1, limit)
        self.wait_seconds = 0.0
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="evaluate-writer")
        self._pending: deque[Future] = deque()

    def __enter__(self) -> WriterPool:
        return self

    def _wait_oldest(self) -> None:
        start = time.perf_counter()
        try:
            self._pending.popleft().result()
        finally:
            self.wait_seconds += time.perf_counter() - start

    def submit(self, job: Callable, *args) -> None:
        """Queue ``job(*args)``; waits for the oldest pending job while ``limit`` are pending."""
        while len(self._pending) >= self.limit:
            self._wait_oldest()
        self._pending.append(self._executor.submit(job, *args))

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    self._wait_oldest()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class TileWriter:
    """Writes the per-tile files of one tile into ``storedir``: GeoTIFFs of the original (raw class ids) and PNG
    maps (class indices, TUM colours), and the per-class confidence GeoTIFFs."""

    storedir: Path
    classes: ClassList
    georefs: Mapping[int, GeoRef]
    tiles: bool
    confidences: bool

    def folders(self) -> list[str]:
        """The GeoTIFF folders written, relative to ``storedir`` (the products of a mosaic)."""
        folders = list(TILE_PRODUCTS) if self.tiles else []
        if self.confidences:
            folders += [f"{CONFIDENCES}/{name}" for name in self.classes.folder_names]
        return folders

    def __call__(self, tileid: int, labels: np.ndarray, prediction: np.ndarray, scores: np.ndarray,
                 loss: np.ndarray) -> None:
        """Write one tile: ``labels``/``prediction`` (H, W) class indices, ``scores`` (H, W, K), ``loss`` (H, W).

        A failed write (disk full, no permission) is a :class:`UserError` naming the file.
        """
        try:
            self._write(tileid, labels, prediction, scores, loss)
        except OSError as err:
            raise UserError(f"{err.filename or self.storedir}: cannot write ({err.strerror or err})") from None

    def _write(self, tileid: int, labels: np.ndarray, prediction: np.ndarray, scores: np.ndarray,
               loss: np.ndarray) -> None:
        georef = self.georefs.get(tileid)
        tif, png = f"{tileid}.tif", f"{tileid}.png"
        if self.tiles:
            write_geotiff(self.storedir / "prediction" / tif, self.classes.to_raw(prediction), georef)
            write_geotiff(self.storedir / "ground_truth" / tif, self.classes.to_raw(labels), georef)
            write_geotiff(self.storedir / "mask" / tif, labels > 0, georef)
            write_geotiff(self.storedir / "loss" / tif, loss, georef)
            maps = self.storedir / PNG
            write_class_png(maps / "prediction" / png, prediction)
            write_class_png(maps / "ground_truth" / png, labels)
            write_error_png(maps / "error" / png, labels, prediction)
            write_confidence_png(maps / "confidence" / png, scores)
        if self.confidences:
            for k, name in enumerate(self.classes.folder_names):
                write_geotiff(self.storedir / CONFIDENCES / name / tif, scores[..., k], georef)


def read_georefs(root: Path, tileids: list[int], needed: bool) -> dict[int, GeoRef]:
    """The georeference of every tile in ``root/geotransforms.csv``; when ``needed``, one warning for the tiles
    without a row (they are written without georeference and left out of mosaics)."""
    path = root / GEOTRANSFORMS_CSV
    if not needed:
        return {}
    if not path.is_file():
        warn(f"{path}: no such file; the tiles are written without georeference")
        return {}
    georefs = read_geotransforms(path)
    missing = [tileid for tileid in tileids if tileid not in georefs]
    if missing:
        warn(f"{path}: {len(missing)} of {len(tileids)} tiles have no row (first: {missing[0]}); they are written "
             "without georeference and left out of mosaics")
    return georefs


def write_mosaics(storedir: Path, folders: list[str], tileids: list[int]) -> list[Path]:
    """Merge ``<storedir>/<folder>/<tileid>.tif`` of every folder into ``<storedir>/<folder>.tif`` (COG)."""
    return [mosaic([storedir / folder / f"{tileid}.tif" for tileid in tileids], storedir / f"{folder}.tif")
            for folder in folders]


def evaluate(settings: Settings) -> Result:
    """Evaluate the model of ``settings.modeldir`` on one partition and write the outputs into ``settings.storedir``.

    Every tile of the partition is evaluated, whatever the batch size. Prints the summary table; returns the
    metrics (as in ``metrics.json``), the tile ids in evaluation order and the timings.
    """
    start = time.perf_counter()
    if settings.prefetch < 0:
        raise UserError(f"--prefetch = {settings.prefetch} must be >= 0")
    folder = ModelFolder(settings.modeldir)
    dataset = Dataset(settings.datadir, settings.section, temporal_samples=None)
    classes = dataset.classes
    folder.check_classes(classes.num_classes, dataset.root / "classes.txt")
    model, prefix, step = folder.load_network(settings.checkpoint, settings.allow_untrained,
                                              settings.mixed_precision)
    if prefix is None:
        warn(f"{folder.path}: no checkpoint; evaluating the randomly initialised network (--allow_untrained)")
    files = dataset.tile_files(settings.partition, settings.fold)
    tileids = [tileid for tileid, _ in files]
    writetiles = settings.writetiles or settings.mosaic
    georefs = read_georefs(dataset.root, tileids, writetiles or settings.writeconfidences)
    with staged_files(settings.storedir, EVALUATION_OUTPUTS, last=METRICS_JSON) as stage:
        metrics, evaluated, timings, writer = _evaluate_into(stage, settings, folder.path, dataset, files, model,
                                                             prefix, step, georefs)
    timings.total = time.perf_counter() - start
    print(f"{len(evaluated)} tiles, {metrics['num_pixels']:,} labelled pixels\n{format_summary(metrics)}", end="")
    if settings.verbose:
        print(f"seconds: {timings.total:.1f} in all; input wait {timings.input:.1f}, forward {timings.forward:.1f}, "
              f"host {timings.host:.1f}, writer wait {timings.writer_wait:.1f}, reports and mosaics "
              f"{timings.finish:.1f}", file=sys.stderr)
    print(_outputs_note(settings.storedir, writer, settings.mosaic), file=sys.stderr)
    return Result(metrics, evaluated, timings)


def _evaluate_into(storedir: Path, settings: Settings, modeldir: Path, dataset: Dataset, files: list[tuple[int, Path]],
                   model: SequentialEncoder, prefix: str | None, step: int,
                   georefs: Mapping[int, GeoRef]) -> tuple[dict, list[int], Timings, TileWriter]:
    """The evaluation with every output written into ``storedir`` (the staging folder of the run)."""
    classes = dataset.classes
    writetiles = settings.writetiles or settings.mosaic
    pipeline = dataset.pipeline(settings.partition, settings.fold, batchsize=settings.batchsize, shuffle=False,
                                repeat=False, temporal_samples=None, prefetch=settings.prefetch)
    source = f"{dataset.root} [{settings.section}] {settings.partition}"
    if settings.partition != "eval":
        source += f" fold {settings.fold}"
    print(f"evaluating {prefix or modeldir} (step {step}) on {source}: {len(files)} tiles", file=sys.stderr)
    writer = TileWriter(storedir, classes, georefs, writetiles, settings.writeconfidences)
    forward = make_forward(model, pipeline.element_spec)
    matrix, evaluated, timings = _run(forward, pipeline, classes, writer, storedir, settings, len(files))
    mark = time.perf_counter()
    metrics = _write_reports(storedir, settings, classes, matrix, evaluated, prefix, step)
    if writetiles:
        write_legend_png(storedir / PNG / LEGEND_PNG, classes.names, classes.ids)
    if settings.mosaic:
        placed = [tileid for tileid in evaluated if tileid in georefs]
        if placed:
            write_mosaics(storedir, writer.folders(), placed)
        else:
            warn("no tile has a georeference: no mosaic written")
    timings.finish = time.perf_counter() - mark
    return metrics, evaluated, timings, writer


def _outputs_note(storedir: Path, writer: TileWriter, mosaics: bool) -> str:
    """Where the outputs are, for the console."""
    lines = [f"outputs in {storedir}/:", f"  metrics.json, {CONFUSION_PNG}, {TRUEPRED_NPY} and the original's reports"]
    if writer.tiles:
        lines.append(f"  PNG maps: {PNG}/{{{','.join(PNG_MAPS)}}}/<tileid>.png, legend {PNG}/{LEGEND_PNG}")
        lines.append(f"  GeoTIFFs: {{{','.join(TILE_PRODUCTS)}}}/<tileid>.tif")
    if writer.confidences:
        lines.append(f"  GeoTIFFs: {CONFIDENCES}/<k>_<class>/<tileid>.tif")
    if mosaics:
        names = [f"{product}.tif" for product in TILE_PRODUCTS]
        names += [f"{CONFIDENCES}/<k>_<class>.tif"] if writer.confidences else []
        lines.append(f"  mosaics (Cloud-Optimized GeoTIFF): {', '.join(names)}")
    return "\n".join(lines)


def _run(forward: Callable, pipeline: tf.data.Dataset, classes: ClassList, writer: TileWriter, storedir: Path,
         settings: Settings, num_tiles: int) -> tuple[ConfusionMatrix, list[int], Timings]:
    """The loop over the batches: forward pass, confusion matrix, ``truepred.npy`` and the tile files (threads)."""
    matrix = ConfusionMatrix(classes.num_classes)
    timings = Timings()
    evaluated: list[int] = []
    write = bool(writer.folders())
    with (translate_errors(), TruePredWriter(storedir / TRUEPRED_NPY) as truepred,
          WriterPool(WRITER_THREADS, 2 * settings.batchsize + WRITER_THREADS) as pool,
          tqdm(total=num_tiles, unit="tile", disable=None, file=sys.stderr) as progress):
        batches = iter(pipeline)
        while True:
            mark = time.perf_counter()
            batch = next(batches, None)
            timings.input += time.perf_counter() - mark
            if batch is None:
                break
            mark = time.perf_counter()
            outputs = {name: value.numpy() for name, value in forward(batch).items()}
            timings.forward += time.perf_counter() - mark
            mark = time.perf_counter()
            labels, prediction = batch["labels"].numpy(), outputs["prediction"]
            matrix.update(labels, prediction)
            valid = labels > 0
            truepred.append(classes.to_raw(labels[valid]), classes.to_raw(prediction[valid]))
            batch_ids = [int(tileid) for tileid in batch["tileid"].numpy()]
            evaluated += batch_ids
            timings.host += time.perf_counter() - mark
            if write:
                for i, tileid in enumerate(batch_ids):
                    pool.submit(writer, tileid, labels[i], prediction[i], outputs["scores"][i], outputs["loss"][i])
            progress.update(len(batch_ids))
    timings.writer_wait = pool.wait_seconds
    return matrix, evaluated, timings


def _write_reports(storedir: Path, settings: Settings, classes: ClassList, matrix: ConfusionMatrix,
                   tileids: list[int], checkpoint: str | None, step: int) -> dict:
    """The original's report files, ``metrics.json`` with the run's details, and the confusion-matrix plot."""
    run = {"modeldir": str(settings.modeldir), "checkpoint": checkpoint, "global_step": step,
           "datadir": str(settings.datadir), "section": settings.section, "partition": settings.partition,
           "fold": settings.fold, "mixed_precision": settings.mixed_precision, "options": as_record(settings)}
    metrics = write_reports(storedir, matrix.matrix, classes.ids, classes.names,
                            extra={"num_tiles": len(tileids), "run": run})
    write_confusion_png(storedir / CONFUSION_PNG, matrix.matrix, classes.names)
    return metrics
