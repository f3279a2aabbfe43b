"""``predict.py``: the map of the area of Sentinel-2 sources made with a model folder (windows and blending in
:mod:`utils.mapping`, files in :mod:`utils.mapfiles`), resumable, in parts, and the merge of parts.

A run works in ``<outdir parent>/.<outdir name>.part/``: the map's GeoTIFFs grow band of rows by band of rows, and
after every band ``state.json`` (the next band, the class counts, the confusion matrix against ``--labels``) and
``carry.npy`` (the score sums of the rows the next band's windows still reach) are replaced. The same command
continues from there after a kill; other settings are an error. When the last band is written the files become
Cloud-Optimized GeoTIFFs, ``classes.png`` and ``summary.json`` are written, and the folder is renamed to
``outdir``: a map that exists is complete.
"""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from tqdm import tqdm

from utils.classes import ClassList, load_classes
from utils.cli import UserError, warn
from utils.distribution import configure_devices, make_strategy
from utils.fsio import atomic_file
from utils.georef import GeoRef
from utils.labels import LabelRaster
from utils.mapfiles import CLASSES_PNG, CLASSES_TIF, PROBABILITIES_TIF, MapFiles, write_quicklook
from utils.mapping import (
    Accumulator,
    Plan,
    band_windows,
    blend,
    blend_weights,
    check_windows,
    make_forward,
    scored_windows,
)
from utils.metrics import ConfusionMatrix, summarize
from utils.modelfolder import ModelFolder
from utils.rasters import BLOCK
from utils.recordarea import RecordArea, is_dataset_root
from utils.sentinel2 import Area, SourceOptions, open_area

STATE, CARRY, SUMMARY = "state.json", "carry.npy", "summary.json"
FINAL = "final"
TRAINED_YEARS = (2016, 2017)  # the years of the original data (and of the synthetic dataset)
HECTARES_PER_PIXEL = 0.01


@dataclass(frozen=True)
class Settings:
    """The options of one ``predict.py`` run."""

    modeldir: Path
    sources: tuple[str, ...]
    outdir: Path
    stride: int | None = None
    year: int | None = None
    batchsize: int = 16
    probabilities: bool = False
    checkpoint: str | None = None
    allow_untrained: bool = False
    mixed_precision: str = "none"
    strategy: str = "default"
    devices: tuple[str, ...] | None = None
    part: tuple[int, int] | None = None
    classes: Path | None = None
    labels: Path | None = None
    options: SourceOptions = field(default_factory=SourceOptions)


def work_folder(outdir: Path) -> Path:
    """The folder where a run into ``outdir`` works (and is resumed)."""
    return outdir.parent / f".{outdir.name}.part"


def open_sources(sources: tuple[str, ...], options: SourceOptions, year: int | None) -> Area | RecordArea:
    """The area of the sources: Sentinel-2 scenes (:func:`utils.sentinel2.open_area`) or a dataset root of records
    (:class:`utils.recordarea.RecordArea`)."""
    if len(sources) == 1 and is_dataset_root(Path(sources[0])):
        return RecordArea(Path(sources[0]), year)
    if any(is_dataset_root(Path(source)) for source in sources):
        raise UserError(f"{next(s for s in sources if is_dataset_root(Path(s)))}: a dataset root is mapped alone, not "
                        "with other sources")
    return open_area(sources, options, year)


def check_dates(area: Area | RecordArea) -> None:
    """One warning for a year or a season the models were not trained on."""
    year = area.dates[0].year
    if year not in TRAINED_YEARS:
        warn(f"year {year}: the network reads year - 2016 = {year - 2016} as an input, but the original data (and "
             f"the synthetic data) hold {TRAINED_YEARS[0]} and {TRAINED_YEARS[1]} only; its maps of other years are "
             "extrapolations")
    first, last = area.dates[0], area.dates[-1]
    if first > datetime.date(year, 3, 31) or last < datetime.date(year, 10, 1):
        warn(f"the dates run from {first} to {last} only: the models were trained on series of the whole year "
             "(January to December), and crops are told apart by their whole season")


