"""caffelite draw: DOT structure, SVG/PNG formats, phase filtering, one real subprocess."""
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from conftest import ROOT
from google.protobuf import text_format

from caffelite.cli import main
from caffelite.formats.config import write_net_param
from caffelite.proto import caffelite_pb2 as pb

LENET = ROOT / "configs" / "lenet" / "lenet_train_test.prototxt"
SMALL = """
name: "small"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
        inner_product_param { num_output: 3 } }
"""


def draw(*args):
    result = CliRunner().invoke(main, ["draw", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def dot_graph(text):
    """(nodes {id: attrs}, edges [(a, b)]) parsed from the DOT text."""
    nodes = {m[0]: m[1] for m in re.findall(r'^\s*"([^"]+)" \[(.*)\];$', text, re.M)}
    edges = re.findall(r'^\s*"([^"]+)" -> "([^"]+)";$', text, re.M)
    return nodes, edges


def labels(nodes):
    return {nid: re.search(r'label="((?:[^"\\]|\\.)*)"', attrs).group(1)
            for nid, attrs in nodes.items()}


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.prototxt"
    path.write_text(SMALL)
    return path


def test_dot_layers_blobs_and_folded_in_place_relu(small, tmp_path):
    out = tmp_path / "small.dot"
    assert "wrote" in draw(small, "-o", out)
    text = out.read_text()
    assert text.startswith('digraph "small" {') and "rankdir=LR;" in text
    nodes, edges = dot_graph(text)
    names = labels(nodes)
    blobs = {names[n] for n, attrs in nodes.items() if "shape=octagon" in attrs}
    assert blobs == {"data", "conv1", "ip1"}  # the in-place ReLU makes no blob of its own
    boxes = [names[n] for n, attrs in nodes.items() if "shape=octagon" not in attrs]
    assert len(boxes) == 3  # data, conv1 (+ relu1), ip1
    conv = [b for b in boxes if b.startswith(r"conv1\n(Convolution)")]
    assert conv == [r"conv1\n(Convolution)\n+ relu1 (ReLU)"]
    by_label = {names[n]: n for n in nodes}
    assert (by_label["conv1"], by_label[conv[0]]) not in edges  # no ReLU loop on conv1
    assert len(edges) == 5  # data->data, data->conv1, conv1->conv1, conv1->ip1, ip1->ip1
    # Layers are coloured by type: convolution and inner product differ from Input
    colours = {names[n]: re.search(r'fillcolor="([^"]+)"', a).group(1) for n, a in nodes.items()}
    assert len({colours[conv[0]], colours[r"ip1\n(InnerProduct)"], colours[r"data\n(Input)"]}) == 3


def test_rankdir_and_display_lrm(small, tmp_path):
    out = tmp_path / "tb.dot"
    draw(small, "-o", out, "--rankdir", "TB", "--display-lrm")
    text = out.read_text()
    assert "rankdir=TB;" in text
    assert r"lr x1 decay x1 lr x2 decay x0" in text
    draw(small, "-o", out)
    assert "lr x" not in out.read_text()


def test_phase_filtering_of_lenet(tmp_path):
    out = tmp_path / "lenet.dot"

    def layer_names(*phase):
        draw(LENET, "-o", out, *phase)
        names = labels(dot_graph(out.read_text())[0]).values()
        return sorted(n.split("\\n")[0] for n in names if "\\n(" in n)

    test = layer_names("--phase", "TEST")
    train = layer_names("--phase", "train")
    everything = layer_names()
    assert "accuracy" in test and "accuracy" not in train
    assert test.count("mnist") == 1 and train.count("mnist") == 1
    assert everything.count("mnist") == 2 and "accuracy" in everything
    assert set(train) | set(test) == set(everything)


def test_svg_output_is_an_svg_document(small, tmp_path):
    out = tmp_path / "small.svg"
    draw(small, "-o", out)
    text = out.read_text()
    assert re.match(r"\s*(<\?xml[^>]*>\s*)?(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*<svg\b", text,
                    re.S), text[:200]
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    words = " ".join(t for t in root.itertext())
    assert "conv1" in words and "ip1" in words and "relu1" in words


def test_png_output_has_the_png_signature(small, tmp_path):
    if not shutil.which("dot"):
        pytest.importorskip("matplotlib", reason="PNG needs Graphviz's dot or matplotlib")
    out = tmp_path / "small.png"
    draw(small, "-o", out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_yaml_net(tmp_path):
    net = text_format.Parse(SMALL, pb.NetParameter())
    write_net_param(net, tmp_path / "small.yaml")
    draw(tmp_path / "small.yaml", "-o", tmp_path / "y.dot")
    (tmp_path / "small.prototxt").write_text(SMALL)
    draw(tmp_path / "small.prototxt", "-o", tmp_path / "p.dot")
    assert (tmp_path / "y.dot").read_text() == (tmp_path / "p.dot").read_text()
    assert "conv1" in (tmp_path / "y.dot").read_text()


def test_errors_are_one_line(small, tmp_path):
    result = CliRunner().invoke(main, ["draw", str(small), "-o", str(tmp_path / "x.gif")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"caffelite: error: {tmp_path / 'x.gif'}: unknown drawing format '.gif'; use .dot, "
        ".svg or .png"]
    result = CliRunner().invoke(main, ["draw", str(tmp_path / "none.prototxt"), "-o", "x.dot"])
    assert result.exit_code == 2 and "no such file" in result.output


def test_real_subprocess(tmp_path):
    out = tmp_path / "lenet.svg"
    proc = subprocess.run([sys.executable, "-m", "caffelite", "draw", str(LENET), "-o", str(out),
                           "--phase", "TEST", "--rankdir", "TB"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out} (10 layers" in proc.stdout
    root = ET.fromstring(out.read_text())
    assert root.tag.endswith("svg") and "accuracy" in " ".join(root.itertext())
