"""Caffe's "Solving in Python with LeNet" notebook (examples/01-learning-lenet.ipynb), its code
as written for `import caffe`, run with `import caffelite as caffe`: on LMDBs of the bundled
digits, as the notebook reads MNIST, and on the bundled sample directly. Only the iteration
counts (and, for the bundled sample, the data source) differ."""
import numpy as np
import pytest

import caffelite as caffe
from caffelite import layers as L
from caffelite import params as P

SOLVER = """# The train/test net protocol buffer definition
train_net: "mnist/lenet_auto_train.prototxt"
test_net: "mnist/lenet_auto_test.prototxt"
test_iter: 20
test_interval: 500
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 100
max_iter: 10000
snapshot: 5000
snapshot_prefix: "mnist/lenet"
random_seed: 1701
"""


def lenet(lmdb, batch_size):
    # our version of LeNet: a series of linear and simple nonlinear transformations
    n = caffe.NetSpec()
    if lmdb.startswith("caffelite://"):  # the bundled sample
        n.data, n.label = L.Data(batch_size=batch_size, source=lmdb,
                                 transform_param=dict(scale=1. / 255), ntop=2)
    else:  # the notebook's line
        n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                                 transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


def test_in_place_relu_names_the_blob_not_the_attribute():
    proto = lenet("caffelite://mnist10k/train", 64)
    by_name = {layer.name: layer for layer in proto.layer}
    assert list(by_name["relu1"].bottom) == list(by_name["relu1"].top) == ["fc1"]
    assert list(by_name["score"].bottom) == ["fc1"]
    assert [layer.name for layer in proto.layer] == [
        "data", "conv1", "pool1", "conv2", "pool2", "fc1", "relu1", "score", "loss"]


def mnist_lmdbs():
    """mnist/mnist_{train,test}_lmdb from the bundled digits, keyed as convert_mnist_data."""
    pytest.importorskip("lmdb", reason="the LMDB variant needs the lmdb package (data extra)")
    from caffelite.data.datasets import write_datums
    from caffelite.data.sources import load_source

    for split in ("train", "test"):
        images, labels = load_source(f"caffelite://mnist10k/{split}")
        write_datums(f"mnist/mnist_{split}_lmdb", "lmdb", images, labels, "{:08d}")
    return "mnist/mnist_train_lmdb", "mnist/mnist_test_lmdb"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("data", ["lmdb", "bundled"])
def test_lenet_tutorial_flow(tmp_path, monkeypatch, data):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    train, test = (mnist_lmdbs() if data == "lmdb"
                   else ("caffelite://mnist10k/train", "caffelite://mnist10k/test"))
    with open('mnist/lenet_auto_train.prototxt', 'w') as f:
        f.write(str(lenet(train, 64)))
    with open('mnist/lenet_auto_test.prototxt', 'w') as f:
        f.write(str(lenet(test, 100)))
    with open('mnist/lenet_auto_solver.prototxt', 'w') as f:
        f.write(SOLVER)

    from caffelite.pycaffe import state

    state.reset_gpu_warning()
    with pytest.warns(RuntimeWarning, match="no GPU backend; running on the CPU"):
        caffe.set_device(0)
        caffe.set_mode_gpu()
    solver = None  # ignore this workaround for lmdb data (can't instantiate two solvers on
    solver = caffe.SGDSolver('mnist/lenet_auto_solver.prototxt')  # the same data)

    # each output is (batch size, feature dim, spatial dim)
    shapes = [(k, v.data.shape) for k, v in solver.net.blobs.items()]
    assert dict(shapes)["conv1"] == (64, 20, 24, 24)
    assert dict(shapes)["fc1"] == (64, 500)
    # just print the weight sizes (we'll omit the biases)
    params = [(k, v[0].data.shape) for k, v in solver.net.params.items()]
    assert params == [("conv1", (20, 1, 5, 5)), ("conv2", (50, 20, 5, 5)),
                      ("fc1", (500, 800)), ("score", (10, 500))]

    solver.net.forward()  # train net
    solver.test_nets[0].forward()  # test net (there can be more than one)
    images = solver.net.blobs['data'].data[:8, 0].transpose(1, 0, 2).reshape(28, 8 * 28)
    assert 0 <= images.min() and images.max() <= 1 and images.max() > 0.9
    labels = solver.net.blobs['label'].data[:8]
    assert set(labels) <= set(range(10))

    solver.step(1)
    filters = solver.net.params['conv1'][0].diff[:, 0].reshape(4, 5, 5, 5)
    filters = filters.transpose(0, 2, 1, 3).reshape(4 * 5, 5 * 5)
    assert filters.shape == (20, 25) and np.abs(filters).sum() > 0

    niter = 40
    test_interval = 10
    # losses will also be stored in the log
    train_loss = np.zeros(niter)
    test_acc = np.zeros(int(np.ceil(niter / test_interval)))
    output = np.zeros((niter, 8, 10))

    # the main solver loop
    for it in range(niter):
        solver.step(1)  # SGD by Caffe

        # store the train loss
        train_loss[it] = solver.net.blobs['loss'].data

        # store the output on the first test batch
        # (start the forward pass at conv1 to avoid loading new data)
        solver.test_nets[0].forward(start='conv1')
        output[it] = solver.test_nets[0].blobs['score'].data[:8]

        # run a full test every so often
        # (Caffe can also do this for us and write to a log, but we show here
        #  how to do it directly in Python, where more complicated things are easier.)
        if it % test_interval == 0:
            correct = 0
            for test_it in range(20):  # noqa: B007  (as written)
                solver.test_nets[0].forward()
                correct += sum(solver.test_nets[0].blobs['score'].data.argmax(1)
                               == solver.test_nets[0].blobs['label'].data)
            test_acc[it // test_interval] = correct / 2e3

    assert solver.iter == niter + 1
    assert np.all(np.isfinite(train_loss))
    assert train_loss[-5:].mean() < train_loss[:5].mean()  # it learns
    assert test_acc[-1] > 0.5 and test_acc[-1] > test_acc[0]  # 10 classes: chance is 0.1
