"""The cases of pycaffe's own unit tests (python/caffe/test: net_spec, io, solver), restated with
`import caffelite as caffe`: what they build and what they expect of it."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffelite as caffe
from caffelite import layers as L
from caffelite import params as P
from caffelite.proto import caffe_pb2


def lenet(batch_size, named=True):
    """LeNet on DummyData, with NetSpec names or entirely auto-named."""
    n = caffe.NetSpec()
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                     dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type='xavier'))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type='xavier'))
    loss = L.SoftmaxWithLoss(ip2, label)
    if not named:
        return loss.to_proto()
    n.data, n.label, n.conv1, n.pool1, n.conv2, n.pool2 = data, label, conv1, pool1, conv2, pool2
    n.ip1, n.relu1, n.ip2, n.loss = ip1, relu1, ip2, loss
    return n.to_proto()


def load_net(tmp_path, net_proto):
    path = tmp_path / "net.prototxt"
    path.write_text(str(net_proto))
    return caffe.Net(str(path), caffe.TEST)


@pytest.mark.parametrize("named", [True, False])
def test_lenet_named_and_anonymous(tmp_path, named):
    net_proto = lenet(5, named)
    assert net_proto.layer[6].bottom == net_proto.layer[6].top  # relu in place
    net = load_net(tmp_path, net_proto)
    assert len(net.layers) == 9
    assert net.forward()["SoftmaxWithLoss1" if not named else "loss"].shape == ()


def test_zero_tops(tmp_path):
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    net = load_net(tmp_path, n.to_proto())
    assert len(net.forward()) == 0
    assert [layer.name for layer in n.to_proto().layer][1:] == ["silence_data", "silence_data2"]


def test_type_error():
    data = L.DummyData(ntop=2)  # a 2-tuple of Tops
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is "
                                        r"<class 'tuple'>\)$"):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)
    with pytest.raises(TypeError, match="ReLU input 0 is not a Top"):
        L.ReLU("data")


def test_blobproto_to_array_shapes():
    data = np.zeros((10, 10))
    old = caffe_pb2.BlobProto()
    old.data.extend(list(data.flatten()))
    old.num, old.channels, old.height, old.width = (1, 1, 10, 10)
    assert caffe.io.blobproto_to_array(old).shape == (1, 1, 10, 10)
    new = caffe_pb2.BlobProto()
    new.data.extend(list(data.flatten()))
    new.shape.dim.extend(list(data.shape))
    assert caffe.io.blobproto_to_array(new).shape == data.shape
    no_shape = caffe_pb2.BlobProto()
    no_shape.data.extend(list(data.flatten()))
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(no_shape)
    scalar = caffe_pb2.BlobProto()
    scalar.data.extend([123.0])
    assert caffe.io.blobproto_to_array(scalar) == 123


def test_array_to_datum_label():
    assert not caffe.io.array_to_datum(np.ones((10, 10, 3)), label=None).HasField("label")
    assert caffe.io.array_to_datum(np.ones((10, 10, 3)), label=0).HasField("label")


SOLVER_NET = """
name: "testnet" force_backward: true
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { num: 5 channels: 2 height: 3 width: 4 num: 5 channels: 1 height: 1
                           width: 1 data_filler { type: "gaussian" std: 1 }
                           data_filler { type: "constant" } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 11 kernel_size: 2 pad: 3
                            weight_filler { type: "gaussian" std: 1 }
                            bias_filler { type: "constant" value: 2 } }
        param { decay_mult: 1 } param { decay_mult: 0 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 7 weight_filler { type: "gaussian" std: 2.5 }
                              bias_filler { type: "constant" value: -3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.fixture
def solver(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(SOLVER_NET)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\ntest_iter: 10 test_interval: 10 base_lr: 0.01 momentum: 0.9\n'
        'weight_decay: 0.0005 lr_policy: "inv" gamma: 0.0001 power: 0.75 display: 100\n'
        'max_iter: 100 snapshot_after_train: false snapshot_prefix: "model"\n')
    solver = caffe.SGDSolver("solver.prototxt")
    caffe.get_solver("solver.prototxt")  # also builds
    caffe.set_mode_cpu()
    for net in [solver.net] + list(solver.test_nets):
        net.blobs["label"].data[...] = np.random.default_rng(0).integers(
            7, size=net.blobs["label"].data.shape)
    return solver


def test_solve_apply_update_and_snapshot(solver, tmp_path):
    assert solver.iter == 0
    net = solver.net
    data = net.layers[1].blobs[0].data[...]
    data[...] = 0
    net.layers[1].blobs[0].diff[...] = 1
    solver.apply_update()  # the first rate is base_lr: weights become -0.01
    assert np.abs(data + 0.01).max() < 1e-7
    solver.solve()
    assert solver.iter == 100
    solver.snapshot()
    for name in ("model_iter_100.caffemodel", "model_iter_100.solverstate"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "model_iter_100.solverstate.caffelite.json").is_file()


def test_net_params_and_blobs_outlive_the_net(solver):
    params = sum(map(list, solver.net.params.values()), [])
    blobs = list(solver.net.blobs.values())
    del solver
    total = sum(p.data.sum() + p.diff.sum() for p in params)
    total += sum(b.data.sum() + b.diff.sum() for b in blobs)
    assert np.isfinite(total)


def test_save_and_load_hdf5(tmp_path):
    pytest.importorskip("h5py")
    param = text_format.Parse(SOLVER_NET, caffe_pb2.NetParameter())
    net = caffe.Net(param, caffe.TRAIN)
    net.save_hdf5(str(tmp_path / "w.h5"))
    other = caffe.Net(param, caffe.TRAIN)
    other.load_hdf5(str(tmp_path / "w.h5"))
    for name in net.params:
        for a, b in zip(net.params[name], other.params[name]):
            np.testing.assert_array_equal(a.data, b.data)


def test_share_weights(solver):
    param = text_format.Parse(SOLVER_NET, caffe_pb2.NetParameter())
    net = caffe.Net(param, caffe.TEST)
    solver.share_weights(net)
    solver.step(1)
    for name in ("conv", "ip"):
        for a, b in zip(net.params[name], solver.net.params[name]):
            np.testing.assert_array_equal(a.data, b.data)
