"""HDF5 weights and solver states in Caffe's layout, checked with h5py: /data/<layer>/<i> (owners
only, empty groups for parameter-less layers), /diff with snapshot_diff, iter/current_step int32
(1,), learned_net a NUL-terminated fixed string, history/<i>; exact resume; conversion."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

import caffelite as caffe
from caffelite.cli import main
from caffelite.errors import WeightsError
from caffelite.proto import caffe_pb2

h5py = pytest.importorskip("h5py")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET = os.path.join(ROOT, "configs", "lenet")

# ip2 shares ip1's weight (param name "w") but owns its bias; relu has no params.
SHARED_NET = """
name: "shared"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        param { name: "w" } param { name: "b1" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        param { name: "w" } param { name: "b2" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
"""


def shared_net(tmp_path):
    path = tmp_path / "shared.prototxt"
    path.write_text(SHARED_NET)
    return caffe.Net(str(path), caffe.TEST)


def test_save_hdf5_has_caffes_layout(tmp_path):
    net = shared_net(tmp_path)
    net.blobs["data"].data[...] = np.arange(6).reshape(2, 3)
    net.forward()
    net.backward(ip2=np.ones((2, 3), np.float32))
    path = tmp_path / "w.caffemodel.h5"
    net.save_hdf5(str(path), write_diff=True)
    with h5py.File(path, "r") as f:
        assert set(f) == {"data", "diff"}
        assert set(f["data"]) == {"data", "ip1", "relu", "ip2"}
        assert len(f["data/data"]) == 0 and len(f["data/relu"]) == 0
        assert set(f["data/ip1"]) == {"0", "1"}
        assert set(f["data/ip2"]) == {"1"}  # the shared weight is written by its owner only
        assert set(f["diff/ip2"]) == {"0", "1"}  # diffs: every param
        for name, blob in [("ip1/0", net.params["ip1"][0]), ("ip1/1", net.params["ip1"][1]),
                           ("ip2/1", net.params["ip2"][1])]:
            dataset = f["data/" + name]
            assert dataset.dtype == np.dtype("<f4") and dataset.shape == blob.data.shape
            np.testing.assert_array_equal(dataset[()], blob.data)
        np.testing.assert_array_equal(f["diff/ip2/0"][()], net.params["ip2"][0].diff)
        attrs = []
        f.visititems(lambda name, obj: attrs.extend(obj.attrs))
        assert not attrs and not list(f.attrs)


def test_load_hdf5_written_by_hand_in_caffes_layout(tmp_path, rng):
    """A file laid out as Caffe's Net::ToHDF5 writes it, made with h5py alone."""
    net = shared_net(tmp_path)
    w, b1, b2 = (rng.standard_normal(s).astype(np.float32) for s in [(3, 3), (3,), (3,)])
    path = tmp_path / "caffe.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip1/0", data=w)
        f.create_dataset("data/ip1/1", data=b1)
        f.create_dataset("data/ip2/1", data=b2)
        f.create_group("data/relu")
        f.create_dataset("data/not_in_net/0", data=np.zeros(4, np.float32))  # ignored
    net.load_hdf5(str(path))
    np.testing.assert_array_equal(net.params["ip2"][0].data, w)  # shared: through ip1
    np.testing.assert_array_equal(net.params["ip2"][1].data, b2)
    other = shared_net(tmp_path)
    other.copy_from(str(path))  # copy_from picks HDF5 by content, as Caffe
    x = rng.standard_normal((2, 3)).astype(np.float32)
    expected = np.maximum(x @ w.T + b1, 0) @ w.T + b2
    np.testing.assert_allclose(other.forward(data=x)["ip2"], expected, rtol=1e-5, atol=1e-5)


def test_load_hdf5_errors(tmp_path):
    net = shared_net(tmp_path)
    path = tmp_path / "bad.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip1/0", data=np.zeros((3, 4), np.float32))
        f.create_dataset("data/ip1/1", data=np.zeros(3, np.float32))
    with pytest.raises(WeightsError, match="shape mismatch"):
        net.load_hdf5(str(path))
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip1/0", data=np.zeros((3, 3), np.float32))
    with pytest.raises(WeightsError, match="lacks param 1"):
        net.load_hdf5(str(path))


