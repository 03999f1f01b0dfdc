"""caffelite inspect: content detection, summaries of every file kind, one-line errors."""
import shutil
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, LENET_BVLC, ROOT, need_shared
from google.protobuf import text_format

from caffelite.cli import main
from caffelite.errors import CaffeliteError, WeightsError
from caffelite.formats.binary import HDF5_MAGIC, write_binaryproto
from caffelite.formats.config import write_net_param, write_solver_param
from caffelite.proto import caffelite_pb2 as pb
from caffelite.solvers import sidecar
from caffelite.tools.inspect import detect, inspect_file

LENET_CONFIGS = ROOT / "configs" / "lenet"
LENET_PARAMS = 431_080  # 20*25+20 + 50*20*25+50 + 500*800+500 + 10*500+10


def run(*args):
    return CliRunner().invoke(main, ["inspect", *map(str, args)])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args):
    """A user error: exit status 2, one line 'caffelite: error: ...', no traceback."""
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("caffelite: error: "), result.output
    return lines[0]


def model_file():
    return need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")


def state_file():
    return need_shared(LENET_BVLC / "lenet_iter_5000.solverstate")


# -- real Caffe files ------------------------------------------------------------------------
def test_bvlc_caffemodel_layers_blob_shapes_and_total():
    out = ok(model_file())
    assert ".caffemodel" in out.splitlines()[0] and 'net "LeNet"' in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert rows["conv1"][1:] == ["Convolution", "20x1x5x5,", "20", "520"]
    assert rows["conv2"][1:] == ["Convolution", "50x20x5x5,", "50", "25,050"]
    assert rows["ip1"][1:] == ["InnerProduct", "500x800,", "500", "400,500"]
    assert rows["ip2"][1:] == ["InnerProduct", "10x500,", "10", "5,010"]
    assert rows["mnist"][1:] == ["Data", "-", "0"]
    assert rows["loss"][1] == "SoftmaxWithLoss"
    assert "9 layers, 4 with parameters" in out
    assert f"total params: {LENET_PARAMS:,}" in out
    assert "--snapshot needs the matching .solverstate" in out
    assert "lenet_iter_5000.solverstate, beside it" in out


def test_bvlc_solverstate_iter_history_and_learned_net_fallback():
    out = ok(state_file())
    assert ".solverstate" in out.splitlines()[0]
    assert "iter: 5,000" in out
    # learned_net was written relative to the Caffe root; the file beside the state is used
    assert "learned_net: examples/mnist/lenet_iter_5000.caffemodel" in out
    assert f"using {LENET_BVLC / 'lenet_iter_5000.caffemodel'} beside the state" in out
    assert "current_step: 0" in out
    assert f"history: 8 blobs, {LENET_PARAMS:,} values; one per parameter blob (8)" in out
    assert "history shapes: 20x1x5x5, 20, 50x20x5x5, 50, 500x800, 500, 10x500, 10" in out
    assert "sidecar: none" in out
    assert f"resume with: caffelite train SOLVER --snapshot {state_file()}" in out


def test_learned_net_missing_is_reported(tmp_path):
    copy = tmp_path / "lonely.solverstate"
    shutil.copy(state_file(), copy)
    out = ok(copy)
    assert "(not found, nor beside the state)" in out
    assert "history: 8 blobs" in out


def test_renamed_files_are_recognised_by_content(tmp_path):
    as_state = tmp_path / "weights.solverstate"
    shutil.copy(model_file(), as_state)
    out = ok(as_state)
    assert out.splitlines()[0].startswith(f"{as_state}: .caffemodel")
    assert "named like a .solverstate file, but the content is a .caffemodel" in out
    assert f"total params: {LENET_PARAMS:,}" in out

    as_model = tmp_path / "state.caffemodel"
    shutil.copy(state_file(), as_model)
    out = ok(as_model)
    assert out.splitlines()[0].startswith(f"{as_model}: .solverstate")
    assert "iter: 5,000" in out

    as_binary = tmp_path / "net.caffemodel"
    shutil.copy(need_shared(LENET_BVLC / "lenet.prototxt"), as_binary)
    out = ok(as_binary)
    assert out.splitlines()[0].startswith(f"{as_binary}: net config (prototxt)")
    assert f"total params: {LENET_PARAMS:,}" in out

    no_name = tmp_path / "mean"
    write_binaryproto(np.ones((1, 3, 2, 2), np.float32), tmp_path / "m.binaryproto")
    shutil.copy(tmp_path / "m.binaryproto", no_name)
    assert detect(no_name) == "binaryproto"
    assert detect(as_state) == "caffemodel" and detect(as_model) == "solverstate"


