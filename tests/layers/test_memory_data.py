"""MemoryData and pycaffe's Net.set_input_arrays: batches are the rows of the given arrays in
order, cycling; label shapes as Caffe's; pycaffe's checks as errors that are RuntimeErrors."""
import logging

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.errors import CaffeliteError, NetError
from caffelite.net import Net
from caffelite.proto import caffelite_pb2 as pb

NET = """
  name: "mem"
  layer { name: "input" type: "MemoryData" top: "data" top: "label"
          memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } %s }
  layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
          inner_product_param { num_output: 7 weight_filler { type: "gaussian" std: 0.1 } } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def make_net(extra=""):
    return Net(text_format.Parse(NET % extra, pb.NetParameter()), phase="TRAIN")


def arrays(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, 4, 5)).astype(np.float32),
            rng.integers(0, 7, n).astype(np.float32))


def softmax_loss(scores, labels):
    shifted = scores - scores.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -logp[np.arange(len(labels)), labels.astype(int)].mean()


def test_batches_cycle_through_the_arrays():
    net = make_net()
    assert net.blobs["label"].shape == (2,)
    data, labels = arrays()
    net.set_input_arrays(data, labels)
    weights, bias = (p.data for p in net.params["ip"])
    for i in range(5):  # 3 batches, then the first two again
        rows = slice(2 * (i % 3), 2 * (i % 3) + 2)
        loss = net.forward()["loss"]
        np.testing.assert_array_equal(net.blobs["data"].data, data[rows])
        assert net.blobs["label"].shape == (2, 1, 1, 1)
        np.testing.assert_array_equal(net.blobs["label"].data.ravel(), labels[rows])
        scores = data[rows].reshape(2, -1).astype(np.float64) @ weights.T + bias
        assert loss == pytest.approx(softmax_loss(scores, labels[rows]), rel=1e-5)


def test_arrays_are_held_not_copied_and_4d_labels_work():
    net = make_net()
    data, labels = arrays(4)
    labels4 = np.ascontiguousarray(labels.reshape(4, 1, 1, 1))
    net.set_input_arrays(data, labels4)
    data[0] = 42  # pycaffe keeps the caller's arrays: later forwards see the change
    net.forward()
    assert np.all(net.blobs["data"].data[0] == 42)
    np.testing.assert_array_equal(net.blobs["label"].data, labels4[:2])


def test_set_input_arrays_restarts_at_row_zero_and_state_resumes():
    net = make_net()
    data, labels = arrays()
    net.set_input_arrays(data, labels)
    net.forward()
    state = net.layer_states()
    assert state == {"input": {"pos": 2}}
    net.set_input_arrays(data, labels)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[:2])
    other = make_net()
    other.set_input_arrays(data, labels)
    other.load_layer_states(state)
    other.forward()
    np.testing.assert_array_equal(other.blobs["data"].data, data[2:4])


@pytest.mark.parametrize("change, message", [
    (lambda d, lab: (d.astype(np.float64), lab), "data array must be float32, got float64"),
    (lambda d, lab: (np.asfortranarray(d), lab), "data array must be C contiguous"),
    (lambda d, lab: (d.reshape(6, 3, 20), lab), "data array must be 4-d"),
    (lambda d, lab: (np.zeros((6, 2, 4, 5), np.float32), lab),
     r"data array has wrong number of channels \(2, the layer takes 3\)"),
    (lambda d, lab: (np.zeros((6, 3, 5, 5), np.float32), lab), "wrong number of height"),
    (lambda d, lab: (np.zeros((6, 3, 4, 4), np.float32), lab), "wrong number of width"),
    (lambda d, lab: (d, lab.astype(np.int64)), "labels array must be float32"),
    (lambda d, lab: (d, np.zeros((6, 2, 1, 1), np.float32)), "labels array has wrong number"),
    (lambda d, lab: (d, lab[:4]), r"same first dimension \(data 6, labels 4\)"),
    (lambda d, lab: (d[:5], lab[:5]), r"multiple of batch size \(5 rows, batch_size 2\)"),
    (lambda d, lab: (d[:0], lab[:0]), "multiple of batch size"),
    (lambda d, lab: (d.tolist(), lab), "data array must be a NumPy array"),
])
def test_pycaffes_checks(change, message):
    net = make_net()
    data, labels = change(*arrays())
    with pytest.raises(RuntimeError, match=message) as info:
        net.set_input_arrays(data, labels)
    assert isinstance(info.value, CaffeliteError)
    assert "layer 'input' (MemoryData)" in str(info.value)


def test_first_layer_must_be_memory_data_and_forward_needs_arrays():
    net = Net(text_format.Parse(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }',
        pb.NetParameter()))
    with pytest.raises(RuntimeError, match=r"first layer is a MemoryData layer \(it is 'in' "
                                           r"\(Input\)\)"):
        net.set_input_arrays(*arrays())
    with pytest.raises(NetError, match="call net.set_input_arrays"):
        make_net().forward()


def test_bad_parameters_and_transform_warning(caplog):
    with pytest.raises(NetError, match="must be specified and positive in memory_data_param"):
        Net(text_format.Parse('layer { name: "m" type: "MemoryData" top: "d" top: "l" '
                              'memory_data_param { batch_size: 2 channels: 3 height: 4 } }',
                              pb.NetParameter()))
    net = make_net("transform_param { scale: 2 }")
    with caplog.at_level(logging.WARNING, logger="caffelite"):
        net.set_input_arrays(*arrays())
    assert "does not transform array data" in caplog.text
    data, _ = arrays()
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[:2])  # not scaled


@pytest.mark.timeout(120)
def test_solver_resume_is_bit_identical(tmp_path):
    """N iterations straight = K + snapshot + (set_input_arrays, restore) + N − K."""
    from caffelite.solvers import Solver
    from tests.resume_check import check_exact_resume
    from tests.solvers.nets import solver_param

    net = text_format.Parse(NET % "", pb.NetParameter())
    data, labels = arrays(10, seed=4)

    def make_solver(name):
        solver = Solver(solver_param(net, base_lr=0.05, momentum=0.9, max_iter=7,
                                     snapshot_prefix=str(tmp_path / name / "s")))
        solver.net.set_input_arrays(data, labels)
        return solver

    def position_restored(resumed):
        assert resumed.net.layers[0].pos == 6

    check_exact_resume(make_solver, total=7, first=3, before_steps=position_restored)
