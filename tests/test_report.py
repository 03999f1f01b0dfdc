"""caffelite report: one self-contained HTML (or Markdown) page, checked by parsing it: the
numbers against the metrics file, the pictures decoded from their data URIs, nothing
fetched from elsewhere."""
import base64
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from caffelite.cli import main
from caffelite.tools.metrics import read_metrics
from tests.test_cli_train import train, workdir  # noqa: F401  (the fixture and the runner)
from tests.test_metrics_plot import CAFFE_LOG

pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) not installed")


class Page(HTMLParser):
    """Headings, tables (rows of cell texts), img sources, inline svg text, every URL."""

    def __init__(self, text):
        super().__init__()
        self.headings, self.tables, self.images, self.urls = [], [], [], []
        self.svg, self._svg_depth, self._cell, self._heading = [], 0, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "svg" or self._svg_depth:
            self._svg_depth += tag == "svg"
            return
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag in ("h1", "h2"):
            self._heading = ""

    def handle_endtag(self, tag):
        if self._svg_depth:
            self._svg_depth -= tag == "svg"
            return
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag in ("h1", "h2"):
            self.headings.append(self._heading)
            self._heading = None

    def handle_data(self, data):
        if self._svg_depth:
            self.svg.append(data)
        elif self._cell is not None:
            self._cell += data
        elif self._heading is not None:
            self._heading += data


def report(*args):
    result = CliRunner().invoke(main, ["report", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.timeout(120)
def test_html_report_of_a_training_run(workdir):  # noqa: F811
    assert train("conf/solver.prototxt", "--quiet").exit_code == 0
    report("conf/solver.prototxt", "-o", "report.html")
    text = (workdir / "report.html").read_text()
    page = Page(text)
    assert page.headings == ["solver: training report", "Summary", "Test metrics", "Curves",
                             "Solver settings", "Net"]
    summary = dict(page.tables[0])
    records = read_metrics(workdir / "snap" / "tiny.metrics.jsonl")
    train_rows = [r for r in records if r["phase"] == "train"]
    rate = (train_rows[-1]["iter"] - train_rows[0]["iter"]) / (
        train_rows[-1]["seconds"] - train_rows[0]["seconds"])
    assert float(summary["iterations/s"]) == pytest.approx(rate, rel=1e-2)
    assert summary["iterations"] == "0 to 15" and summary["solver"] == "SGD"
    wall = max(r["seconds"] for r in records)
    assert re.search(rf"\({wall:.1f} s\)", summary["wall time"])
    tests = [r for r in records if r["phase"] == "test"]
    metrics = {row[1]: row for row in page.tables[1][1:]}
    accuracy = metrics["accuracy"]
    assert float(accuracy[2]) == pytest.approx(tests[-1]["accuracy"], abs=1e-4)
    best = max(tests, key=lambda r: r["accuracy"])
    assert float(accuracy[4]) == pytest.approx(best["accuracy"], abs=1e-4)
    assert int(accuracy[5]) == best["iter"]
    lowest = min(tests, key=lambda r: r["loss"])
    assert float(metrics["loss"][4]) == pytest.approx(lowest["loss"], rel=1e-3)
    settings = dict(page.tables[2])
    assert settings["base_lr"] == "0.01" and settings["max_iter"] == "20"
    assert settings["lr_policy"] == "inv"
    # One file: the curves as a PNG data URI, the net as inline SVG, no other URL
    assert len(page.images) == 1 and page.images[0].startswith("data:image/png;base64,")
    assert base64.b64decode(page.images[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(url.startswith("data:") or url.startswith("#") for url in page.urls)
    svg = re.search(r"<svg\b.*?</svg>", text, re.S).group(0)
    assert ET.fromstring(svg).tag.endswith("svg")
    assert "ip" in " ".join(page.svg)


def test_markdown_report_from_a_caffe_log(tmp_path):
    solver_dump = ('I1126 09:59:59.000000  1234 solver.cpp:48] Initializing solver from '
                   'parameters: \ntest_iter: 100\nbase_lr: 0.01\nmax_iter: 10000\n'
                   'lr_policy: "inv"\nnet: "examples/mnist/lenet_train_test.prototxt"\n'
                   'I1126 09:59:59.500000  1234 net.cpp:51] Initializing net from parameters: \n'
                   'name: "LeNet"\nlayer {\n  name: "ip"\n  type: "InnerProduct"\n'
                   '  bottom: "data"\n  top: "ip"\n}\n')
    log = tmp_path / "caffe.log"
    log.write_text(solver_dump + CAFFE_LOG)
    out = tmp_path / "report.md"
    report(log, "-o", out)
    text = out.read_text()
    assert text.startswith("# caffe: training report\n")
    assert "| base_lr | 0.01 |" in text and '| lr_policy | inv |' in text
    assert "| #0 | accuracy | 0.9785 | 200 | 0.9785 | 200 |" in text
    assert "| #1 | accuracy | 0.5 | 200 | 0.5 | 200 |" in text
    pictures = re.findall(r"!\[[^\]]*\]\(data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]+)\)", text)
    assert [mime for mime, _ in pictures] == ["image/png", "image/svg+xml"]
    svg = ET.fromstring(base64.b64decode(pictures[1][1]))
    assert "ip" in " ".join(svg.itertext())


def test_report_errors_are_one_line(tmp_path, workdir):  # noqa: F811
    result = CliRunner().invoke(main, ["report", "conf/solver.prototxt", "-o", "r.html"])
    assert result.exit_code == 2 and "no metrics file snap/tiny.metrics.jsonl" in result.output
    (tmp_path / "m.metrics.jsonl").write_text('{"phase": "train", "iter": 0, "loss": 1}\n')
    result = CliRunner().invoke(main, ["report", str(tmp_path / "m.metrics.jsonl"), "-o",
                                       "r.pdf"])
    assert result.exit_code == 2 and "use .html or .md" in result.output
    assert result.output.strip().count("\n") == 0
