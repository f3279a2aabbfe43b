"""Pixel classification metrics (numpy only) and the report files of the original ``evaluate.py`` (ORIGINAL.md §4).

Classes follow ``classes.txt``: ``ids[k]``/``names[k]`` is class index k, index 0 is ``unknown`` (raw id 0).
A confusion matrix is K×K over the class indices 1..K (row = true, column = predicted), ordered as in
``classes.txt``, which is the order of the original's ``confusion_matrix.csv``.

Absent classes (policy of :func:`summarize`):

- a class is *present* when it has support (true pixels) or predictions; an absent class has every metric
  ``None`` and is left out of every average;
- precision = TP/predicted is ``None`` for a class never predicted; recall = TP/support is ``None`` for a class
  with no support; F1 = 2TP/(2TP+FP+FN) and IoU = TP/(TP+FP+FN) are defined for every present class (0 when it is
  never hit);
- macro precision and recall average the classes where they are defined (macro recall is the balanced
  accuracy); macro F1 and mean IoU average the present classes;
- weighted precision/recall/F1 are support-weighted with an undefined value counted as 0 (scikit-learn's
  ``average="weighted"``), so they equal the ``avg / total`` row of ``classification_report.txt`` and the
  ``weight. avg`` row of ``metrics.csv``; the weighted recall equals the overall accuracy.

The original's files (``classification_report.txt``, ``metrics.csv``) keep scikit-learn's convention: an undefined
precision, recall or F1 is written as 0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from utils.fsio import atomic_file

CONFUSION_MATRIX_CSV = "confusion_matrix.csv"
CLASSES_CSV = "classes.csv"
CLASSIFICATION_REPORT_TXT = "classification_report.txt"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
REPORT_FILES = (CONFUSION_MATRIX_CSV, CLASSES_CSV, CLASSIFICATION_REPORT_TXT, METRICS_CSV, METRICS_JSON)


class ConfusionMatrix:
    """Integer pixel counts of (true, predicted) class index pairs, indices 1..K; true index 0 (unknown) is skipped."""

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> ConfusionMatrix:
        """Count the pixels of two class-index arrays of equal shape; pixels whose true index is 0 are ignored."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
        for name, array in (("y_true", y_true), ("y_pred", y_pred)):
            if array.size and not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"{name} must hold integer class indices, got {array.dtype}")
        valid = y_true != 0
        true = y_true[valid].astype(np.int64) - 1
        pred = y_pred[valid].astype(np.int64) - 1
        k = self.num_classes
        for name, array in (("y_true", true), ("y_pred", pred)):
            if array.size and (array.min() < 0 or array.max() >= k):
                raise ValueError(f"{name} holds class indices outside 1..{k} on labelled pixels")
        self.matrix += np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of another matrix over the same classes (e.g. another year or worker)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.matrix += other.matrix
        return self


