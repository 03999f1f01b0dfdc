"""`caffelite train` feedback: the live progress line and the metrics file beside snapshots."""
import pytest

from caffelite.tools.metrics import read_metrics
from tests.test_cli_train import train, workdir  # noqa: F401  (the fixture and the runner)


def test_metrics_file_records_displays_and_tests_and_resume_appends(workdir):  # noqa: F811
    assert train("conf/solver.prototxt", "--quiet").exit_code == 0
    path = workdir / "snap" / "tiny.metrics.jsonl"
    records = read_metrics(path)
    train_rows = [r for r in records if r["phase"] == "train"]
    test_rows = [r for r in records if r["phase"] == "test"]
    assert [r["iter"] for r in train_rows] == [0, 5, 10, 15]
    assert [r["iter"] for r in test_rows] == [0, 10, 20]
    assert train_rows[2]["lr"] == pytest.approx(0.01 * (1 + 0.0001 * 10) ** -0.75, rel=1e-6)
    assert all(r["loss"] > 0 for r in train_rows)
    assert 0 <= test_rows[-1]["accuracy"] <= 1 and test_rows[-1]["net"] == 0
    seconds = [r["seconds"] for r in records]
    assert seconds == sorted(seconds)

    assert train("conf/solver.prototxt", "--quiet",
                 "--snapshot", "snap/tiny_iter_10.solverstate").exit_code == 0
    resumed = read_metrics(path)[len(records):]
    assert [r["iter"] for r in resumed if r["phase"] == "train"] == [10, 15]
    assert resumed[0]["seconds"] >= seconds[-1]  # the clock continues


def test_progress_line_replaces_log_lines(workdir):  # noqa: F811
    result = train("conf/solver.prototxt", "--progress")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "[20/20] 100%" in out and "it/s" in out and "ETA" in out
    assert "test accuracy" in out and "Iteration 20, test net #0: accuracy" in out
    assert "Snapshot: snap/tiny_iter_20.caffemodel" in out
    assert "Train net output" not in out  # the Caffe lines stay out of the terminal...


def test_progress_with_log_file_keeps_caffe_lines(workdir):  # noqa: F811
    result = train("conf/solver.prototxt", "--progress", "--log", "train.log")
    assert result.exit_code == 0, result.output
    assert "Train net output" in (workdir / "train.log").read_text()  # ...but reach --log