def lenet_solver_param(tmp_path, fmt):
    param = caffe.read_solver_param(os.path.join(LENET, "lenet_solver.prototxt"))
    param.snapshot_format = fmt
    param.snapshot_prefix = str(tmp_path / "snap" / "lenet")
    param.net = os.path.join(LENET, "lenet_train_test.prototxt")
    param.test_interval = 0
    del param.test_iter[:]
    param.display = 0
    return param


@pytest.mark.timeout(120)
def test_hdf5_snapshot_layout_and_exact_resume(tmp_path):
    param = lenet_solver_param(tmp_path, caffe_pb2.SolverParameter.HDF5)
    solver = caffe.SGDSolver(param)
    solver.step(2)
    model, state = solver.snapshot()
    assert model.endswith("lenet_iter_2.caffemodel.h5")
    assert state.endswith("lenet_iter_2.solverstate.h5")
    assert sorted(os.listdir(tmp_path / "snap")) == sorted(
        ["lenet_iter_2.caffemodel.h5", "lenet_iter_2.solverstate.h5",
         "lenet_iter_2.solverstate.h5.caffelite.json"])
    with h5py.File(state, "r") as f:
        assert set(f) == {"iter", "current_step", "learned_net", "history"}
        for key, value in [("iter", 2), ("current_step", 0)]:
            assert f[key].dtype == np.dtype("<i4") and f[key].shape == (1,)
            assert f[key][0] == value
        string_type = f["learned_net"].id.get_type()
        assert f["learned_net"].shape == ()
        assert string_type.get_strpad() == h5py.h5t.STR_NULLTERM
        assert string_type.get_size() == len(model) + 1
        assert f["learned_net"][()] == model.encode()
        assert sorted(f["history"], key=int) == [str(k) for k in range(8)]
        for k, h in enumerate(solver.history):
            np.testing.assert_array_equal(f[f"history/{k}"][()], h)
    with h5py.File(model, "r") as f:
        assert list(f["data"]) == sorted(solver.net.layer_names)

    resumed = caffe.SGDSolver(param)
    resumed.restore(state)
    assert resumed.iter == 2
    solver.step(3)
    resumed.step(3)
    for a, b in zip(solver.net.learnable_params, resumed.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)  # bit-identical


@pytest.mark.timeout(120)
def test_weights_h5_finetunes_and_converts_both_ways(tmp_path):
    param = lenet_solver_param(tmp_path, caffe_pb2.SolverParameter.BINARYPROTO)
    solver = caffe.SGDSolver(param)
    solver.step(1)
    binary, _ = solver.snapshot()
    runner = CliRunner()
    h5 = str(tmp_path / "lenet.caffemodel.h5")
    back = str(tmp_path / "back.caffemodel")
    again = str(tmp_path / "again.caffemodel.h5")
    for src, dst in [(binary, h5), (h5, back), (back, again)]:
        result = runner.invoke(main, ["convert", src, dst])
        assert result.exit_code == 0, result.output
    with h5py.File(h5, "r") as f1, h5py.File(again, "r") as f2:
        names = []
        f1.visit(names.append)
        assert names
        for name in names:
            if isinstance(f1[name], h5py.Dataset):
                np.testing.assert_array_equal(f1[name][()], f2[name][()])
    for name, blobs in solver.net.params.items():
        with h5py.File(h5, "r") as f:
            for j, blob in enumerate(blobs):
                np.testing.assert_array_equal(f[f"data/{name}/{j}"][()], blob.data)

    # solver `weights` (the CLI's --weights) takes the .caffemodel.h5
    param.weights.append(h5)
    tuned = caffe.SGDSolver(param)
    for a, b in zip(tuned.net.learnable_params, solver.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)

    with_model = str(tmp_path / "model.caffemodel")
    result = runner.invoke(main, ["convert", h5, with_model, "--model",
                                  os.path.join(LENET, "lenet_train_test.prototxt")])
    assert result.exit_code == 0, result.output
    net = caffe.Net(os.path.join(LENET, "lenet_train_test.prototxt"), caffe.TEST,
                    weights=with_model)
    np.testing.assert_array_equal(net.params["conv1"][0].data,
                                  solver.net.params["conv1"][0].data)


