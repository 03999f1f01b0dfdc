"""pycaffe's Net and module names (`_layer_names`, `_inputs`, forward_backward_all, set_device,
Timer ...), the net-surgery notebook's flow, and snapshot() leaving only its own files."""
import logging
import os

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite as caffe
from caffelite.proto import caffe_pb2
from caffelite.pycaffe import state

NET = """
name: "names"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_weight: 2 }
"""


def names_net():
    return caffe.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffe.TRAIN)


def test_private_names_as_pycaffe():
    net = names_net()
    assert net._layer_names == ["data", "ip", "loss"]
    assert net._blob_names == ["data", "label", "ip", "loss"]
    assert net._blob_loss_weights == [0, 0, 0, 2]
    assert net._inputs == [0, 1] and net._outputs == [3]  # Input layers' tops are inputs
    assert [net._blob_names[i] for i in net._top_ids(2)] == ["loss"]
    assert [net._blob_names[i] for i in net._bottom_ids(2)] == ["ip", "label"]
    assert net._blobs[2] is net.blobs["ip"]
    assert net.layer_dict["ip"] is net.layers[1]
    assert net.top_names["data"] == ["data", "label"]
    assert net.bottom_names["loss"] == ["ip", "label"]


def test_net_level_inputs_indices_and_forward_backward_all(rng):
    param = text_format.Parse("""
        input: "x" input_shape { dim: 2 dim: 3 } force_backward: true
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
                inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }""",
                              caffe_pb2.NetParameter())
    net = caffe.Net(param, caffe.TEST)
    assert net._inputs == [net._blob_names.index("x")] and net.inputs == ["x"]
    w = net.params["ip"][0].data.copy()
    x = rng.standard_normal((5, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 2)).astype(np.float32)
    outs, diffs = net.forward_backward_all(x=x, y=dy)
    np.testing.assert_allclose(outs["y"], x @ w.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diffs["x"], dy @ w, rtol=1e-5, atol=1e-6)
    assert outs["y"].shape == (5, 2) and diffs["x"].shape == (5, 3)


def test_module_level_names(caplog):
    state.reset_gpu_warning()
    with pytest.warns(RuntimeWarning, match="no GPU backend; running on the CPU"):
        caffe.set_mode_gpu()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        caffe.set_device(1)
        caffe.set_mode_gpu()
    caffe.set_mode_cpu()
    assert caffe.has_nccl() is False
    assert caffe.solver_count() == 1 and caffe.solver_rank() == 0
    caffe.set_solver_count(4)
    caffe.set_solver_rank(2)
    assert (caffe.solver_count(), caffe.solver_rank()) == (4, 2)
    caffe.set_solver_count(1)
    caffe.set_solver_rank(0)
    caffe.set_multiprocess(True)
    assert state.multiprocess() is True
    caffe.set_multiprocess(False)
    timer = caffe.Timer()
    timer.start()
    sum(range(1000))
    timer.stop()
    assert timer.ms >= 0
    caffe.init_log(0)
    with caplog.at_level(logging.INFO, logger="caffelite"):
        caffe.log("hello from pycaffe")
    assert "hello from pycaffe" in caplog.text
    caffe.init_log(1)
    logging.getLogger("caffelite").setLevel(logging.NOTSET)
    assert isinstance(caffe.__version__, str)
    from caffelite.proto import caffe_pb2 as alias
    from caffelite.proto import caffelite_pb2

    assert alias is caffelite_pb2


def test_solver_mode_gpu_warns_and_trains(tmp_path):
    state.reset_gpu_warning()
    param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed", solver_mode=caffe_pb2.
                                      SolverParameter.GPU)
    param.net_param.CopyFrom(text_format.Parse(NET, caffe_pb2.NetParameter()))
    with pytest.warns(RuntimeWarning, match="no GPU backend"):
        solver = caffe.SGDSolver(param)
    solver.step(1)
    assert solver.iter == 1


FC = """
name: "fc"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3
                            weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool1" top: "fc6"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 }
                              bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "prob" type: "Softmax" bottom: "fc7" top: "prob" }
"""
FULL_CONV = """
name: "full_conv"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 10 dim: 10 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc6-conv" type: "Convolution" bottom: "pool1" top: "fc6-conv"
        convolution_param { num_output: 5 kernel_size: 3 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6-conv" top: "fc6-conv" }
layer { name: "fc7-conv" type: "Convolution" bottom: "fc6-conv" top: "fc7-conv"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "prob" type: "Softmax" bottom: "fc7-conv" top: "prob" }
"""