class _Run:
    """The state of a run in its work folder: the next band, the class counts, the confusion matrix, the carry."""

    def __init__(self, work: Path, fingerprint: dict, num_classes: int):
        self.work = work
        self.fingerprint = fingerprint
        self.next_band: int | None = None
        self.counts = np.zeros(num_classes + 1, np.int64)
        self.confusion = ConfusionMatrix(num_classes)
        self.previous_seconds = 0.0  # run time of the processes before this one
        self.carry: np.ndarray | None = None

    def resume(self) -> bool:
        """Load a run of the same settings from the work folder; False when there is none to resume."""
        path = self.work / STATE
        if not path.is_file():
            return False
        try:
            state = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            return False
        if state.get("settings") != self.fingerprint:
            raise UserError(f"{self.work}: a stopped run with other settings works here; run its command again to "
                            "finish it, or remove the folder")
        self.next_band = state["next_band"]
        self.counts = np.array(state["counts"], np.int64)
        self.confusion.matrix = np.array(state["confusion"], np.int64)
        self.previous_seconds = state["seconds"]
        self.carry = np.load(self.work / CARRY) if (self.work / CARRY).is_file() else None
        return True

    def save(self, next_band: int, carry: np.ndarray | None, seconds: float) -> None:
        """Record that every band before ``next_band`` is written (after their rows are on disk), ``seconds`` into
        this process's run."""
        self.next_band, self.carry = next_band, carry
        if carry is not None:
            with atomic_file(self.work / CARRY) as tmp, open(tmp, "wb") as file:
                np.save(file, carry)
        state = {"settings": self.fingerprint, "next_band": next_band, "counts": self.counts.tolist(),
                 "confusion": self.confusion.matrix.tolist(), "seconds": self.previous_seconds + seconds}
        with atomic_file(self.work / STATE) as tmp:
            tmp.write_text(json.dumps(state))


def _check_outdir(outdir: Path) -> None:
    if outdir.exists():
        raise UserError(f"{outdir}: the output folder exists; choose another --outdir or remove it")


