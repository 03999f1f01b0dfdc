"""Every net of ../shared/caffe/examples and configs/ that caffelite builds, exported to ONNX
with seeded random weights: onnxruntime's outputs equal caffelite's forward."""
from dataclasses import dataclass, field

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, need_shared
from onnx_check import check, random_inputs, randomise, with_inputs

import caffelite
from caffelite.export import export_onnx
from caffelite.formats.config import read_net_param


@dataclass(frozen=True)
class Example:
    path: str  # under examples/
    shapes: dict = field(default_factory=dict)  # data layer -> input shape (train/test nets)
    batch: int = 4  # deploy nets: their Input reshaped to this batch
    stages: tuple = ()
    slow: bool = False

    def __str__(self):
        return self.path.rsplit("/", 1)[-1].removesuffix(".prototxt")


CIFAR, MNIST = {"data": (4, 3, 32, 32)}, {"data": (4, 1, 28, 28)}
IMAGENET = {"data": (2, 3, 227, 227)}
CASES = [
    Example("cifar10/cifar10_quick.prototxt"),
    Example("cifar10/cifar10_full.prototxt"),  # LRN WITHIN_CHANNEL, AVE pooling
    Example("cifar10/cifar10_quick_train_test.prototxt", CIFAR),
    Example("cifar10/cifar10_full_train_test.prototxt", CIFAR),
    Example("cifar10/cifar10_full_sigmoid_train_test.prototxt", CIFAR),
    Example("cifar10/cifar10_full_sigmoid_train_test_bn.prototxt", CIFAR),  # BatchNorm
    Example("mnist/lenet.prototxt"),
    Example("mnist/lenet_train_test.prototxt", MNIST),
    Example("mnist/mnist_autoencoder.prototxt", MNIST, stages=("test-on-test",)),
    Example("siamese/mnist_siamese.prototxt"),
    Example("siamese/mnist_siamese_train_test.prototxt", {"pair_data": (4, 2, 28, 28)}),
    Example("net_surgery/conv.prototxt", batch=1),
    Example("hdf5_classification/train_val.prototxt", {"data": (8, 4)}),
    Example("hdf5_classification/nonlinear_train_val.prototxt", {"data": (8, 4)}),
    Example("hdf5_classification/nonlinear_auto_test.prototxt", {"data": (8, 4)}),
    Example("net_surgery/bvlc_caffenet_full_conv.prototxt", batch=1, slow=True),
    Example("feature_extraction/imagenet_val.prototxt", IMAGENET, slow=True),
    Example("finetune_pascal_detection/pascal_finetune_trainval_test.prototxt", IMAGENET,
            slow=True),
]


def build(case, rng):
    path = need_shared(EXAMPLES / case.path)
    param = read_net_param(str(path))
    if case.shapes:
        param = with_inputs(param, case.shapes)
    net = caffelite.Net(param, caffelite.TEST, stages=case.stages)
    for name in net.inputs:
        if not case.shapes:  # a deploy net: its declared batch, made small
            net.blobs[name].reshape((case.batch,) + net.blobs[name].shape[1:])
    net.reshape()
    randomise(net, rng)
    return net


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c.slow else c
                                  for c in CASES], ids=str)
def test_example_net_matches_onnxruntime(case, rng):
    net = build(case, rng)
    inputs = random_inputs(net, rng)
    model = check(net, inputs)
    names = [o.name for o in model.graph.output]
    assert names and all(name in net.blobs for name in names)  # Caffe's blob names
    assert not any("loss" in name or "accuracy" in name for name in names), names


@pytest.mark.parametrize("case", [CASES[0], CASES[6]], ids=str)
def test_the_batch_is_dynamic(case, rng):
    """One export runs any batch size: compared at 1 and 7 items after exporting at 4."""
    net = build(case, rng)
    model = export_onnx(net)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    for batch in (1, 7):
        inputs = {name: rng.standard_normal((batch,) + net.blobs[name].shape[1:])
                  .astype(np.float32) for name in ("data",)}
        check(net, inputs, model=model)


def test_static_batch_fixes_the_input_size(rng):
    net = build(CASES[0], rng)
    model = export_onnx(net, static_batch=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    check(net, random_inputs(net, rng), model=model)


def test_a_python_loss_is_dropped_and_random_dummy_data_are_inputs(rng, monkeypatch, caplog):
    """pycaffe's linreg: a Python layer with loss_weight 1 (Caffe's way to mark a Python loss)
    is dropped like any loss; its DummyData x and y (gaussian fillers) are the inputs."""
    path = need_shared(EXAMPLES / "pycaffe/linreg.prototxt")
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "fixtures"))  # pyloss.py
    net = caffelite.Net(read_net_param(str(path)), caffelite.TEST)
    randomise(net, rng)
    with caplog.at_level("INFO", logger="caffelite"):
        model = export_onnx(net)
    assert "dropped layer 'loss' (Python)" in caplog.text
    assert [i.name for i in model.graph.input] == ["x", "y"]
    assert sorted(o.name for o in model.graph.output) == ["ipx", "ipy"]
    check(net, {name: net.blobs[name].data.copy() for name in ("x", "y")}, model=model)


CONFIGS = [("lenet", False), ("lenet_bn", False), ("mlp", False), ("mnist_autoencoder", False),
           ("mnist_lstm", True)]


@pytest.mark.parametrize("name,static", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_example_config_matches_onnxruntime(name, static, rng):
    """configs/<name> in its TEST phase: the Data layer reads the bundled digits, the export
    takes its `data` top as the graph input."""
    caffelite.set_random_seed(1701)
    net = caffelite.Net(str(ROOT / "configs" / name / f"{name}_train_test.prototxt"),
                        caffelite.TEST)
    randomise(net, rng)
    if name == "mnist_lstm":  # open the forget gates so early rows reach the output
        net.params["lstm"][1].data[128:256] = 3
    net.forward()  # the Data layer reads a batch of the bundled test digits
    inputs = {"data": net.blobs["data"].data.copy()}
    model = check(net, inputs, static_batch=static)
    assert [i.name for i in model.graph.input] == ["data"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_value == 100) if static else (dims[0].dim_param == "N")
