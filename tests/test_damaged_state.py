"""Damaged or inconsistent state is never loaded in silence: weights that do not cover the
net, NaN/Inf weights or history, a .solverstate with a negative iter or without weights, a
resume sidecar that does not fit its schema, a torn last line of the metrics file."""
import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from caffelite import Net
from caffelite.cli import main
from caffelite.errors import SolverError, WeightsError
from caffelite.formats.binary import load_caffemodel, save_caffemodel
from caffelite.proto import caffelite_pb2 as pb
from caffelite.solvers import Solver
from caffelite.solvers.sidecar import read_sidecar, sidecar_path
from caffelite.tools.metrics import MetricsWriter, read_metrics
from tests.solvers.nets import mnist_net, mnist_net_text, solver_param


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "caffelite" and r.levelno >= logging.WARNING]


def trained(tmp_path, iters=3):
    """A small MLP solver stepped `iters` times and snapshotted: (solver, model, state)."""
    solver = Solver(solver_param(mnist_net(dropout=False), momentum=0.9, max_iter=100,
                                 snapshot_prefix=str(tmp_path / "mlp"), test_iter=[1],
                                 test_interval=1000))
    solver.step(iters)
    model, state = solver.snapshot()
    return solver, model, state


def net_file(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(mnist_net_text(dropout=False))
    return str(path)


def truncated_copy(model, path, keep):
    """The .caffemodel cut at a layer boundary: only its first `keep` layers."""
    param = load_caffemodel(model)
    del param.layer[keep:]
    path.write_bytes(param.SerializeToString())
    return str(path)


# -- weights --------------------------------------------------------------------------------
def test_truncated_caffemodel_names_the_layers_that_got_nothing(tmp_path, caplog):
    _, model, _ = trained(tmp_path)
    names = [layer.name for layer in load_caffemodel(model).layer]
    cut = truncated_copy(model, tmp_path / "cut.caffemodel", names.index("ip1") + 1)
    net = Net(net_file(tmp_path), pb.TEST)
    before = net.params["ip2"][0].data.copy()
    assert net.copy_from(cut) == {"ip1"}
    assert any("got no weights" in w and "ip2" in w and "filler" in w
               for w in warnings_of(caplog))
    with pytest.raises(WeightsError, match=r"cut.caffemodel: 1 learnable layer.*ip2"):
        Net(net_file(tmp_path), pb.TEST).copy_from(cut, strict=True)
    with pytest.raises(WeightsError, match="ip2"):
        Net(net_file(tmp_path), pb.TEST, weights=cut, strict=True)
    np.testing.assert_array_equal(net.params["ip2"][0].data, before)  # the filler values


def test_strict_load_changes_nothing_when_it_refuses(tmp_path):
    _, model, _ = trained(tmp_path)
    cut = truncated_copy(model, tmp_path / "cut.caffemodel", 2)
    net = Net(net_file(tmp_path), pb.TEST)
    before = [blob.data.copy() for blob in net.learnable_params]
    with pytest.raises(WeightsError):
        net.copy_from(cut, strict=True)
    for blob, old in zip(net.learnable_params, before):
        np.testing.assert_array_equal(blob.data, old)


def test_caffelite_test_refuses_weights_that_miss_layers(tmp_path):
    _, model, _ = trained(tmp_path)
    cut = truncated_copy(model, tmp_path / "cut.caffemodel", 2)
    result = CliRunner().invoke(main, ["test", "--model", net_file(tmp_path),
                                       "--weights", cut, "--iterations", "1"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("caffelite:")]
    assert len(errors) == 1 and "got no weights" in errors[0] and "ip2" in errors[0]
    assert "Traceback" not in result.output
    # two files that together cover the net are fine
    full = CliRunner().invoke(main, ["test", "--model", net_file(tmp_path),
                                     "--weights", f"{cut},{model}", "--iterations", "1"])
    assert full.exit_code == 0, full.output


def test_file_layers_matching_nothing_are_named(tmp_path, caplog):
    _, model, _ = trained(tmp_path)
    param = load_caffemodel(model)
    param.layer[-1].name = "renamed_ip"
    extra = tmp_path / "extra.caffemodel"
    src = [layer for layer in param.layer if layer.name == "ip2"][0]
    odd = param.layer.add(name="fc_elsewhere", type="InnerProduct")
    odd.blobs.extend(src.blobs)
    extra.write_bytes(param.SerializeToString())
    Net(net_file(tmp_path), pb.TEST).copy_from(str(extra))
    assert any("match no layer" in w and "fc_elsewhere" in w for w in warnings_of(caplog))


def test_nan_and_inf_weights_are_named(tmp_path, caplog):
    solver, _, _ = trained(tmp_path)
    solver.net.params["ip1"][0].data[0, :3] = [np.nan, np.inf, -np.inf]
    bad = str(tmp_path / "nan.caffemodel")
    save_caffemodel(solver.net, bad)
    Net(net_file(tmp_path), pb.TEST).copy_from(bad)
    assert any("layer 'ip1' param 0 holds 3 NaN/infinite" in w for w in warnings_of(caplog))


# -- the .solverstate -------------------------------------------------------------------------
def rewrite_state(state_path, **fields):
    state = pb.SolverState()
    with open(state_path, "rb") as f:
        state.ParseFromString(f.read())
    for name, value in fields.items():
        if value is None:
            state.ClearField(name)
        else:
            setattr(state, name, value)
    with open(state_path, "wb") as f:
        f.write(state.SerializeToString())


def fresh_solver(tmp_path):
    return Solver(solver_param(mnist_net(dropout=False), momentum=0.9, max_iter=100,
                               snapshot_prefix=str(tmp_path / "again"), test_iter=[1],
                               test_interval=1000))


def test_negative_iter_is_refused(tmp_path):
    _, _, state = trained(tmp_path)
    rewrite_state(state, iter=-5)
    solver = fresh_solver(tmp_path)
    with pytest.raises(SolverError, match=r"iter is -5; a \.solverstate counts from 0"):
        solver.restore(state)
    assert solver.iter == 0


def test_state_without_learned_net_says_the_weights_are_not_restored(tmp_path, caplog):
    _, _, state = trained(tmp_path)
    rewrite_state(state, learned_net=None)
    solver = fresh_solver(tmp_path)
    solver.restore(state)
    assert solver.iter == 3
    assert any("names no weights file (learned_net)" in w and "weights are the net's own" in w
               for w in warnings_of(caplog))


def test_nan_history_is_named(tmp_path, caplog):
    solver, _, _ = trained(tmp_path)
    solver.history[0][...] = np.nan
    _, state = solver.snapshot()
    fresh_solver(tmp_path).restore(state)
    assert any("history blob 0 (ip1[0])" in w and "NaN/infinite" in w
               for w in warnings_of(caplog))


# -- the resume sidecar -----------------------------------------------------------------------
def edit(record, path, value):
    """Set a dotted path (with [k] for list items) of a sidecar record."""
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "")
            .split(".")]
    target = record
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


