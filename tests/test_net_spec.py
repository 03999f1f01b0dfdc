"""NetSpec (pycaffe's net_spec): Python calls -> the NetParameter a hand-written prototxt gives."""
import pytest
from google.protobuf import text_format

import caffelite.layers as L
from caffelite import NetSpec
from caffelite import params as P
from caffelite.proto import caffelite_pb2 as pb

EXPECTED = """
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 1 dim: 8 dim: 8 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_weight: 2 loss_param { normalization: BATCH_SIZE } }
"""


def build():
    n = NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[2, 1, 8, 8]), dict(dim=[2])], ntop=2)
    n.conv1 = L.Convolution(n.data, num_output=4, kernel_size=3,
                            weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.relu1 = L.ReLU(n.pool1, in_place=True)
    n.ip = L.InnerProduct(n.pool1, num_output=3)
    n.loss = L.SoftmaxWithLoss(n.ip, n.label, loss_weight=2,
                               normalization=P.Loss.BATCH_SIZE)
    return n


def test_net_spec_matches_prototxt():
    assert build().to_proto() == text_format.Parse(EXPECTED, pb.NetParameter())


def test_net_spec_autonames_and_errors():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3]))
    top = L.InnerProduct(n.data, num_output=2)
    n.out = L.Softmax(top)
    proto = n.to_proto()
    assert [layer.name for layer in proto.layer] == ["data", "InnerProduct1", "out"]
    assert proto.layer[2].bottom == ["InnerProduct1"]
    n.bad = L.InnerProduct(n.data, num_ouput=2)
    with pytest.raises(ValueError, match="did you mean 'num_output'"):
        n.to_proto()


def test_net_spec_builds_a_net():
    import caffelite

    net = caffelite.Net(build().to_proto(), caffelite.TRAIN)
    assert net.blobs["ip"].shape == (2, 3)
    assert "loss" in net.outputs


def test_net_spec_deep_chain_builds():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    top = n.data
    for _ in range(3000):  # deeper than Python's recursion limit
        top = L.ReLU(top)
    n.out = top
    proto = n.to_proto()
    assert len(proto.layer) == 3001
    assert proto.layer[1].bottom == ["data"] and proto.layer[-1].top == ["out"]