def test_cli_train_weights_h5(tmp_path):
    """`caffelite train --weights x.caffemodel.h5` loads HDF5 weights."""
    param = lenet_solver_param(tmp_path, caffe_pb2.SolverParameter.HDF5)
    net = caffe.Net(param.net, caffe.TRAIN)
    h5 = str(tmp_path / "init.caffemodel.h5")
    net.save_hdf5(h5)
    param.max_iter = 1
    param.snapshot = 0
    param.snapshot_after_train = True
    solver_path = tmp_path / "solver.prototxt"
    caffe.write_solver_param(param, str(solver_path))
    result = CliRunner().invoke(main, ["train", "--solver", str(solver_path), "--weights", h5])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "snap" / "lenet_iter_1.caffemodel.h5").is_file()
    # and `--snapshot x.solverstate.h5` resumes from it
    param.max_iter = 2
    caffe.write_solver_param(param, str(solver_path))
    state = str(tmp_path / "snap" / "lenet_iter_1.solverstate.h5")
    result = CliRunner().invoke(main, ["train", "--solver", str(solver_path), "--snapshot",
                                       state])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "snap" / "lenet_iter_2.solverstate.h5", "r") as f:
        assert f["iter"][0] == 2


def test_without_h5py_the_errors_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # import h5py now fails
    net = shared_net(tmp_path)
    with pytest.raises(WeightsError, match=r'pip install "caffelite\[hdf5\]"'):
        net.save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    param = lenet_solver_param(tmp_path, caffe_pb2.SolverParameter.HDF5)
    with pytest.raises(caffe.SolverError, match=r"snapshot_format: HDF5: .*caffelite\[hdf5\]"):
        caffe.SGDSolver(param)
    assert not (tmp_path / "w.caffemodel.h5").exists()


def test_bvlc_caffemodel_through_hdf5(tmp_path):
    """BVLC's own LeNet weights: .caffemodel -> .caffemodel.h5 (every layer of the file a group)
    -> loaded by content into the deploy net, same outputs as the original file."""
    from conftest import LENET_BVLC, need_shared

    model = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    h5 = str(tmp_path / "lenet.caffemodel.h5")
    result = CliRunner().invoke(main, ["convert", str(model), h5])
    assert result.exit_code == 0, result.output
    original = caffe.io.load_caffemodel(str(model))
    with h5py.File(h5, "r") as f:
        assert set(f["data"]) == {layer.name for layer in original.layer}
        for layer in original.layer:
            for j, blob in enumerate(layer.blobs):
                np.testing.assert_array_equal(f[f"data/{layer.name}/{j}"][()],
                                              caffe.io.read_blob_array(blob))
    deploy = str(LENET_BVLC / "lenet.prototxt")
    a = caffe.Net(deploy, str(model), caffe.TEST)
    b = caffe.Net(deploy, caffe.TEST, weights=h5)
    x = np.random.default_rng(0).random(a.blobs["data"].shape).astype(np.float32)
    np.testing.assert_array_equal(a.forward(data=x)["prob"], b.forward(data=x)["prob"])


@pytest.mark.timeout(120)
def test_convert_solver_state_and_resume_exactly(tmp_path):
    """A binary snapshot's state converted to .solverstate.h5 (sidecar copied) resumes to the
    same weights as the original state."""
    param = lenet_solver_param(tmp_path, caffe_pb2.SolverParameter.BINARYPROTO)
    solver = caffe.SGDSolver(param)
    solver.step(2)
    _, state = solver.snapshot()
    h5 = str(tmp_path / "converted.solverstate.h5")
    result = CliRunner().invoke(main, ["convert", state, h5])
    assert result.exit_code == 0, result.output
    assert os.path.isfile(h5 + ".caffelite.json")
    with h5py.File(h5, "r") as f:
        assert f["iter"][0] == 2 and len(f["history"]) == len(solver.history)
    back = str(tmp_path / "back.solverstate")
    assert CliRunner().invoke(main, ["convert", h5, back]).exit_code == 0
    resumed = []
    for path in (state, h5, back):
        other = caffe.SGDSolver(param)
        other.restore(path)
        other.step(2)
        resumed.append([p.data.copy() for p in other.net.learnable_params])
    for a, b, c in zip(*resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    bad = CliRunner().invoke(main, ["convert", state, str(tmp_path / "x.caffemodel")])
    assert bad.exit_code == 2
