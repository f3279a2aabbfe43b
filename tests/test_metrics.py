"""Metrics against direct numpy computations and the original's report files on a small known matrix."""

import json

import numpy as np
import pytest

from utils.classes import ClassList
from utils.metrics import (
    ConfusionMatrix,
    classification_report,
    format_summary,
    summarize,
    write_classes_csv,
    write_classification_report,
    write_confusion_matrix_csv,
    write_metrics_csv,
    write_metrics_json,
    write_reports,
)

# A small known case: class 3 (rape) is predicted 3 times but never true.
IDS = [0, 22, 26, 5]
NAMES = ["unknown", "wheat", "maize", "rape"]
MATRIX = np.array([[8, 2, 0], [1, 6, 3], [0, 0, 0]])


def reference_metrics(y_true, y_pred, num_classes):
    """Per-class counts and scores computed pixel by pixel with boolean masks (NaN where undefined)."""
    valid = y_true > 0
    t, p = y_true[valid], y_pred[valid]
    rows = {}
    for k in range(1, num_classes + 1):
        tp = np.sum((t == k) & (p == k))
        fp = np.sum((t != k) & (p == k))
        fn = np.sum((t == k) & (p != k))
        rows[k] = {
            "precision": tp / (tp + fp) if tp + fp else np.nan,
            "recall": tp / (tp + fn) if tp + fn else np.nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan,
            "iou": tp / (tp + fp + fn) if tp + fp + fn else np.nan,
            "support": int(tp + fn),
        }
    po = np.mean(t == p)
    pe = sum(np.mean(t == k) * np.mean(p == k) for k in range(1, num_classes + 1))
    return rows, po, (po - pe) / (1 - pe)


def as_nan(value):
    return np.nan if value is None else value


def test_random_predictions_match_direct_computation():
    rng = np.random.default_rng(42)
    k = 7  # class 7 absent (never true, never predicted), class 4 never predicted, class 6 never true
    y_true = rng.choice([0, 1, 2, 3, 4, 5], size=(6, 24, 24), p=[0.1, 0.3, 0.25, 0.15, 0.1, 0.1])
    noise = rng.choice([1, 2, 3, 5, 6], size=y_true.shape)
    y_pred = np.where(rng.random(y_true.shape) < 0.6, y_true, noise)
    y_pred[y_pred == 4] = 6
    y_pred[y_true == 0] = rng.choice([1, 2, 3, 5, 6], size=int((y_true == 0).sum()))

    cm = ConfusionMatrix(k)
    for batch in range(0, 6, 2):  # accumulate over batches
        cm.update(y_true[batch:batch + 2], y_pred[batch:batch + 2])
    assert cm.matrix.sum() == (y_true > 0).sum()

    names = ["unknown"] + [f"class {i}" for i in range(1, k + 1)]
    metrics = summarize(cm.matrix, names, ids=list(range(0, 70, 10)) + [99])
    rows, po, kappa = reference_metrics(y_true, y_pred, k)
    for entry in metrics["classes"]:
        ref = rows[entry["index"]]
        for key in ("precision", "recall", "f1", "iou"):
            np.testing.assert_allclose(as_nan(entry[key]), ref[key], rtol=1e-12, err_msg=f"{entry['name']} {key}")
        assert entry["support"] == ref["support"]
    assert metrics["classes"][3]["precision"] is None and metrics["classes"][3]["recall"] == 0.0  # never predicted
    assert metrics["classes"][5]["recall"] is None and metrics["classes"][5]["precision"] == 0.0  # never true
    assert all(metrics["classes"][6][key] is None for key in ("precision", "recall", "f1", "iou"))  # absent
    assert metrics["classes"][6]["id"] == 99

    np.testing.assert_allclose(metrics["overall_accuracy"], po, rtol=1e-12)
    np.testing.assert_allclose(metrics["kappa"], kappa, rtol=1e-12)
    present = [rows[c] for c in range(1, 7)]  # classes 1..6; class 7 is excluded from every average
    np.testing.assert_allclose(metrics["mean_iou"], np.mean([r["iou"] for r in present]), rtol=1e-12)
    np.testing.assert_allclose(metrics["macro"]["f1"], np.mean([r["f1"] for r in present]), rtol=1e-12)
    np.testing.assert_allclose(metrics["macro"]["recall"], np.mean([rows[c]["recall"] for c in range(1, 6)]))
    np.testing.assert_allclose(metrics["macro"]["precision"], np.mean([rows[c]["precision"] for c in (1, 2, 3, 5, 6)]))
    support = np.array([r["support"] for r in rows.values()])
    weighted_precision = np.nan_to_num([r["precision"] for r in rows.values()]) @ support / support.sum()
    np.testing.assert_allclose(metrics["weighted"]["precision"], weighted_precision, rtol=1e-12)
    np.testing.assert_allclose(metrics["weighted"]["recall"], po, rtol=1e-12)  # weighted recall = OA
    assert metrics["num_pixels"] == int((y_true > 0).sum())


