"""caffelite plot with several runs: colours and legend by run, log-scale loss, smoothing,
iteration ranges, test metrics by name, the three formats, a run still being written."""
import json
import math

import pytest
from click.testing import CliRunner

from caffelite.cli import main
from caffelite.tools.metrics import read_run
from caffelite.tools.plot import ema, figure, unique_names

pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) not installed")


def records(scale, lr, iters=range(0, 1000, 50)):
    out = []
    for i in iters:
        out.append({"phase": "train", "iter": i, "seconds": i / 100, "lr": lr,
                    "loss": scale * 2.3 * math.exp(-i / 200) + 1e-3 * (i % 3),
                    "smoothed_loss": 1.0})
        if i % 200 == 0:
            out.append({"phase": "test", "net": 0, "iter": i, "seconds": i / 100,
                        "accuracy": 1 - scale * math.exp(-i / 300), "loss": scale * 0.5})
    return out


def write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture
def two_runs(tmp_path):
    return (write(tmp_path / "sgd.metrics.jsonl", records(1.0, 0.01)),
            write(tmp_path / "adam.metrics.jsonl", records(0.5, 0.001)))


def test_ema_matches_its_closed_form():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    k = 4
    alpha = 2 / (k + 1)
    for n in range(len(values)):
        closed = (1 - alpha) ** n * values[0] + sum(
            alpha * (1 - alpha) ** (n - i) * values[i] for i in range(1, n + 1))
        assert ema(values, k)[n] == pytest.approx(closed)
    assert ema(values, 1) == values and ema([], 5) == []


def test_runs_share_axes_one_colour_each_log_loss(two_runs):
    runs = [("sgd", read_run(two_runs[0])),
            ("adam", read_run(two_runs[1]))]
    fig = figure(runs)
    loss, accuracy, lr = fig.axes
    assert loss.get_yscale() == "log" and accuracy.get_ylabel() == "test accuracy"
    labels = [t.get_text() for t in loss.get_legend().get_texts()]
    assert labels == ["sgd", "sgd: test loss", "adam", "adam: test loss"]
    colours = {line.get_label(): line.get_color() for line in loss.lines}
    assert colours["sgd"] == colours["sgd: test loss"] != colours["adam"]
    assert [t.get_text() for t in accuracy.get_legend().get_texts()] == ["sgd", "adam"]
    assert list(lr.lines[1].get_ydata()) == [0.001] * 20
    assert not figure(runs, log_loss=False).axes[0].get_yscale() == "log"


def test_smoothing_keeps_the_raw_curve_faint_behind(two_runs):
    recs = read_run(two_runs[0])
    loss = figure([("sgd", recs)], smooth=5).axes[0]
    raw, smooth = loss.lines[0], loss.lines[1]
    assert raw.get_alpha() < 0.5 and smooth.get_alpha() in (None, 1)
    train = [r["loss"] for r in recs if r["phase"] == "train"]
    assert list(raw.get_ydata()) == train
    assert list(smooth.get_ydata()) == pytest.approx(ema(train, 5))


def test_iteration_range_and_metric_by_name(two_runs):
    recs = read_run(two_runs[0])
    loss, acc, _ = figure([("sgd", recs)], start=200, stop=600, metrics=["accuracy"]).axes
    assert min(loss.lines[0].get_xdata()) == 200 and max(loss.lines[0].get_xdata()) == 600
    assert list(acc.lines[0].get_xdata()) == [200, 400, 600]


def test_cli_formats_by_extension(two_runs, tmp_path):
    magic = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}
    for ext, start in magic.items():
        out = tmp_path / f"c.{ext}"
        result = CliRunner().invoke(main, ["plot", *map(str, two_runs), "-o", str(out),
                                           "--smooth", "3", "--from", "100", "--metric",
                                           "accuracy"])
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(start)
        assert "2 runs" in result.output
    svg = (tmp_path / "c.svg").read_text()
    assert "sgd" in svg and "adam" in svg  # the legend's text (as glyph ids or text)


def test_cli_errors_are_one_line(two_runs, tmp_path):
    cases = [(["-o", str(tmp_path / "c.gif")], "unknown image format '.gif'"),
             (["--metric", "top5"], "no test output named 'top5'")]
    for extra, message in cases:
        result = CliRunner().invoke(main, ["plot", str(two_runs[0]), *extra])
        assert result.exit_code == 2
        assert result.output.strip().count("\n") == 0 and message in result.output


def test_a_run_still_being_written(tmp_path):
    """Plotting reads what is there; later calls see the lines added since."""
    path = tmp_path / "live.metrics.jsonl"
    recs = records(1.0, 0.01)
    write(path, recs[:5])
    out = tmp_path / "live.png"
    first = CliRunner().invoke(main, ["plot", str(path), "-o", str(out)])
    assert first.exit_code == 0 and "live 5" in first.output
    with open(path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in recs[5:9]))
    second = CliRunner().invoke(main, ["plot", str(path), "-o", str(out)])
    assert second.exit_code == 0 and "live 9" in second.output


def test_unique_run_names(tmp_path):
    a, b = tmp_path / "a" / "lenet.metrics.jsonl", tmp_path / "b" / "lenet.metrics.jsonl"
    assert unique_names([a, b]) == ["a/lenet", "b/lenet"]
    assert unique_names([tmp_path / "caffe.log", a]) == ["caffe", "lenet"]