# -- configs ---------------------------------------------------------------------------------
def test_deploy_net_is_built_with_top_shapes_and_params():
    out = ok(need_shared(LENET_BVLC / "lenet.prototxt"))
    assert out.splitlines()[0].endswith('net config (prototxt), net "LeNet"')
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    # conv 5x5 valid: 28 -> 24; pool 2x2/2: 24 -> 12; conv: 12 -> 8; pool: 8 -> 4
    assert rows["conv1"][-2:] == ["64x20x24x24", "520"]
    assert rows["pool1"][-2:] == ["64x20x12x12", "0"]
    assert rows["conv2"][-2:] == ["64x50x8x8", "25,050"]
    assert rows["ip1"][-2:] == ["64x500", "400,500"]
    assert rows["relu1"][1:4] == ["ReLU", "ip1", "->"]
    assert rows["prob"][-2:] == ["64x10", "0"]
    assert f"total params: {LENET_PARAMS:,}" in out


def test_train_test_net_in_test_phase_with_data_layer():
    out = ok(LENET_CONFIGS / "lenet_train_test.prototxt")
    assert "11 layers; 10 in phase TEST; not in TEST: mnist (TRAIN)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert rows["mnist"][-3:] == ["100x1x28x28,", "100", "0"]  # the TEST batch
    assert rows["accuracy"][-2:] == ["scalar", "0"] and rows["loss"][-2:] == ["scalar", "0"]
    assert not any("split" in line for line in out.splitlines())  # Net's own Split layers
    assert f"total params: {LENET_PARAMS:,}" in out


def test_net_that_does_not_build_is_listed_without_shapes():
    out = ok(need_shared(EXAMPLES / "mnist" / "lenet_train_test.prototxt"))
    assert "shapes unavailable: the TEST net does not build here" in out
    assert "examples/mnist/mnist_test_lmdb" in out
    assert any(line.split()[:2] == ["accuracy", "Accuracy"] for line in out.splitlines())
    assert "total params" not in out


def test_solver_configs_in_each_syntax(tmp_path):
    out = ok(need_shared(EXAMPLES / "mnist" / "lenet_solver_adam.prototxt"))
    assert out.splitlines()[0].endswith("solver config (prototxt)")
    assert "type: Adam" in out and "lr_policy: fixed" in out
    assert "base_lr: 0.001" in out and "max_iter: 10,000" in out
    assert "net: examples/mnist/lenet_train_test.prototxt" in out
    assert "train with: caffelite train" in out

    out = ok(LENET_CONFIGS / "lenet.yaml")
    assert out.splitlines()[0].endswith("solver config (yaml)")
    assert "lr_policy: inv (gamma 0.0001, power 0.75)" in out
    assert 'net_param: inline net "LeNet" with 11 layers' in out

    # A V1-era solver_type, written as JSON under a name that says nothing.
    solver = pb.SolverParameter(train_net="a.prototxt", base_lr=0.1, max_iter=7,
                                lr_policy="step", gamma=0.5, stepsize=3,
                                solver_type=pb.SolverParameter.NESTEROV)
    solver.test_net.append("b.prototxt")
    write_solver_param(solver, tmp_path / "s.json")
    shutil.move(tmp_path / "s.json", tmp_path / "s.txt")
    out = ok(tmp_path / "s.txt")
    assert out.splitlines()[0].endswith("solver config (json)")
    assert "type: Nesterov" in out and "lr_policy: step (gamma 0.5, stepsize 3)" in out
    assert "train_net: a.prototxt (not found)" in out and "test_net: b.prototxt" in out