def test_update_ignores_unknown_and_merge_adds():
    a = ConfusionMatrix(3).update(np.array([[0, 1], [2, 3]]), np.array([[2, 1], [3, 3]]))
    np.testing.assert_array_equal(a.matrix, [[1, 0, 0], [0, 0, 1], [0, 0, 1]])
    b = ConfusionMatrix(3).update(np.array([1, 1, 0]), np.array([2, 2, 0]))
    np.testing.assert_array_equal(a.merge(b).matrix, [[1, 2, 0], [0, 0, 1], [0, 0, 1]])
    assert a.matrix.dtype == np.int64


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([1, 2], [1, 0], "outside 1..3"),
        ([1, 4], [1, 1], "outside 1..3"),
        ([1, -1], [1, 1], "outside 1..3"),
        ([1, 2], [1], "differ in shape"),
        ([1.0, 2.0], [1, 2], "integer"),
    ],
)
def test_update_rejects_bad_class_indices(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        ConfusionMatrix(3).update(np.array(y_true), np.array(y_pred))


def test_bad_shapes_and_names():
    with pytest.raises(ValueError, match="cannot merge"):
        ConfusionMatrix(3).merge(ConfusionMatrix(4))
    with pytest.raises(ValueError, match="expected 4 class names"):
        summarize(MATRIX, NAMES[1:])
    with pytest.raises(ValueError, match="square"):
        summarize(MATRIX[:2], NAMES)
    with pytest.raises(ValueError, match="3 class ids for 4"):
        write_metrics_csv("unused.csv", MATRIX, IDS[1:], NAMES)


def test_summary_of_known_matrix():
    metrics = summarize(MATRIX, NAMES, IDS)
    assert metrics["num_pixels"] == 20
    assert metrics["overall_accuracy"] == pytest.approx(0.7)
    assert metrics["kappa"] == pytest.approx((0.7 - 170 / 400) / (1 - 170 / 400))
    assert metrics["mean_iou"] == pytest.approx((8 / 11 + 6 / 12 + 0) / 3)
    assert metrics["macro"] == pytest.approx({"precision": (8 / 9 + 0.75 + 0) / 3, "recall": 0.7,
                                             "f1": (16 / 19 + 12 / 18 + 0) / 3})
    assert metrics["weighted"] == pytest.approx({"precision": (8 / 9 + 0.75) / 2, "recall": 0.7,
                                                "f1": (16 / 19 + 12 / 18) / 2})
    assert metrics["classes"][2] == {"index": 3, "id": 5, "name": "rape", "precision": 0.0, "recall": None,
                                     "f1": 0.0, "iou": 0.0, "support": 0, "predicted": 3}
    empty = summarize(np.zeros((3, 3), int), NAMES)
    assert empty["overall_accuracy"] is None and empty["kappa"] is None and empty["mean_iou"] is None
    assert empty["weighted"]["f1"] is None and empty["num_pixels"] == 0


def test_format_summary_table():
    text = format_summary(summarize(MATRIX, NAMES, IDS))
    lines = text.splitlines()
    assert lines[0] == "pixels 20   overall accuracy 0.700   kappa 0.478   mean IoU 0.409"
    assert lines[1] == "macro     precision 0.546   recall 0.700   F1 0.503"
    assert lines[2] == "weighted  precision 0.819   recall 0.700   F1 0.754"
    assert lines[4] == "class  precision  recall     F1    IoU      support"
    assert lines[5] == "wheat      0.889   0.800  0.842  0.727           10"
    assert lines[7] == "rape       0.000       -  0.000  0.000            0"


def test_original_report_files(tmp_path):
    write_confusion_matrix_csv(tmp_path / "confusion_matrix.csv", MATRIX, NAMES)
    assert (tmp_path / "confusion_matrix.csv").read_text() == "wheat, maize, rape\n8, 2, 0\n1, 6, 3\n0, 0, 0\n"
    write_classes_csv(tmp_path / "classes.csv", IDS, NAMES)
    assert (tmp_path / "classes.csv").read_text() == "22, wheat\n26, maize\n5, rape\n"
    write_metrics_csv(tmp_path / "metrics.csv", MATRIX, IDS, NAMES)
    assert (tmp_path / "metrics.csv").read_text() == (
        "id,name,precision,recall,fscore,support\n"
        "22, wheat, 0.89, 0.8, 0.84, 10\n"
        "26, maize, 0.75, 0.6, 0.67, 10\n"
        "5, rape, 0.0, 0.0, 0.0, 0\n"
        ",,,,,\n"
        ",weight. avg,0.82,0.7,0.75,\n"
    )
    write_classification_report(tmp_path / "classification_report.txt", MATRIX, NAMES)
    assert (tmp_path / "classification_report.txt").read_text() == (
        "             precision    recall  f1-score   support\n"
        "\n"
        "      wheat       0.89      0.80      0.84        10\n"
        "      maize       0.75      0.60      0.67        10\n"
        "       rape       0.00      0.00      0.00         0\n"
        "\n"
        "avg / total       0.82      0.70      0.75        20\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classes.csv", "classification_report.txt", "confusion_matrix.csv", "metrics.csv"]


def test_report_name_column_widens_to_longest_name():
    names = ["unknown", "winter triticale", "maize"]
    lines = classification_report(np.array([[5, 0], [0, 1000000]]), names).splitlines()
    assert lines[0] == "                  precision    recall  f1-score   support"
    assert lines[2] == "winter triticale       1.00      1.00      1.00         5"
    assert lines[3] == "           maize       1.00      1.00      1.00   1000000"
    assert lines[5] == "     avg / total       1.00      1.00      1.00   1000005"


def test_write_reports_and_json_round_trip(tmp_path):
    metrics = write_reports(tmp_path / "eval", MATRIX, IDS, NAMES)
    files = sorted(p.name for p in (tmp_path / "eval").iterdir())
    assert files == ["classes.csv", "classification_report.txt", "confusion_matrix.csv", "metrics.csv",
                     "metrics.json"]
    loaded = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert loaded == metrics
    assert loaded["classes"][2]["recall"] is None
    write_metrics_json(tmp_path / "again.json", metrics)
    assert json.loads((tmp_path / "again.json").read_text()) == loaded


def test_confusion_of_raw_ids():
    classes = ClassList(tuple(IDS), tuple(NAMES))
    np.testing.assert_array_equal(classes.to_index([[0, 22, 26], [5, 7, 26]]), [[0, 1, 2], [3, 0, 2]])
    cm = ConfusionMatrix(3).update(classes.to_index([22, 26, 7]), classes.to_index([22, 5, 22]))
    np.testing.assert_array_equal(cm.matrix, [[1, 0, 0], [0, 0, 1], [0, 0, 0]])
