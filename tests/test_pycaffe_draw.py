"""caffelite.draw with pycaffe's signatures: phase is the fourth argument (not display_lrm),
filtering reads include/exclude phase rules, draw_net returns the bytes of the format asked."""
import os

import pytest
from google.protobuf import text_format

import caffelite as caffe
from caffelite import draw
from caffelite.proto import caffe_pb2

LENET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "configs", "lenet", "lenet_train_test.prototxt")


def test_phase_is_the_fourth_argument():
    param = caffe.read_net_param(LENET)
    test_dot = draw.draw_net(param, "LR", "dot", caffe.TEST).decode()
    train_dot = draw.draw_net(param, "LR", "dot", caffe.TRAIN).decode()
    both = draw.draw_net(param, "LR", "dot").decode()
    assert "(Accuracy)" in test_dot and "(Accuracy)" in both  # accuracy: include TEST
    assert "(Accuracy)" not in train_dot
    assert "lr x" not in test_dot
    assert "lr x" in draw.draw_net(param, "TB", "dot", None, True).decode()


def test_draw_net_formats_and_to_file(tmp_path):
    param = caffe.read_net_param(LENET)
    assert draw.draw_net(param, "LR", "png", caffe.TEST).startswith(b"\x89PNG")
    assert b"<svg" in draw.draw_net(param, "TB", "svg")
    out = tmp_path / "lenet.svg"
    draw.draw_net_to_file(param, str(out), "LR", caffe.TRAIN)
    assert out.read_bytes() and b"<svg" in out.read_bytes()


def test_include_and_exclude_together_is_a_value_error():
    param = text_format.Parse("""
        layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 1 } }
                include { phase: TRAIN } exclude { phase: TEST } }""", caffe_pb2.NetParameter())
    with pytest.raises(ValueError, match="both include and exclude"):
        draw.draw_net(param, "LR", "dot", caffe.TRAIN)
    assert draw.draw_net(param, "LR", "dot")  # without a phase nothing is filtered


def test_get_pydot_graph():
    pytest.importorskip("pydot")
    graph = draw.get_pydot_graph(caffe.read_net_param(LENET), "LR", phase=caffe.TEST)
    assert graph.get_nodes()
