"""Metrics files, Caffe-format log parsing and the plot command."""
# ruff: noqa: E501  (the log lines are verbatim Caffe output)
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from caffelite.cli import main
from caffelite.tools.metrics import MetricsWriter, parse_caffe_log, read_metrics, read_run

# Lines as Caffe 1.0 prints them (glog prefix, solver.cpp / sgd_solver.cpp sources).
CAFFE_LOG = """\
I1126 10:00:00.000000  1234 solver.cpp:48] Initializing solver from parameters:
I1126 10:00:01.000000  1234 solver.cpp:341] Iteration 0, Testing net (#0)
I1126 10:00:02.000000  1234 solver.cpp:409]     Test net output #0: accuracy = 0.1
I1126 10:00:02.000000  1234 solver.cpp:409]     Test net output #1: loss = 2.3 (* 1 = 2.3 loss)
I1126 10:00:02.500000  1234 solver.cpp:228] Iteration 0, loss = 2.31
I1126 10:00:02.500000  1234 solver.cpp:244]     Train net output #0: loss = 2.31 (* 1 = 2.31 loss)
I1126 10:00:02.500000  1234 sgd_solver.cpp:106] Iteration 0, lr = 0.01
I1126 10:00:05.000000  1234 solver.cpp:228] Iteration 100, loss = 0.26044
I1126 10:00:05.000000  1234 solver.cpp:244]     Train net output #0: loss = 0.2 (* 1 = 0.2 loss)
I1126 10:00:05.000000  1234 sgd_solver.cpp:106] Iteration 100, lr = 0.00992565
I1126 10:00:09.000000  1234 solver.cpp:341] Iteration 200, Testing net (#0)
I1126 10:00:10.000000  1234 solver.cpp:409]     Test net output #0: accuracy = 0.9785
I1126 10:00:10.000000  1234 solver.cpp:409]     Test net output #1: loss = 0.0606671 (* 1 = 0.0606671 loss)
I1126 10:00:11.000000  1234 solver.cpp:341] Iteration 200, Testing net (#1)
I1126 10:00:11.500000  1234 solver.cpp:409]     Test net output #0: accuracy = 0.5
"""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def caffe_log(tmp_path):
    path = tmp_path / "caffe.log"
    path.write_text(CAFFE_LOG)
    return path


def test_parse_caffe_log(caffe_log):
    records = parse_caffe_log(caffe_log)
    train = [r for r in records if r["phase"] == "train"]
    test = [r for r in records if r["phase"] == "test"]
    assert [(r["iter"], r["loss"], r["lr"]) for r in train] == [(0, 2.31, 0.01),
                                                                (100, 0.2, 0.00992565)]
    assert train[1]["seconds"] == 5.0
    assert [(r["iter"], r["net"], r["accuracy"]) for r in test] == [(0, 0, 0.1), (200, 0, 0.9785),
                                                                    (200, 1, 0.5)]
    assert test[1]["loss"] == pytest.approx(0.0606671)
    assert test[1]["seconds"] == 10.0


def test_metrics_writer_appends(tmp_path):
    path = tmp_path / "run.metrics.jsonl"
    MetricsWriter(path).write("train", 0, {"loss": 2.0}, lr=0.1)
    resumed = MetricsWriter(path, start_seconds=MetricsWriter.last_seconds(path))
    resumed.write("test", 10, {"accuracy": 0.5}, net=0)
    records = read_metrics(path)
    assert [(r["phase"], r["iter"]) for r in records] == [("train", 0), ("test", 10)]
    assert records[0]["lr"] == 0.1 and records[1]["accuracy"] == 0.5
    assert records[1]["seconds"] >= records[0]["seconds"]
    assert read_run(tmp_path) == records  # a directory holding the metrics file


def test_read_run_rejects_other_files(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    with pytest.raises(ValueError, match="neither a caffelite metrics file"):
        read_run(bad)
    broken = tmp_path / "x.metrics.jsonl"
    broken.write_text('{"phase": "train"}\n{oops\n')
    with pytest.raises(ValueError, match="x.metrics.jsonl:2"):
        read_run(broken)


def test_plot_command_png_from_caffe_log(caffe_log, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) not installed")
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(main, ["plot", str(caffe_log), "-o", str(out), "--x", "seconds"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_command_metrics_subprocess(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) not installed")
    metrics = tmp_path / "run.metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in [
        {"phase": "train", "iter": 0, "seconds": 0.1, "lr": 0.01, "loss": 2.3},
        {"phase": "train", "iter": 100, "seconds": 1.1, "lr": 0.009, "loss": 0.3},
        {"phase": "test", "net": 0, "iter": 100, "seconds": 1.5, "accuracy": 0.9, "loss": 0.3},
    ]) + "\n")
    out = tmp_path / "curves.png"
    proc = subprocess.run([sys.executable, "-m", "caffelite", "plot", str(metrics), "-o",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_missing_file_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "nope.log")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "nope.log" in result.output
