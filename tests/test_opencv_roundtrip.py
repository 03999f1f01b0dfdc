"""Caffemodels written by caffelite read by OpenCV's independent Caffe reader: same outputs."""
import numpy as np
import pytest
from conftest import LENET_BVLC, MNIST10K, need_shared

from caffelite.net import Net

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless<5) not installed")


def opencv_forward(prototxt, caffemodel, x):
    reader = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    reader.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    reader.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    reader.setInput(np.ascontiguousarray(x, dtype=np.float32))
    return reader.forward()


def test_resaved_bvlc_lenet_reads_identically(tmp_path):
    model = need_shared(LENET_BVLC / "lenet.prototxt")
    weights = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    images = np.load(need_shared(MNIST10K))["images"][:64].astype(np.float32)[:, None] / 256
    net = Net(model, weights=weights)
    resaved = tmp_path / "lenet_resaved.caffemodel"
    net.save(resaved)
    original = opencv_forward(model, weights, images)
    # the same float32 weights, so OpenCV computes bit for bit the same
    np.testing.assert_array_equal(opencv_forward(model, resaved, images), original)
    np.testing.assert_allclose(net.forward(data=images)["prob"].reshape(64, 10),
                               original.reshape(64, 10), atol=1e-5, rtol=0)


RANDOM_NET = """
name: 'roundtrip'
layer { name: 'data' type: 'Input' top: 'data'
        input_param { shape { dim: 3 dim: 2 dim: 9 dim: 9 } } }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: 'gaussian' std: 0.3 }
                            bias_filler { type: 'uniform' min: -0.5 max: 0.5 } } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'conv2' type: 'Convolution' bottom: 'conv1' top: 'conv2'
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: 'xavier' }
                            bias_filler { type: 'gaussian' std: 0.2 } } }
layer { name: 'sum' type: 'Eltwise' bottom: 'conv1' bottom: 'conv2' top: 'sum' }
layer { name: 'pool' type: 'Pooling' bottom: 'sum' top: 'pool'
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'pool' top: 'ip1'
        inner_product_param { num_output: 7 weight_filler { type: 'msra' }
                              bias_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'ip2' type: 'InnerProduct' bottom: 'pool' top: 'ip2'
        inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.2 } } }
layer { name: 'cat' type: 'Concat' bottom: 'ip1' bottom: 'ip2' top: 'cat' }
layer { name: 'prob' type: 'Softmax' bottom: 'cat' top: 'prob' }
"""


def test_random_net_written_by_caffelite_reads_in_opencv(tmp_path, rng):
    prototxt = tmp_path / "roundtrip.prototxt"
    prototxt.write_text(RANDOM_NET)
    net = Net(prototxt, rng=np.random.default_rng(5))
    assert "conv1_relu1_0_split" in net.layer_names  # fan-out: a Split in the caffemodel too
    caffemodel = tmp_path / "roundtrip.caffemodel"
    net.save(caffemodel)
    x = rng.standard_normal((3, 2, 9, 9)).astype(np.float32)
    ours = net.forward(data=x)["prob"]
    theirs = opencv_forward(prototxt, caffemodel, x)
    assert ours.shape == theirs.shape == (3, 12)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