def test_net_surgery_flow(tmp_path, rng, monkeypatch):
    """examples/net_surgery.ipynb: fully connected weights cast into a fully convolutional net,
    saved, reloaded; the convolutional net computes the classifier at every 8×8 window."""
    caffe.set_random_seed(3)
    (tmp_path / "fc.prototxt").write_text(FC)
    (tmp_path / "full_conv.prototxt").write_text(FULL_CONV)
    caffe.Net(str(tmp_path / "fc.prototxt"), caffe.TEST).save(str(tmp_path / "fc.caffemodel"))
    monkeypatch.chdir(tmp_path)
    net = caffe.Net('fc.prototxt', 'fc.caffemodel', caffe.TEST)
    params = ['fc6', 'fc7']
    # fc_params = {name: (weights, biases)}
    fc_params = {pr: (net.params[pr][0].data, net.params[pr][1].data) for pr in params}
    assert fc_params['fc6'][0].shape == (5, 36)
    net_full_conv = caffe.Net('full_conv.prototxt', 'fc.caffemodel', caffe.TEST)
    params_full_conv = ['fc6-conv', 'fc7-conv']
    conv_params = {pr: (net_full_conv.params[pr][0].data, net_full_conv.params[pr][1].data)
                   for pr in params_full_conv}
    assert conv_params['fc6-conv'][0].shape == (5, 4, 3, 3)
    for pr, pr_conv in zip(params, params_full_conv):
        conv_params[pr_conv][0].flat = fc_params[pr][0].flat  # flat unrolls the arrays
        conv_params[pr_conv][1][...] = fc_params[pr][1]
    net_full_conv.save('full_conv.caffemodel')

    reloaded = caffe.Net(str(tmp_path / "full_conv.prototxt"),
                         str(tmp_path / "full_conv.caffemodel"), caffe.TEST)
    image = rng.standard_normal((1, 2, 10, 10)).astype(np.float32)
    maps = reloaded.forward(data=image)["prob"].copy()
    same = net_full_conv.forward(data=image)["prob"]
    np.testing.assert_array_equal(maps, same)  # identical after save and reload
    assert maps.shape == (1, 3, 2, 2)
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:  # pool stride 2: windows 2 pixels apart
        window = image[:, :, 2 * i:2 * i + 8, 2 * j:2 * j + 8]
        np.testing.assert_allclose(net.forward(data=window)["prob"][0], maps[0, :, i, j],
                                   rtol=1e-5, atol=1e-6)


def test_snapshot_from_python_writes_beside_the_state_only(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "cwd"
    work.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed",
                                      snapshot_prefix=str(work / "m"))
    param.net_param.CopyFrom(text_format.Parse(NET, caffe_pb2.NetParameter()))
    solver = caffe.SGDSolver(param)
    solver.step(2)
    model, solverstate = solver.snapshot()
    assert sorted(os.listdir(work)) == ["m_iter_2.caffemodel", "m_iter_2.solverstate",
                                        "m_iter_2.solverstate.caffelite.json"]
    assert os.listdir(elsewhere) == []
    assert {p.name for p in tmp_path.iterdir()} == {"work", "cwd"}
    restored = caffe.SGDSolver(param)
    restored.restore(solverstate)
    assert restored.iter == 2


def test_layer_callbacks(rng):
    net = names_net()
    net.blobs["data"].data[...] = rng.standard_normal((2, 3))
    net.blobs["label"].data[...] = [1, 3]
    seen = []
    net.before_forward(lambda i: seen.append(("bf", i)))
    net.after_forward(lambda i: seen.append(("af", i, float(net.blobs["ip"].data.sum()))))
    net.before_backward(lambda i: seen.append(("bb", i)))
    weight = net.params["ip"][0]
    net.after_backward(lambda i: seen.append(("ab", i, weight.diff.copy())))
    net.forward()
    assert [s[:2] for s in seen] == [("bf", 0), ("af", 0), ("bf", 1), ("af", 1), ("bf", 2),
                                     ("af", 2)]
    assert seen[3][2] == float(net.blobs["ip"].data.sum())  # after ip's forward
    seen.clear()
    net.clear_param_diffs()
    net.backward()
    assert [s[:2] for s in seen] == [("bb", 2), ("ab", 2), ("bb", 1), ("ab", 1), ("bb", 0),
                                     ("ab", 0)]
    np.testing.assert_array_equal(seen[3][2], weight.diff)  # complete when the callback runs
    assert np.abs(weight.diff).sum() > 0


