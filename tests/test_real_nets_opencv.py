"""Caffe's example nets: caffelite's forward equals OpenCV's Caffe importer on the same weights.

Each real prototxt from ../shared/caffe/examples is built, given seeded random weights, saved as
a .caffemodel and read back by cv2.dnn.readNetFromCaffe (an independent C++ implementation of
Caffe's layers). The final outputs are compared with OpenCV's default (fused) graph, then every
layer's top with fusion off, so a mismatch names the layer that causes it.
"""
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import EXAMPLES, need_shared

import caffelite
from caffelite.formats.config import read_net_param, write_net_param
from caffelite.proto import caffelite_pb2 as pb

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless<5) not installed")

# OpenCV keeps float32 accumulations in its own order; 1e-4 of a blob's largest magnitude is
# a few hundred ulps at that scale, while any semantic difference shows at 1e-2 or more.
RTOL = 1e-4


@dataclass(frozen=True)
class RealNet:
    path: str  # under examples/
    batch: int
    outputs: dict  # output blob -> its shape for `batch` inputs (Caffe's shape arithmetic)
    train_test: bool = False  # a train/test net, turned into a deploy net here

    def __str__(self):
        return self.path.rsplit("/", 1)[-1].removesuffix(".prototxt")


CIFAR_TRAIN_TEST_INPUT = (3, 32, 32)
NETS = [
    RealNet("cifar10/cifar10_quick.prototxt", 4, {"prob": (4, 10)}),
    RealNet("cifar10/cifar10_full.prototxt", 4, {"prob": (4, 10)}),  # LRN WITHIN_CHANNEL
    RealNet("cifar10/cifar10_full_sigmoid_train_test.prototxt", 4, {"ip1": (4, 10)},
            train_test=True),
    RealNet("cifar10/cifar10_full_sigmoid_train_test_bn.prototxt", 4, {"ip1": (4, 10)},
            train_test=True),
    RealNet("mnist/lenet.prototxt", 8, {"prob": (8, 10)}),
    RealNet("siamese/mnist_siamese.prototxt", 8, {"feat": (8, 2)}),  # declares 10000 inputs
    # 451x451: the fully-convolutional classifier gives an 8x8 map of 1000 class scores
    RealNet("net_surgery/bvlc_caffenet_full_conv.prototxt", 1, {"prob": (1, 1000, 8, 8)}),
    RealNet("net_surgery/conv.prototxt", 1, {"conv": (1, 3, 96, 96)}),
]


def deploy_param(train_test_path, batch, chw):
    """Caffe's usual train_test -> deploy edit: no Data layers, no loss or accuracy, and an
    Input layer for `data` of shape (batch, *chw) in their place."""
    src = read_net_param(train_test_path)
    out = pb.NetParameter()
    out.CopyFrom(src)
    del out.layer[:]
    data = out.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=[batch, *chw])
    for layer in src.layer:
        data_layer = not layer.bottom and layer.type != "Input"
        train_only = any(rule.HasField("phase") and rule.phase == pb.TRAIN
                         for rule in layer.include)
        head = layer.type == "Accuracy" or layer.type.endswith("Loss")
        if not (data_layer or train_only or head):
            out.layer.add().CopyFrom(layer)
    return out


def model_path(case, tmp_path):
    """The prototxt to run: the example itself, or its deploy form written to tmp_path."""
    path = need_shared(EXAMPLES / case.path)
    if not case.train_test:
        return path
    deploy = tmp_path / f"{case}_deploy.prototxt"
    write_net_param(deploy_param(path, case.batch, CIFAR_TRAIN_TEST_INPUT), deploy)
    return deploy


def input_array(net, batch, rng):
    shape = (batch, *net.blobs["data"].shape[1:])
    return rng.standard_normal(shape, dtype=np.float32)


def randomise(net, rng, bn_scale_factor=1.0):
    """Seeded random weights (deploy nets mostly declare constant-0 fillers).

    Weights ~ N(0, 1/fan_in) keep every layer's activations O(1), so softmax outputs are far
    from uniform and each layer's values are meaningful; other blobs ~ N(0, 0.1²). BatchNorm
    holds sums scaled by its factor s (blob [2]): mean = b0/s, var = b1/s > 0.
    """
    for name, blobs in net.params.items():
        if net.layer_dict[name].type == "BatchNorm":
            channels = blobs[0].shape[0]
            s = np.float32(bn_scale_factor)
            blobs[0].data[...] = rng.normal(0, 0.3, channels) * s
            blobs[1].data[...] = rng.uniform(0.5, 2.0, channels) * s
            blobs[2].data[...] = s
            continue
        for i, blob in enumerate(blobs):
            std = 1 / np.sqrt(blob.count(1)) if i == 0 and len(blob.shape) > 1 else 0.1
            blob.data[...] = rng.standard_normal(blob.shape, dtype=np.float32) * np.float32(std)


def opencv_net(prototxt, caffemodel):
    reader = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    reader.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    reader.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return reader


def assert_close(ours, theirs, what):
    ours = np.asarray(ours)
    assert ours.size == theirs.size, f"{what}: caffelite {ours.shape}, OpenCV {theirs.shape}"
    scale = float(np.abs(theirs).max())
    diff = float(np.abs(ours.reshape(theirs.shape) - theirs).max())
    assert diff <= RTOL * max(scale, 1e-6), \
        f"{what}: max |caffelite - OpenCV| = {diff:.3g}, largest |value| {scale:.3g}"