def test_yaml_and_json_nets(tmp_path):
    net = text_format.Parse("""
        name: "tiny"
        layer { name: "data" type: "Input" top: "data"
                input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param { num_output: 4 } }""", pb.NetParameter())
    for ext in ("yaml", "json"):
        write_net_param(net, tmp_path / f"tiny.{ext}")
        shutil.copy(tmp_path / f"tiny.{ext}", tmp_path / f"tiny_{ext}.prototxt")
        for path in (tmp_path / f"tiny.{ext}", tmp_path / f"tiny_{ext}.prototxt"):
            out = ok(path)
            assert out.splitlines()[0].endswith(f'net config ({ext}), net "tiny"')
            assert "2x4" in out and "total params: 16 " in out  # 4x3 weights + 4 biases


# -- binaryproto ------------------------------------------------------------------------------
def test_binaryproto_shape_and_statistics(tmp_path):
    mean = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) / 4
    write_binaryproto(mean, tmp_path / "m.binaryproto")
    out = ok(tmp_path / "m.binaryproto")
    assert "shape: 2x3x4 (24 values, float32)" in out
    assert "min 0   mean 2.875   max 5.75" in out  # (0..23)/4: mean 11.5/4


def test_legacy_binaryproto_header_and_channel_means(tmp_path):
    data = np.array([[1, 2, 3, 6], [10, 10, 10, 10], [0, 0, 0, 4]], np.float32)
    blob = pb.BlobProto(num=1, channels=3, height=2, width=2)
    blob.data.extend(data.ravel())
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    out = ok(tmp_path / "mean.binaryproto")
    assert "legacy num/channels/height/width header" in out.splitlines()[0]
    assert "shape: 1x3x2x2 (12 values, float32)" in out
    assert "per-channel mean: 3 10 1" in out
    assert "min 0   mean 4.66667   max 10" in out


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_caffemodel_and_solverstate(tmp_path, fraction):
    for source in (model_file(), state_file()):
        raw = source.read_bytes()
        cut = tmp_path / source.name
        cut.write_bytes(raw[:int(len(raw) * fraction)])
        line = fails(cut)
        assert f"{cut}: not a readable {source.suffix}: truncated or corrupt" in line


def test_garbage_empty_missing_and_bad_text(tmp_path):
    garbage = tmp_path / "x.caffemodel"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    assert "not a readable .caffemodel: truncated or corrupt" in fails(garbage)
    unnamed = tmp_path / "x.bin"
    unnamed.write_bytes(garbage.read_bytes())
    assert "not a recognised file (5,000 bytes of binary data)" in fails(unnamed)
    (tmp_path / "empty.solverstate").write_bytes(b"")
    assert "empty file" in fails(tmp_path / "empty.solverstate")
    assert "no such file" in fails(tmp_path / "nope.caffemodel")
    (tmp_path / "typo.prototxt").write_text('name: "n"\nlayer { name: "a" typ: "ReLU" }\n')
    line = fails(tmp_path / "typo.prototxt")
    assert "typ" in line and "type" in line and "typo.prototxt" in line


def test_blob_with_wrong_value_count_is_corrupt(tmp_path):
    net = pb.NetParameter(name="n")
    layer = net.layer.add(name="ip", type="InnerProduct")
    blob = layer.blobs.add()
    blob.shape.dim.extend([2, 2])
    blob.data.extend([1.0, 2.0, 3.0])
    (tmp_path / "bad.caffemodel").write_bytes(net.SerializeToString())
    line = fails(tmp_path / "bad.caffemodel")
    assert "layer 'ip' blob 0 has shape [2, 2] but 3 values: corrupt file" in line


