"""What a training run reports (utils/runlog.py): durations, the progress display, the training log."""

from __future__ import annotations

import pytest

from utils import runlog
from utils.cli import UserError
from utils.runlog import format_duration


def test_format_duration():
    assert [format_duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]


def test_progress_prints_plain_lines_when_not_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(runlog, "PLAIN_PROGRESS_SECONDS", 0.0)
    progress = runlog.Progress(total=100, initial=10, interactive=False)
    progress.update(40, "epoch 0.40/1, loss 1.234", seconds_per_step=2.0)
    progress.message("  2016/test: cross entropy 1.0")
    progress.close()
    assert capsys.readouterr().out.splitlines() == ["step 40/100 epoch 0.40/1, loss 1.234, 2m00s left",
                                                    "  2016/test: cross entropy 1.0"]


def test_progress_bar_on_a_terminal(capsys):
    progress = runlog.Progress(total=100, initial=10, interactive=True)
    progress.update(40, "epoch 0.40/1, loss 1.234", seconds_per_step=2.0)
    progress.message("  2016/test: cross entropy 1.0")
    progress.close()
    captured = capsys.readouterr()
    assert "40/100" in captured.err and "epoch 0.40/1, loss 1.234" in captured.err
    assert "2016/test: cross entropy 1.0" in captured.err + captured.out


def test_a_training_log_that_is_not_utf8_is_a_one_line_error(tmp_path):
    (tmp_path / "training_log.csv").write_bytes(b"time,elapsed_s\n\x80\x81\n")
    with pytest.raises(UserError, match=r"training_log.csv: not UTF-8 text \(byte 0x80 at offset 15\)$"):
        runlog.TrainingLog(tmp_path)