def _square(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    return matrix


def _counts(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, support (row sums) and predicted (column sums) of a square count matrix, as float64."""
    matrix = _square(matrix).astype(np.float64)
    return np.diag(matrix).copy(), matrix.sum(axis=1), matrix.sum(axis=0)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ratio, NaN where the denominator is 0."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _sklearn_scores(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 (0 where undefined, as scikit-learn) and integer support."""
    tp, support, predicted = _counts(matrix)
    precision = np.nan_to_num(_ratio(tp, predicted))
    recall = np.nan_to_num(_ratio(tp, support))
    f1 = np.nan_to_num(_ratio(2 * precision * recall, precision + recall))
    return precision, recall, f1, support.astype(np.int64)


def _weighted(values: np.ndarray, support: np.ndarray) -> float:
    """Support-weighted mean, 0 when there is no support (scikit-learn's ``average="weighted"``)."""
    total = support.sum()
    return float((values * support).sum() / total) if total > 0 else 0.0


def _class_names(matrix: np.ndarray, names: Sequence[str]) -> list[str]:
    """The K class names of a K×K matrix from the ``classes.txt`` list (index 0 = unknown)."""
    k = _square(matrix).shape[0]
    if len(names) != k + 1:
        raise ValueError(f"expected {k + 1} class names (index 0 = unknown) for a {k}x{k} matrix, got {len(names)}")
    return [str(name) for name in names[1:]]


def _check_ids(ids: Sequence[int], names: Sequence[str]) -> None:
    if len(ids) != len(names):
        raise ValueError(f"got {len(ids)} class ids for {len(names)} class names")


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _mean_defined(values: np.ndarray) -> float | None:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else None


def summarize(matrix: np.ndarray, names: Sequence[str], ids: Sequence[int] | None = None) -> dict:
    """All metrics of a K×K confusion matrix as a JSON-ready dict (absent classes: see the module docstring).

    Keys: ``num_pixels``, ``overall_accuracy``, ``kappa`` (Cohen's), ``mean_iou``, ``macro`` and ``weighted``
    (each ``precision``, ``recall``, ``f1``) and ``classes``: one dict per class index 1..K with ``index``, ``id``
    (raw id, when ``ids`` is given), ``name``, ``precision``, ``recall``, ``f1``, ``iou``, ``support`` and
    ``predicted``. ``names`` (and ``ids``) are the ``classes.txt`` lists, index 0 = unknown. Undefined values are
    ``None``.
    """
    class_names = _class_names(matrix, names)
    if ids is not None:
        _check_ids(ids, names)
    tp, support, predicted = _counts(matrix)
    errors = support + predicted - 2 * tp  # FP + FN; F1 and IoU are NaN exactly for absent classes
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, 2 * tp + errors)
    iou = _ratio(tp, tp + errors)
    n = support.sum()
    overall = tp.sum() / n if n > 0 else np.nan
    expected = (support * predicted).sum() / n**2 if n > 0 else np.nan
    kappa = (overall - expected) / (1 - expected) if n > 0 and expected < 1 else np.nan
    sk_precision, sk_recall, sk_f1, _ = _sklearn_scores(matrix)
    classes = []
    for k, name in enumerate(class_names):
        entry = {"index": k + 1}
        if ids is not None:
            entry["id"] = int(ids[k + 1])
        entry.update(name=name, precision=_optional(precision[k]), recall=_optional(recall[k]),
                     f1=_optional(f1[k]), iou=_optional(iou[k]), support=int(support[k]),
                     predicted=int(predicted[k]))
        classes.append(entry)
    return {
        "num_pixels": int(n),
        "overall_accuracy": _optional(overall),
        "kappa": _optional(kappa),
        "mean_iou": _mean_defined(iou),
        "macro": {"precision": _mean_defined(precision), "recall": _mean_defined(recall),
                  "f1": _mean_defined(f1)},
        "weighted": {"precision": _weighted(sk_precision, support) if n > 0 else None,
                     "recall": _weighted(sk_recall, support) if n > 0 else None,
                     "f1": _weighted(sk_f1, support) if n > 0 else None},
        "classes": classes,
    }


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_summary(metrics: dict) -> str:
    """A readable console table of :func:`summarize`'s dict: headline numbers, averages, then one row per class."""
    macro, weighted = metrics["macro"], metrics["weighted"]
    width = max([len("class")] + [len(entry["name"]) for entry in metrics["classes"]])
    lines = [
        f"pixels {metrics['num_pixels']:,}   overall accuracy {_number(metrics['overall_accuracy'])}   "
        f"kappa {_number(metrics['kappa'])}   mean IoU {_number(metrics['mean_iou'])}",
        f"macro     precision {_number(macro['precision'])}   recall {_number(macro['recall'])}   "
        f"F1 {_number(macro['f1'])}",
        f"weighted  precision {_number(weighted['precision'])}   recall {_number(weighted['recall'])}   "
        f"F1 {_number(weighted['f1'])}",
        "",
        f"{'class':<{width}}  {'precision':>9}  {'recall':>6}  {'F1':>5}  {'IoU':>5}  {'support':>11}",
    ]
    for entry in metrics["classes"]:
        lines.append(f"{entry['name']:<{width}}  {_number(entry['precision']):>9}  {_number(entry['recall']):>6}  "
                     f"{_number(entry['f1']):>5}  {_number(entry['iou']):>5}  {entry['support']:>11,}")
    return "\n".join(lines) + "\n"


def classification_report(matrix: np.ndarray, names: Sequence[str]) -> str:
    """The text of scikit-learn's ``classification_report`` (0.19 layout, 2 digits) as ``evaluate.py`` wrote it."""
    class_names = _class_names(matrix, names)
    precision, recall, f1, support = _sklearn_scores(matrix)
    last = "avg / total"
    width = max(len(last), *(len(name) for name in class_names))
    headers = ("precision", "recall", "f1-score", "support")
    text = " " * width + " " + "".join(f" {header:>9}" for header in headers) + "\n\n"

    def row(name: str, p: float, r: float, f: float, s: int) -> str:
        return f"{name:>{width}} " + "".join(f" {value:>9.2f}" for value in (p, r, f)) + f" {s:>9}\n"

    for k, name in enumerate(class_names):
        text += row(name, precision[k], recall[k], f1[k], support[k])
    text += "\n" + row(last, _weighted(precision, support), _weighted(recall, support), _weighted(f1, support),
                       int(support.sum()))
    return text


def _write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_confusion_matrix_csv(path: str | os.PathLike, matrix: np.ndarray, names: Sequence[str]) -> Path:
    """``confusion_matrix.csv``: the class names joined by ``", "``, then the integer matrix with ``", "``."""
    header = ", ".join(_class_names(matrix, names))
    rows = [", ".join(str(int(value)) for value in row) for row in np.asarray(matrix)]
    return _write_text(path, "\n".join([header, *rows]) + "\n")


def write_classes_csv(path: str | os.PathLike, ids: Sequence[int], names: Sequence[str]) -> Path:
    """``classes.csv``: one ``<raw id>, <name>`` row per class, unknown (index 0) left out."""
    _check_ids(ids, names)
    return _write_text(path, "".join(f"{int(i)}, {name}\n" for i, name in zip(ids[1:], names[1:], strict=True)))


def write_classification_report(path: str | os.PathLike, matrix: np.ndarray, names: Sequence[str]) -> Path:
    """``classification_report.txt``: the text of :func:`classification_report`."""
    return _write_text(path, classification_report(matrix, names))


def _round2(value: float) -> str:
    """A score as the original wrote it: ``str(numpy.around(value, 2))``, e.g. ``0.9``, ``0.91``, ``1.0``."""
    return str(float(np.around(value, 2)))


def write_metrics_csv(path: str | os.PathLike, matrix: np.ndarray, ids: Sequence[int], names: Sequence[str]) -> Path:
    """``metrics.csv``: per-class precision/recall/F1 rounded to 2 decimals and support, then the weighted row."""
    class_names = _class_names(matrix, names)
    _check_ids(ids, names)
    precision, recall, f1, support = _sklearn_scores(matrix)
    lines = ["id,name,precision,recall,fscore,support"]
    for k, name in enumerate(class_names):
        lines.append(", ".join([str(int(ids[k + 1])), name, _round2(precision[k]), _round2(recall[k]),
                                _round2(f1[k]), str(support[k])]))
    averages = (_round2(_weighted(values, support)) for values in (precision, recall, f1))
    lines += [",,,,,", ",weight. avg,{},{},{},".format(*averages)]
    return _write_text(path, "\n".join(lines) + "\n")


def write_metrics_json(path: str | os.PathLike, metrics: dict) -> Path:
    """``metrics.json``: the dict of :func:`summarize` (``null`` for undefined values)."""
    return _write_text(path, json.dumps(metrics, indent=2) + "\n")


def write_reports(directory: str | os.PathLike, matrix: np.ndarray, ids: Sequence[int],
                  names: Sequence[str], extra: dict | None = None) -> dict:
    """Write the original's four report files and ``metrics.json`` into ``directory``; return :func:`summarize`
    with the entries of ``extra`` (e.g. the run's details) added."""
    directory = Path(directory)
    metrics = {**summarize(matrix, names, ids), **(extra or {})}
    write_confusion_matrix_csv(directory / CONFUSION_MATRIX_CSV, matrix, names)
    write_classes_csv(directory / CLASSES_CSV, ids, names)
    write_classification_report(directory / CLASSIFICATION_REPORT_TXT, matrix, names)
    write_metrics_csv(directory / METRICS_CSV, matrix, ids, names)
    write_metrics_json(directory / METRICS_JSON, metrics)
    return metrics