# -- snapshots written by caffelite (sidecar) --------------------------------------------------
def test_caffelite_snapshot_with_sidecar(tmp_path):
    from caffelite.solvers import get_solver

    net = text_format.Parse("""
        name: "reg"
        layer { name: "data" type: "DummyData" top: "x" top: "y"
                dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
                                   data_filler { type: "gaussian" }
                                   data_filler { type: "gaussian" } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
                inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
    """, pb.NetParameter())
    param = pb.SolverParameter(type="Adam", base_lr=0.01, lr_policy="fixed", max_iter=3,
                               display=0, random_seed=1, snapshot_after_train=False,
                               snapshot_prefix=str(tmp_path / "reg"))
    param.net_param.CopyFrom(net)
    solver = get_solver(param)
    solver.step(3)
    model_path, state_path = solver.snapshot()
    out = ok(state_path)
    assert "iter: 3" in out and f"learned_net: {model_path} (found)" in out
    assert "history: 4 blobs, 16 values; two per parameter blob (2): Adam or AdaDelta" in out
    assert "history shapes: 2x3, 2, 2x3, 2" in out
    assert "sidecar (exact resume): solver Adam, iter 3, lr 0.01" in out
    out = ok(model_path)
    assert "ip     InnerProduct" in out and "2x3, 2" in out and "total params: 8 " in out
    assert f"{state_path}, beside it" in out
    # a damaged sidecar does not hide the state
    (tmp_path / (state_path.split("/")[-1] + sidecar.SIDECAR_SUFFIX)).write_text("{")
    assert "sidecar: unreadable" in ok(state_path)


# -- HDF5 -------------------------------------------------------------------------------------
def test_hdf5_without_h5py(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py raises ImportError
    path = tmp_path / "w.caffemodel.h5"
    path.write_bytes(HDF5_MAGIC + bytes(600))
    out = ok(path)
    assert out.splitlines()[0] == f"{path}: HDF5 file"
    assert "summarising HDF5 needs h5py: pip install h5py" in out
    renamed = tmp_path / "w.solverstate"  # the signature decides, not the name
    shutil.copy(path, renamed)
    assert detect(renamed) == "hdf5"


class _FakeFile(dict):
    """h5py.File's read interface over nested dicts of arrays (groups have keys())."""

    def __init__(self, tree):
        super().__init__(tree)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_h5py(tree):
    return types.SimpleNamespace(File=lambda path, mode: _FakeFile(tree))


def test_hdf5_snapshot_layouts(tmp_path, monkeypatch):
    """Caffe's HDF5 layouts: /data/<layer>/<i>; /iter, /current_step, /learned_net,
    /history/<i> (read through h5py's File/Group/Dataset interface)."""
    path = tmp_path / "s.h5"
    path.write_bytes(HDF5_MAGIC + bytes(100))
    weights = {"data": {"conv1": {"0": np.zeros((20, 1, 5, 5)), "1": np.zeros(20)},
                        "pool1": {}, "ip": {"1": np.zeros(10), "0": np.zeros((10, 50))}}}
    monkeypatch.setitem(sys.modules, "h5py", _fake_h5py(weights))
    out = ok(path)
    assert "HDF5 .caffemodel.h5" in out.splitlines()[0]
    assert any(line.split() == ["conv1", "20x1x5x5,", "20", "520"] for line in out.splitlines())
    assert any(line.split() == ["ip", "10x50,", "10", "510"] for line in out.splitlines())
    assert "total params: 1,030" in out

    state = {"iter": np.array([700], np.int32), "current_step": np.array([2], np.int32),
             "learned_net": np.array(b"snap_iter_700.caffemodel.h5"),
             "history": {str(i): np.zeros(s) for i, s in enumerate([(3, 2), (3,), (4,)])}}
    monkeypatch.setitem(sys.modules, "h5py", _fake_h5py(state))
    out = ok(path)
    assert "HDF5 .solverstate.h5" in out.splitlines()[0]
    assert "iter: 700" in out and "current_step: 2" in out
    assert "learned_net: snap_iter_700.caffemodel.h5" in out
    assert "history: 3 blobs, 13 values" in out and "history shapes: 3x2, 3, 4" in out


def test_real_h5py_caffemodel(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py not installed (optional HDF5 support)")
    path = tmp_path / "w.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip/0", data=np.zeros((3, 4), np.float32))
        f.create_dataset("data/ip/1", data=np.zeros(3, np.float32))
        f.create_group("data/relu")
    out = ok(path)
    assert "3x4, 3" in out and "total params: 15" in out


def test_inspect_file_api_raises_caffelite_errors(tmp_path):
    (tmp_path / "x.binaryproto").write_bytes(b"\x08\x01\x10")
    with pytest.raises(WeightsError, match="not a readable .binaryproto"):
        inspect_file(tmp_path / "x.binaryproto")
    with pytest.raises(CaffeliteError):
        detect(tmp_path / "missing")
