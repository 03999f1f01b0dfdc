"""Snapshots in Caffe's format and exact resume: N iterations straight equal K + restore + N−K
bit for bit (weights, history, logged losses), with data cursors and dropout's random stream
carried by the sidecar; misuse gets errors that say what to pass."""
import os
import shutil

import numpy as np
import pytest

from caffelite.errors import SolverError
from caffelite.proto import caffelite_pb2 as pb
from caffelite.solvers import Solver
from tests.solvers.nets import (
    SOLVER_SETTINGS,
    SOLVER_TYPES,
    capture,
    messages,
    mnist_net,
    params_of,
    solver_param,
)

K, N = 4, 8


def make(tmp_path, solver_type, name, hidden=16, **extra):
    fields = {"type": solver_type, **SOLVER_SETTINGS[solver_type],
              "base_lr": 1.0 if solver_type == "AdaDelta" else 0.01, "weight_decay": 5e-4,
              "lr_policy": "multistep", "gamma": 0.5, "stepvalue": [3, 5], "test_iter": [2],
              "test_interval": 3, "average_loss": 3, "display": 1, "max_iter": N,
              "snapshot_prefix": str(tmp_path / name / "mlp")}
    fields.update(extra)
    return Solver(solver_param(mnist_net(hidden=hidden), **fields))


def display_lines(lines, first):
    """Display, lr and test lines from iteration `first` on (timings stripped)."""
    kept = []
    for line in lines:
        if " iter/s, " in line:
            line = line.split(" (")[0] + " loss" + line.split("loss")[-1]
        if any(key in line for key in (" loss = ", "lr = ", "net output")) and \
                not line.startswith("Snapshotting"):
            kept.append(line)
    start = next(i for i, line in enumerate(kept) if line.startswith(f"Iteration {first} "))
    return kept[start:]


@pytest.mark.parametrize("solver_type", SOLVER_TYPES)
def test_resume_is_bit_identical(tmp_path, solver_type, caplog):
    capture(caplog)
    straight = make(tmp_path, solver_type, "straight")
    straight.step(N)
    straight_lines = display_lines(messages(caplog), K)
    caplog.clear()

    first = make(tmp_path, solver_type, "first")
    first.step(K)
    _, state = first.snapshot()
    resumed = make(tmp_path, solver_type, "resumed")
    resumed.restore(state)
    assert resumed.iter == K
    resumed.step(N - K)

    assert resumed.iter == straight.iter == N
    assert resumed.current_step == straight.current_step == 2
    for a, b in zip(params_of(straight), params_of(resumed)):
        assert np.array_equal(a, b)
    assert len(resumed.history) == len(straight.history)
    for a, b in zip(straight.history, resumed.history):
        assert np.array_equal(a, b)
    assert resumed.test_results == straight.test_results  # the test at 6 read the same digits
    # the smoothed loss goes on across the restart, so the logs agree line for line
    assert display_lines(messages(caplog), K) == straight_lines


@pytest.mark.parametrize("solver_type", ["SGD", "Adam"])
def test_solve_resume_writes_identical_files(tmp_path, solver_type):
    straight = make(tmp_path, solver_type, "straight", snapshot=K)
    straight.solve()
    prefix = tmp_path / "straight" / "mlp"
    resumed = make(tmp_path, solver_type, "resumed", snapshot=K)
    resumed.solve(resume=f"{prefix}_iter_{K}.solverstate")
    other = tmp_path / "resumed" / "mlp"
    model_a = open(f"{prefix}_iter_{N}.caffemodel", "rb").read()
    model_b = open(f"{other}_iter_{N}.caffemodel", "rb").read()
    assert model_a == model_b
    state_a, state_b = (pb.SolverState.FromString(open(f"{p}_iter_{N}.solverstate", "rb").read())
                        for p in (prefix, other))
    assert state_a.iter == state_b.iter == N
    assert [h.SerializeToString() for h in state_a.history] == \
        [h.SerializeToString() for h in state_b.history]
    assert state_b.learned_net == f"{other}_iter_{N}.caffemodel"


def test_resume_without_sidecar_is_caffes_resume(tmp_path):
    # Caffe saves neither data cursors nor random state: without the sidecar the run goes on
    # from the first batch with fresh dropout masks, so it differs from the straight run.
    straight = make(tmp_path, "SGD", "straight")
    straight.step(N)
    first = make(tmp_path, "SGD", "first")
    first.step(K)
    _, state = first.snapshot()
    os.unlink(state + ".caffelite.json")
    resumed = make(tmp_path, "SGD", "resumed")
    resumed.restore(state)
    for a, b in zip(first.history, resumed.history):
        assert np.array_equal(a, b)
    for a, b in zip(params_of(first), params_of(resumed)):
        assert np.array_equal(a, b)
    resumed.step(N - K)
    assert not np.array_equal(params_of(straight)[0], params_of(resumed)[0])