def layer_tops(net, x):
    """{layer name: copy of its first top right after it ran} — before later in-place layers
    (relu1 on conv1 ...) overwrite it, as OpenCV keeps each layer's output apart."""
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data[...] = x
    tops = {}
    for name in net.layer_names:
        result = net.forward(start=name, end=name)
        if result:
            tops[name] = next(iter(result.values())).copy()
    return tops


def compare_with_opencv(net, prototxt, tmp_path, x):
    """Save net's weights, read them with OpenCV and compare the outputs, then every layer."""
    caffemodel = tmp_path / "random.caffemodel"
    net.save(caffemodel)
    ours = {name: value.copy() for name, value in net.forward(data=x).items()}
    reader = opencv_net(prototxt, caffemodel)
    reader.setInput(np.ascontiguousarray(x))
    theirs = reader.forward(list(net.outputs))
    for name, value in zip(net.outputs, theirs):
        assert_close(ours[name], value, f"{prototxt.name} output {name!r}")

    # A fresh reader: one that already ran fused keeps BatchNorm folded into a convolution's
    # weights (bn3 into conv3 here) after enableFusion(False).
    reader = opencv_net(prototxt, caffemodel)
    reader.enableFusion(False)  # one OpenCV layer per Caffe layer, each output observable
    reader.setInput(np.ascontiguousarray(x))
    tops = layer_tops(net, x)
    compared = [name for name in reader.getLayerNames() if name in tops]
    ours_only = {name for name, layer in net.layer_dict.items()
                 if layer.type not in ("Input", "Split")} - set(compared)
    assert not ours_only, f"layers OpenCV did not import: {sorted(ours_only)}"
    for name, value in zip(compared, reader.forward(compared)):
        assert_close(tops[name], value, f"{prototxt.name} layer {name!r}")
    return tops


@pytest.mark.parametrize("case", NETS, ids=str)
def test_real_net_builds_and_runs_forward(case, tmp_path):
    net = caffelite.Net(model_path(case, tmp_path), caffelite.TEST)
    x = input_array(net, case.batch, np.random.default_rng(1))
    out = net.forward(data=x)
    assert {name: value.shape for name, value in out.items()} == case.outputs
    assert all(np.isfinite(value).all() for value in out.values())


@pytest.mark.parametrize("case", NETS, ids=str)
def test_real_net_matches_opencv(case, tmp_path):
    prototxt = model_path(case, tmp_path)
    net = caffelite.Net(prototxt, caffelite.TEST)
    rng = np.random.default_rng(1701)
    randomise(net, rng)
    x = input_array(net, case.batch, rng)
    tops = compare_with_opencv(net, prototxt, tmp_path, x)
    # the weights give each net a real signal, not a near-constant output
    last_learned = [name for name in net.layer_names if name in net.params][-1]
    assert np.abs(tops[last_learned]).max() > 0.1


# ---- the same nets with the layers OpenCV and Caffe could disagree on pushed hard ---------

def cifar_full_variant(tmp_path, edit):
    param = read_net_param(need_shared(EXAMPLES / "cifar10/cifar10_full.prototxt"))
    for layer in param.layer:
        edit(layer)
    path = tmp_path / "cifar10_full_variant.prototxt"
    write_net_param(param, path)
    return path


@pytest.mark.parametrize("region, k", [
    # Caffe ignores k within a channel: (1 + alpha/n² · Σ_window x²)^-beta, padded cells count
    ("WITHIN_CHANNEL", 2.0),
    # k stays 1 across channels: OpenCV 4.x's Caffe importer drops LRNParameter.k (it reads
    # "bias") and would not be an oracle for k != 1
    ("ACROSS_CHANNELS", 1.0),
])
def test_lrn_with_strong_normalisation_matches_opencv(region, k, tmp_path):
    """cifar10_full's alpha 5e-5 leaves LRN close to the identity; alpha 1 makes it count."""
    def edit(layer):
        if layer.type == "LRN":
            layer.lrn_param.alpha = 1.0
            layer.lrn_param.k = k
            layer.lrn_param.norm_region = pb.LRNParameter.NormRegion.Value(region)

    prototxt = cifar_full_variant(tmp_path, edit)
    net = caffelite.Net(prototxt, caffelite.TEST)
    rng = np.random.default_rng(7)
    randomise(net, rng)
    x = input_array(net, 2, rng) * 3
    tops = compare_with_opencv(net, prototxt, tmp_path, x)
    # norm1 follows relu1 (pool1 -> relu1 in place -> norm1): LRN really changed the values
    change = np.abs(tops["norm1"] - tops["relu1"]).max() / np.abs(tops["relu1"]).max()
    assert change > 0.2


def test_batch_norm_scale_factor_matches_opencv(tmp_path):
    """Global statistics are b0/s and b1/s: sums saved with s = 2.5 give the same outputs."""
    case = NETS[3]
    assert case.path.endswith("_bn.prototxt")
    prototxt = model_path(case, tmp_path)
    net = caffelite.Net(prototxt, caffelite.TEST)
    rng = np.random.default_rng(3)
    randomise(net, rng, bn_scale_factor=2.5)
    assert net.params["bn1"][2].data[0] == np.float32(2.5)
    compare_with_opencv(net, prototxt, tmp_path, input_array(net, case.batch, rng))