def predict(settings: Settings) -> dict:
    """Map the area of ``settings.sources``; returns the summary (as in ``summary.json``)."""
    start = time.perf_counter()
    outdir = settings.outdir
    _check_outdir(outdir)
    if settings.batchsize < 1:
        raise UserError(f"--batchsize {settings.batchsize}: must be at least 1")
    classes, classes_source = load_classes(settings.classes)
    folder = ModelFolder(settings.modeldir)
    size = folder.params.pix10m
    stride = settings.stride or size // 2
    check_windows(size, stride)
    configure_devices(settings.devices)
    strategy = make_strategy(settings.strategy, settings.devices)
    with strategy.scope():
        folder.check_classes(classes.num_classes, classes_source)
        model, prefix, step = folder.load_network(settings.checkpoint, settings.allow_untrained,
                                                  settings.mixed_precision)
    if prefix is None:
        warn(f"{folder.path}: no checkpoint; mapping with the randomly initialised network (--allow_untrained)")
    replicas = strategy.num_replicas_in_sync
    batchsize = -(-settings.batchsize // replicas) * replicas
    with open_sources(settings.sources, settings.options, settings.year) as area:
        check_dates(area)
        plan = Plan.of(area, size, stride, classes.num_classes)
        part, parts = settings.part or (1, 1)
        r0, r1 = plan.part_rows(part, parts)
        fingerprint = {"model": str(folder.path.resolve()), "checkpoint": prefix and str(Path(prefix).resolve()),
                       "sources": sorted(str(Path(source).resolve()) for source in settings.sources),
                       "dates": [str(date) for date in area.dates], "area": [area.height, area.width],
                       "window": size, "stride": stride, "batchsize": batchsize, "part": [part, parts],
                       "probabilities": settings.probabilities, "mixed_precision": settings.mixed_precision,
                       "classes": [list(classes.ids), list(classes.names)],
                       "labels": settings.labels and str(Path(settings.labels).resolve()),
                       "options": asdict(settings.options)}
        work = work_folder(outdir)
        run = _Run(work, fingerprint, classes.num_classes)
        files = MapFiles(work, area.georef.shifted(r0, 0), r1 - r0, area.width, classes, settings.probabilities)
        bands = plan.part_bands(r0, r1)
        if run.resume():
            print(f"resuming {work}: band {run.next_band - bands.start + 1} of {len(bands)}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
            files.create()
            run.save(bands.start, None, 0.0)
        labels = LabelRaster(settings.labels, area.georef) if settings.labels else None
        where = f"rows {r0}..{r1} of " if parts > 1 else ""
        print(f"mapping {where}{area.height} x {area.width} px ({area.area_km2:.2f} km², EPSG:{area.georef.epsg}), "
              f"{len(area.dates)} dates of {area.dates[0].year} with {prefix or folder.path} (step {step}): "
              f"windows of {size} px every {stride} px", file=sys.stderr)
        _map_bands(area, plan, bands, (r0, r1), model_forward=make_forward(model, strategy), batchsize=batchsize,
                   files=files, run=run, labels=labels, started=start)
        if labels is not None:
            labels.close()
    seconds = run.previous_seconds + time.perf_counter() - start
    summary = _summary(settings, area, plan, (part, parts), (r0, r1), classes, run, folder, prefix, step, seconds)
    _finish(files, work, outdir, summary, classes)
    return summary


def _map_bands(area: Area, plan: Plan, bands: range, rows: tuple[int, int], *, model_forward, batchsize: int,
               files: MapFiles, run: _Run, labels: LabelRaster | None, started: float) -> None:
    """Compute and write the bands from ``run.next_band`` on, saving the state after each."""
    r0, r1 = rows
    num_classes = files.classes.num_classes
    weights = blend_weights(plan.size)
    total = sum(len(plan.cols) * (plan.bands[b][1] - plan.bands[b][0]) for b in bands)
    done = sum(len(plan.cols) * (plan.bands[b][1] - plan.bands[b][0]) for b in range(bands.start, run.next_band))
    km2_per_window = plan.stride * plan.stride * 1e-4
    with tqdm(total=total, initial=done, unit="window", disable=None, file=sys.stderr) as progress:
        for band in range(run.next_band, bands.stop):
            top, finished, bottom = plan.band_rows(band)
            acc = Accumulator(top, bottom - top, plan.span, num_classes, run.carry)
            for window, scores in scored_windows(band_windows(area, plan, band, weights), model_forward, batchsize,
                                                 plan.size):
                acc.add(window.row, window.col, scores, window.weights)
            out0, out1 = max(top, r0), min(finished, r1)
            if out0 < out1:
                scores, observed = blend(acc.rows(out0, out1)[:, :area.width])
                raw = files.write(out0 - r0, scores, observed)
                run.counts += np.bincount(files.classes.to_index(raw).ravel(), minlength=num_classes + 1)
                if labels is not None:
                    truth = files.classes.to_index(labels.read(out0, 0, out1 - out0, area.width))
                    scored = observed & (truth > 0)
                    run.confusion.update(truth[scored], files.classes.to_index(raw[scored]))
            carry = acc.rows(finished, bottom).copy() if band + 1 < bands.stop else None
            run.save(band + 1, carry, time.perf_counter() - started)
            windows = len(plan.cols) * (plan.bands[band][1] - plan.bands[band][0])
            progress.update(windows)
            progress.set_postfix_str(f"{progress.n * km2_per_window:.1f} km²", refresh=False)


def _summary(settings: Settings, area: Area, plan: Plan, part: tuple[int, int], rows: tuple[int, int],
             classes: ClassList, run: _Run, folder: ModelFolder, prefix: str | None, step: int,
             seconds: float) -> dict:
    r0, r1 = rows
    georef = area.georef.shifted(r0, 0)
    xmin, xres, _, ymax, _, yres = georef.transform
    height = r1 - r0
    summary = {
        "area": {"height_px": height, "width_px": area.width, "km2": height * area.width * 1e-4,
                 "epsg": georef.epsg, "transform": list(georef.transform),
                 "bounds": [xmin, ymax + height * yres, xmin + area.width * xres, ymax]},
        "part": {"index": part[0], "of": part[1], "rows": [r0, r1], "area_rows": area.height},
        "window_px": plan.size, "stride_px": plan.stride, "windows": plan.windows,
        "year": area.dates[0].year, "level": area.level, "dates": [str(date) for date in area.dates],
        "sources": area.sources,
        "model": {"folder": str(folder.path), "checkpoint": prefix, "global_step": step,
                  "convcell": folder.params.convcell, "convrnn_filters": folder.params.convrnn_filters,
                  "mixed_precision": settings.mixed_precision, "strategy": settings.strategy,
                  "batchsize": settings.batchsize},
        "nodata_pixels": int(run.counts[0]),
        "classes": [{"id": int(raw), "name": name, "pixels": int(n), "hectares": float(n) * HECTARES_PER_PIXEL}
                    for raw, name, n in zip(classes.ids[1:], classes.names[1:], run.counts[1:], strict=True)],
        "seconds": round(seconds, 1),
    }
    if settings.labels:
        summary["reference"] = {"labels": str(settings.labels), "confusion": run.confusion.matrix.tolist(),
                                **summarize(run.confusion.matrix, classes.names, classes.ids)}
    return summary


def _finish(files: MapFiles, work: Path, outdir: Path, summary: dict, classes: ClassList) -> None:
    """The COGs, the quick look and ``summary.json`` in a folder that becomes ``outdir`` when complete."""
    final = work / FINAL
    shutil.rmtree(final, ignore_errors=True)
    final.mkdir()
    files.finish(final)
    hectares = [entry["hectares"] for entry in summary["classes"]]
    part = summary["part"]
    title = f"{summary['year']}, {len(summary['dates'])} dates" + (
        f", part {part['index']} of {part['of']}" if part["of"] > 1 else "")
    write_quicklook(final / CLASSES_TIF, final / CLASSES_PNG, classes, hectares, title)
    (final / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    _check_outdir(outdir)
    final.rename(outdir)
    shutil.rmtree(work)


def merge(parts: list[Path], outdir: Path) -> dict:
    """Assemble the maps of ``predict.py --part K/N`` (every K once) into one map in ``outdir``."""
    _check_outdir(outdir)
    summaries = []
    for folder in parts:
        path = Path(folder) / SUMMARY
        if not path.is_file():
            raise UserError(f"{folder}: no {SUMMARY}: not a finished map of predict.py --part")
        summaries.append(json.loads(path.read_text()))
    first = summaries[0]
    count = first["part"]["of"]
    same = ("window_px", "stride_px", "year", "dates", "sources", "model")
    for folder, summary in zip(parts, summaries, strict=True):
        for key in same:
            if summary[key] != first[key]:
                raise UserError(f"{folder}: {key} differs from that of {parts[0]}: parts of different maps")
        if summary["part"]["of"] != count or summary["area"]["width_px"] != first["area"]["width_px"]:
            raise UserError(f"{folder}: part {summary['part']['index']} of {summary['part']['of']} does not fit "
                            f"{parts[0]} (part {first['part']['index']} of {count})")
    indices = sorted(summary["part"]["index"] for summary in summaries)
    if indices != list(range(1, count + 1)):
        raise UserError(f"parts {', '.join(map(str, indices))} given; a map of {count} parts needs each of 1..{count} "
                        "once")
    start = time.perf_counter()
    ordered = sorted(zip(summaries, parts, strict=True), key=lambda item: item[0]["part"]["index"])
    top = ordered[0][0]
    classes = ClassList((0, *(entry["id"] for entry in top["classes"])),
                        ("unknown", *(entry["name"] for entry in top["classes"])))
    height = top["part"]["area_rows"]
    work = work_folder(outdir)
    shutil.rmtree(work, ignore_errors=True)
    files = MapFiles(work, GeoRef(tuple(top["area"]["transform"]), top["area"]["epsg"]), height,
                     top["area"]["width_px"], classes, (Path(parts[0]) / PROBABILITIES_TIF).is_file())
    files.create()
    for summary, folder in ordered:
        r0 = summary["part"]["rows"][0]
        for name in files.names:
            with rasterio.open(Path(folder) / name) as src, rasterio.open(work / name, "r+") as dst:
                for row in range(0, src.height, BLOCK):
                    rows = min(BLOCK, src.height - row)
                    data = src.read(window=((row, row + rows), (0, src.width)))
                    dst.write(data, window=((r0 + row, r0 + row + rows), (0, src.width)))
    merged = dict(top)
    merged["area"] = {**top["area"], "height_px": height, "km2": height * top["area"]["width_px"] * 1e-4}
    merged["area"]["bounds"] = [top["area"]["bounds"][0], ordered[-1][0]["area"]["bounds"][1],
                                top["area"]["bounds"][2], top["area"]["bounds"][3]]
    merged["part"] = {"index": 1, "of": 1, "rows": [0, height], "area_rows": height, "merged_from": count}
    merged["nodata_pixels"] = sum(s["nodata_pixels"] for s in summaries)
    for k, entry in enumerate(merged["classes"]):
        pixels = sum(s["classes"][k]["pixels"] for s in summaries)
        merged["classes"][k] = {**entry, "pixels": pixels, "hectares": pixels * HECTARES_PER_PIXEL}
    merged["seconds"] = round(sum(s["seconds"] for s in summaries) + time.perf_counter() - start, 1)
    if "reference" in top:
        matrix = np.sum([np.array(s["reference"]["confusion"], np.int64) for s in summaries], axis=0)
        merged["reference"] = {"labels": top["reference"]["labels"], "confusion": matrix.tolist(),
                               **summarize(matrix, classes.names, classes.ids)}
    _finish(files, work, outdir, merged, classes)
    return merged