def test_pycaffe_module_paths():
    from caffelite.classifier import Classifier
    from caffelite.detector import Detector
    from caffelite.pycaffe import Net, SGDSolver

    assert Net is caffe.Net and SGDSolver is caffe.SGDSolver
    assert Classifier is caffe.Classifier and Detector is caffe.Detector
    assert callable(caffe.io.Transformer) and callable(caffe.to_proto)


def test_nccl_stub():
    solver = object()
    nccl = caffe.NCCL(solver, caffe.NCCL.new_uid())
    nccl.bcast()  # one solver: nothing to broadcast
    caffe.set_solver_count(2)
    try:
        with pytest.raises(RuntimeError, match="no NCCL"):
            caffe.NCCL(solver, b"")
    finally:
        caffe.set_solver_count(1)


def test_net_surgery_editing_parameters(tmp_path):
    """The notebook's first part on BVLC's net_surgery/conv.prototxt: a grey image through one
    convolution, then a Gaussian blur and Sobel filters written into its weights; OpenCV's
    filter2D (a correlation, as Caffe's convolution) is the reference."""
    from conftest import EXAMPLES, need_shared

    cv2 = pytest.importorskip("cv2")
    Image = pytest.importorskip("PIL.Image")
    prototxt = need_shared(EXAMPLES / "net_surgery" / "conv.prototxt")
    y, x = np.mgrid[0:60, 0:80]
    pixels = ((np.sin(x / 5.0) * np.cos(y / 7.0) + 1) * 120 + (x > 40) * 10).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "cat_gray.png")

    net = caffe.Net(str(prototxt), caffe.TEST)
    assert list(net.blobs.keys()) == ["data", "conv"] and list(net.params.keys()) == ["conv"]
    im = np.array(caffe.io.load_image(str(tmp_path / "cat_gray.png"), color=False)).squeeze()
    im_input = im[np.newaxis, np.newaxis, :, :]
    net.blobs['data'].reshape(*im_input.shape)
    net.blobs['data'].data[...] = im_input
    net.forward()
    assert net.blobs['conv'].data.shape == (1, 3, 56, 76)
    net.params['conv'][1].data[0] = 1.
    net.forward()
    ksize = net.params['conv'][0].data.shape[2:]
    sigma = 1.
    y, x = np.mgrid[-ksize[0] // 2 + 1:ksize[0] // 2 + 1, -ksize[1] // 2 + 1:ksize[1] // 2 + 1]
    g = np.exp(-((x**2 + y**2) / (2.0 * sigma**2)))
    gaussian = (g / g.sum()).astype(np.float32)
    net.params['conv'][0].data[0] = gaussian
    net.params['conv'][0].data[1:] = 0.
    sobel = np.array((-1, -2, -1, 0, 0, 0, 1, 2, 1), dtype=np.float32).reshape((3, 3))
    net.params['conv'][0].data[1, 0, 1:-1, 1:-1] = sobel  # horizontal
    net.params['conv'][0].data[2, 0, 1:-1, 1:-1] = sobel.T  # vertical
    out = net.forward()['conv'][0]
    kernels = [gaussian, np.pad(sobel, 1), np.pad(sobel.T, 1)]
    for k, (kernel, bias) in enumerate(zip(kernels, [1, 0, 0])):
        reference = cv2.filter2D(im.astype(np.float32), -1, kernel)[2:-2, 2:-2] + bias
        np.testing.assert_allclose(out[k], reference, rtol=1e-5, atol=1e-5)


def test_blob_count_is_pycaffes_number_and_caffes_method():
    from caffelite.blob import Blob

    blob = Blob((2, 3, 4, 5))
    assert blob.count == 120 and blob.count + 0 == 120  # pycaffe: a number
    assert blob.count() == 120 and blob.count(1) == 60 and blob.count(1, 3) == 12  # Caffe's
    assert isinstance(blob.count(2), int) and str(blob.count) == "120"
    assert Blob(()).count == 1 and Blob((0, 4)).count == 0