def test_snapshot_files_are_caffes_format(tmp_path):
    solver = make(tmp_path, "Adam", "s", snapshot_diff=True)
    solver.step(4)  # the multistep step at iteration 3 is in current_step
    model, state = solver.snapshot()
    prefix = tmp_path / "s" / "mlp"
    assert (model, state) == (f"{prefix}_iter_4.caffemodel", f"{prefix}_iter_4.solverstate")
    assert sorted(os.listdir(prefix.parent)) == [  # no temporary files left behind
        "mlp_iter_4.caffemodel", "mlp_iter_4.solverstate", "mlp_iter_4.solverstate.caffelite.json"]
    parsed = pb.SolverState.FromString(open(state, "rb").read())
    assert parsed.iter == 4 and parsed.current_step == 1 and parsed.learned_net == model
    assert len(parsed.history) == 2 * len(solver.learnable_params)  # Adam: m block, then v block
    for proto, history in zip(parsed.history, solver.history):
        assert tuple(proto.shape.dim) == history.shape
        assert np.array_equal(np.asarray(proto.data, np.float32).reshape(history.shape), history)
    net = pb.NetParameter.FromString(open(model, "rb").read())
    layers = {layer.name: layer for layer in net.layer}
    weights = layers["ip1"].blobs[0]
    assert tuple(weights.shape.dim) == solver.net.params["ip1"][0].shape
    assert np.array_equal(np.asarray(weights.data, np.float32),
                          solver.net.params["ip1"][0].data.ravel())
    assert np.array_equal(np.asarray(weights.diff, np.float32),
                          solver.net.params["ip1"][0].diff.ravel())


def test_learned_net_found_beside_a_moved_state(tmp_path):
    solver = make(tmp_path, "SGD", "s")
    solver.step(2)
    solver.snapshot()
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "s"), str(moved))  # the recorded path no longer exists
    resumed = make(tmp_path, "SGD", "r")
    resumed.restore(str(moved / "mlp_iter_2.solverstate"))
    for a, b in zip(params_of(solver), params_of(resumed)):
        assert np.array_equal(a, b)


def test_relative_learned_net_prefers_the_file_beside_the_state(tmp_path, monkeypatch):
    # trained in run/ with a relative prefix, then moved; run/ later got another model of the
    # same name: the one written with the state is the one to load
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    solver = make(tmp_path, "SGD", "unused", snapshot_prefix="mlp")
    solver.step(2)
    model, state = solver.snapshot()
    assert model == "mlp_iter_2.caffemodel"
    assert pb.SolverState.FromString(open(state, "rb").read()).learned_net == model
    shutil.move(str(run), str(tmp_path / "kept"))
    run.mkdir()
    monkeypatch.chdir(run)  # the old cwd moved along with the directory
    other = make(tmp_path, "SGD", "unused", random_seed=99)
    other.net.save(str(run / "mlp_iter_2.caffemodel"))
    resumed = make(tmp_path, "SGD", "r")
    resumed.restore(str(tmp_path / "kept" / "mlp_iter_2.solverstate"))
    for a, b in zip(params_of(solver), params_of(resumed)):
        assert np.array_equal(a, b)


# -- misuse -----------------------------------------------------------------------------------
@pytest.fixture
def snapshots(tmp_path):
    """Iteration-2 snapshots of an SGD, an Adam and a Nesterov run."""
    paths = {}
    for solver_type in ("SGD", "Adam", "Nesterov"):
        solver = make(tmp_path, solver_type, solver_type)
        solver.step(2)
        paths[solver_type] = solver.snapshot()
    return paths


def test_caffemodel_passed_as_state(tmp_path, snapshots):
    solver = make(tmp_path, "SGD", "r")
    model = snapshots["SGD"][0]
    with pytest.raises(SolverError, match=r"is a \.caffemodel; --snapshot needs the \.solverstate"):
        solver.restore(model)
    renamed = str(tmp_path / "renamed.solverstate")
    shutil.copy(model, renamed)  # recognised by content too
    with pytest.raises(SolverError, match=r"is a \.caffemodel.*\.solverstate written beside it"):
        solver.restore(renamed)


def test_missing_state_file(tmp_path):
    with pytest.raises(SolverError, match="snapshot file .*nope.solverstate' not found"):
        make(tmp_path, "SGD", "r").restore(str(tmp_path / "nope.solverstate"))


def test_state_of_another_solver_type(tmp_path, snapshots):
    sgd = make(tmp_path, "SGD", "r")
    with pytest.raises(SolverError, match="written by the Adam solver; this is the SGD solver"):
        sgd.restore(snapshots["Adam"][1])
    # same history count, other rule: Caffe trains on silently (BVLC/caffe#5581); we do not
    with pytest.raises(SolverError, match="written by the Nesterov solver.*type: \"Nesterov\""):
        sgd.restore(snapshots["Nesterov"][1])
    os.unlink(snapshots["Adam"][1] + ".caffelite.json")  # a state as Caffe writes it
    with pytest.raises(SolverError, match="this state has 8 history blobs, the SGD solver needs 4"):
        sgd.restore(snapshots["Adam"][1])
    assert sgd.iter == 0  # nothing was changed


def test_state_of_another_net(tmp_path, snapshots):
    wider = make(tmp_path, "SGD", "wide", hidden=32)
    with pytest.raises(SolverError, match=r"history blob 0 has shape \(16, 784\).*ip1\[0\]"):
        wider.restore(snapshots["SGD"][1])


def test_missing_hdf5_state(tmp_path):
    with pytest.raises(SolverError, match="x_iter_2.solverstate.h5' not found"):
        make(tmp_path, "SGD", "r").restore(str(tmp_path / "x_iter_2.solverstate.h5"))


def test_truncated_state(tmp_path, snapshots):
    data = open(snapshots["SGD"][1], "rb").read()
    broken = tmp_path / "broken.solverstate"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(SolverError, match=r"not a valid \.solverstate \(truncated\?\)"):
        make(tmp_path, "SGD", "r").restore(str(broken))
