"""Resuming the .solverstate BVLC Caffe wrote after 5,000 LeNet iterations: weights and SGD
history load (its learned_net is a relative path from another machine), training continues at
iteration 5000 with the loss of a trained net and Caffe's learning rate."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from caffelite.errors import SolverError
from caffelite.formats.config import read_net_param, read_solver_param
from caffelite.proto import caffelite_pb2 as pb
from caffelite.solvers import SGDSolver, Solver
from tests.conftest import LENET_BVLC, ROOT, need_shared
from tests.solvers.nets import capture, messages

STATE = LENET_BVLC / "lenet_iter_5000.solverstate"
MODEL = LENET_BVLC / "lenet_iter_5000.caffemodel"


def lenet_on_bundled_mnist():
    """BVLC's own lenet_train_test.prototxt with its LMDB sources swapped for the bundled
    sample (TRAIN = the first 8,000 digits, TEST = the last 2,000)."""
    net = read_net_param(need_shared(LENET_BVLC / "lenet_train_test.prototxt"))
    for layer in net.layer:
        if layer.type == "Data":
            split = "train" if layer.include[0].phase == pb.TRAIN else "test"
            layer.data_param.source = f"caffelite://mnist10k/{split}"
            layer.data_param.ClearField("backend")
    return net


def bvlc_solver(tmp_path, **fields):
    """BVLC's lenet_solver.prototxt (SGD, inv, momentum .9) around that net."""
    param = read_solver_param(need_shared(LENET_BVLC / "lenet_solver.prototxt"))
    param.ClearField("net")
    param.net_param.CopyFrom(lenet_on_bundled_mnist())
    param.snapshot_prefix = str(tmp_path / "lenet")
    for name, value in fields.items():
        if name == "test_iter":
            param.ClearField("test_iter")
            param.test_iter.extend(value)
        else:
            setattr(param, name, value)
    return Solver(param)


def inv_rate(it):
    return 0.01 * (1 + np.float32(1e-4) * it) ** -0.75


def test_bvlc_state_resumes_at_5000(tmp_path, caplog):
    need_shared(STATE)
    capture(caplog)
    solver = bvlc_solver(tmp_path, display=1, test_interval=0, test_iter=[])
    assert type(solver) is SGDSolver
    solver.restore(str(STATE))  # learned_net "examples/mnist/..." is found beside the state
    assert solver.iter == 5000 and solver.current_step == 0
    state = pb.SolverState.FromString(STATE.read_bytes())
    assert len(solver.history) == len(state.history) == 8
    for history, proto in zip(solver.history, state.history):
        assert np.array_equal(history, np.asarray(proto.data, np.float32).reshape(history.shape))
    trained = {layer.name: layer for layer in pb.NetParameter.FromString(MODEL.read_bytes()).layer}
    for name in ("conv1", "conv2", "ip1", "ip2"):
        for blob, proto in zip(solver.net.params[name], trained[name].blobs):
            assert np.array_equal(blob.data.ravel(), np.asarray(proto.data, np.float32))
    losses = []
    solver.add_callback(type("Losses", (), {
        "on_display": lambda self, it, loss, outputs, lr: losses.append((it, loss, lr))})())
    solver.step(2)
    assert solver.iter == 5002
    assert [it for it, _, _ in losses] == [5000, 5001]
    assert losses[0][1] < 0.3  # a trained net's loss (a fresh LeNet starts near 2.3)
    assert losses[0][2] == pytest.approx(inv_rate(5000), rel=1e-6)
    lines = messages(caplog)
    assert any(line.startswith("Iteration 5000 (") for line in lines)
    assert any(line.startswith("Iteration 5000, lr = 0.00737") for line in lines)


def test_repo_lenet_solver_resumes_bvlc_state(tmp_path, monkeypatch):
    """configs/lenet/lenet_solver.prototxt resumes BVLC's state: the test at 5000 scores a
    trained net on the 2,000 bundled test digits."""
    need_shared(STATE)
    config = ROOT / "configs" / "lenet" / "lenet_solver.prototxt"
    if not config.exists():
        pytest.fail(f"{config} is missing")
    monkeypatch.chdir(tmp_path)  # its relative snapshot_prefix writes here
    solver = Solver(str(config))
    solver.restore(str(STATE))
    solver.step(1)
    assert solver.iter == 5001
    assert solver.test_results[0]["accuracy"] > 0.98


def test_bvlc_state_copied_away_from_its_caffemodel(tmp_path):
    need_shared(STATE)
    lonely = tmp_path / "lenet_iter_5000.solverstate"
    shutil.copy(STATE, lonely)
    solver = bvlc_solver(tmp_path, test_interval=0, test_iter=[])
    with pytest.raises(SolverError, match="weights file 'examples/mnist/lenet_iter_5000"
                                          r".caffemodel' was not found.*put the \.caffemodel"):
        solver.restore(str(lonely))


def test_bvlc_caffemodel_passed_as_state(tmp_path):
    need_shared(MODEL)
    solver = bvlc_solver(tmp_path, test_interval=0, test_iter=[])
    with pytest.raises(SolverError, match=r"lenet_iter_5000\.caffemodel is a \.caffemodel"):
        solver.restore(str(MODEL))
    assert Path(MODEL).exists() and solver.iter == 0