SIDECAR_DAMAGE = [
    ("smoothed_loss", "0.3", "field 'smoothed_loss' must be an object"),
    ("smoothed_loss.value", "0.3", "smoothed_loss.value' must be a finite number"),
    ("smoothed_loss.losses", None, "smoothed_loss.losses' must be a list"),
    ("smoothed_loss.start_iter", "x", "smoothed_loss.start_iter' must be a whole number"),
    ("train_net", [], "train_net' must be an object"),
    ("train_net.rng.net.state.state", -7, "train_net.rng.net.state.state' must be >= 0"),
    ("train_net.layer_states.mnist.cursor", -5, "cursor' must be a whole number >= 0"),
    ("train_net.layer_states.mnist.cursor", 10 ** 12, "past the"),
    ("iter", "3", "field 'iter' must be a whole number"),
    ("test_nets", {}, "test_nets' must be a list"),
]


@pytest.mark.parametrize("field, value, message", SIDECAR_DAMAGE,
                         ids=[f"{d[0]}={d[1]!r}" for d in SIDECAR_DAMAGE])
def test_damaged_sidecar_falls_back_to_caffes_resume_naming_the_field(tmp_path, caplog, field,
                                                                      value, message):
    _, _, state = trained(tmp_path)
    with open(sidecar_path(state)) as f:
        record = json.load(f)
    edit(record, field, value)
    with open(sidecar_path(state), "w") as f:
        json.dump(record, f)
    solver = fresh_solver(tmp_path)
    cursor = solver.net.layer_dict["mnist"].get_state()
    solver.restore(state)
    assert solver.iter == 3  # the state itself is restored, as Caffe restores it
    assert solver.net.layer_dict["mnist"].get_state() == cursor  # data from the start
    found = [w for w in warnings_of(caplog) if "resume sidecar ignored" in w]
    assert found and message in found[0] and "resuming as Caffe does" in found[0], found
    solver.step(2)  # and it trains on


def test_intact_sidecar_still_restores_exactly(tmp_path, caplog):
    _, _, state = trained(tmp_path)
    solver = fresh_solver(tmp_path)
    solver.restore(state)
    assert solver.net.layer_dict["mnist"].get_state() == \
        read_sidecar(state)["train_net"]["layer_states"]["mnist"]
    assert not [w for w in warnings_of(caplog) if "sidecar" in w]


@pytest.mark.parametrize("array", [{"__ndarray__": "AAAA", "dtype": "garbage", "shape": [1]},
                                   {"__ndarray__": "AAAA", "shape": [1]},
                                   {"__ndarray__": "AAAA", "dtype": "<f4", "shape": "x"}],
                         ids=["bad dtype", "no dtype", "bad shape"])
def test_an_undecodable_array_in_the_sidecar_is_one_clear_error(tmp_path, array):
    _, _, state = trained(tmp_path)
    with open(sidecar_path(state)) as f:
        record = json.load(f)
    record["extra"] = array
    with open(sidecar_path(state), "w") as f:
        json.dump(record, f)
    with pytest.raises(SolverError, match="unreadable resume sidecar .*delete it to resume as "
                                          "Caffe does"):
        fresh_solver(tmp_path).restore(state)


# -- the metrics file -------------------------------------------------------------------------
def test_a_torn_last_metrics_line_is_read_past_and_cut_before_appending(tmp_path, caplog):
    path = tmp_path / "run.metrics.jsonl"
    path.write_text('{"phase": "train", "iter": 0, "seconds": 1.5, "loss": 2.3}\n'
                    '{"phase": "train", "iter": 100, "seco')
    assert [r["iter"] for r in read_metrics(path)] == [0]
    assert MetricsWriter.last_seconds(path) == 1.5
    writer = MetricsWriter(path, start_seconds=1.5)
    writer.write("train", 100, {"loss": 0.5})
    assert [r["iter"] for r in read_metrics(path)] == [0, 100]
    assert any("torn last line" in w for w in warnings_of(caplog))


def test_a_malformed_line_inside_the_metrics_file_is_still_an_error(tmp_path):
    path = tmp_path / "run.metrics.jsonl"
    path.write_text('{"phase": "train"\n{"phase": "train", "iter": 1}\n')
    with pytest.raises(Exception, match=r"run.metrics.jsonl:1: not a caffelite metrics line"):
        read_metrics(path)
