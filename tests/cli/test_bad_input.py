"""Bad input at the command line: one clear line naming the file/layer, exit status 2, and no
traceback — for each mistake the foundation issue lists: weights through `caffelite test`,
nets through `caffelite time`, which builds the net as training does."""
import shutil

import pytest
from click.testing import CliRunner

from caffelite.cli import main
from tests.conftest import LENET_BVLC, need_shared

NET = """\
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 } }
"""


def run_cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # Caffe-style progress lines may come first; the error itself is one line.
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("caffelite: error:"), result.output
    return errors[0]


def score(model, weights):
    return run_cli("test", "--model", model, "--weights", weights, "--iterations", 1)


def build(model):
    return run_cli("time", "--model", model, "--iterations", 1)


@pytest.fixture
def lenet(tmp_path):
    src = need_shared(LENET_BVLC)
    shutil.copy(src / "lenet.prototxt", tmp_path)
    shutil.copy(src / "lenet_iter_5000.caffemodel", tmp_path)
    return tmp_path / "lenet.prototxt", tmp_path / "lenet_iter_5000.caffemodel"


def test_truncated_caffemodel(lenet):
    model, weights = lenet
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    line = score(model, weights)
    assert "lenet_iter_5000.caffemodel" in line


def test_caffemodel_shapes_not_fitting(lenet):
    model, weights = lenet
    model.write_text(model.read_text().replace("num_output: 500", "num_output: 400"))
    line = score(model, weights)
    assert "ip1" in line and "500" in line and "400" in line


def test_unknown_layer_type(tmp_path):
    model = tmp_path / "net.prototxt"
    model.write_text(NET.replace('type: "InnerProduct"', 'type: "InnerProdcut"'))
    line = build(model)
    assert "'ip'" in line and "did you mean 'InnerProduct'" in line


def test_misspelt_field(tmp_path):
    model = tmp_path / "net.prototxt"
    model.write_text(NET.replace("num_output", "num_ouput"))
    line = build(model)
    assert "net.prototxt:4" in line and "'ip'" in line and "did you mean 'num_output'" in line


def test_bottom_nobody_produces(tmp_path):
    model = tmp_path / "net.prototxt"
    model.write_text(NET.replace('bottom: "data"', 'bottom: "dta"'))
    line = build(model)
    assert "'ip'" in line and "'dta'" in line


def test_yaml_syntax_error(tmp_path):
    model = tmp_path / "net.yaml"
    model.write_text("name: tiny\nlayer:\n  - name: data\n    type: [Input\n")
    line = build(model)
    assert "net.yaml:" in line
