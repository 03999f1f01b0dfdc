"""The loop of Caffe's Solver::Step/Solve: testing schedule, display lines parse_log.py reads,
average_loss, clipping, regularisation, snapshots schedule, test nets, seeds, errors."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
from caffelite.errors import SolverError
from caffelite.proto import caffelite_pb2 as pb
from caffelite.solvers import AdamSolver, SGDSolver, Solver, get_solver
from tests.solvers.nets import (
    PARSE_LOG_ITERATION,
    PARSE_LOG_LR,
    PARSE_LOG_TEST,
    PARSE_LOG_TRAIN,
    capture,
    least_squares_net,
    messages,
    mnist_net,
    params_of,
    solver_param,
    write_regression_data,
)
from tests.solvers.test_update_rules import least_squares_gradient

N, D = 4, 10


@pytest.fixture
def regression(tmp_path, rng):
    x, y = rng.normal(size=(N, D)), rng.normal(size=N)
    return x, y, write_regression_data(tmp_path / "regression.npz", x, y)


def ls_solver(regression, **fields):
    return Solver(solver_param(least_squares_net(regression[2], N), **fields), dtype=np.float64)


def mnist_solver(tmp_path, **fields):
    values = {"type": "SGD", "momentum": 0.9, "weight_decay": 5e-4, "test_iter": [2],
              "test_interval": 3, "snapshot_prefix": str(tmp_path / "snaps" / "mlp")}
    values.update(fields)
    return Solver(solver_param(mnist_net(), **values))


# -- construction ---------------------------------------------------------------------------------
def test_get_solver_picks_the_class_by_type(regression):
    param = solver_param(least_squares_net(regression[2], N), type="Adam")
    assert type(get_solver(param)) is AdamSolver
    assert type(Solver(param)) is AdamSolver
    assert type(caffelite.get_solver(param)) is AdamSolver
    assert type(SGDSolver(param)) is SGDSolver  # pycaffe: the class asked for wins


def test_unknown_type_suggests_the_closest(regression):
    with pytest.raises(SolverError, match="did you mean 'Adam'"):
        Solver(solver_param(least_squares_net(regression[2], N), type="Adamm"))


@pytest.mark.parametrize("fields,message", [
    ({"type": "AdaGrad", "momentum": 0.9}, "momentum cannot be used with AdaGrad"),
    ({"type": "RMSProp", "momentum": 0.9}, "momentum cannot be used with RMSProp"),
    ({"type": "RMSProp", "rms_decay": 1.0}, r"rms_decay must lie in \[0, 1\)"),
    ({"lr_policy": "fixd"}, "did you mean 'fixed'"),
    ({"lr_policy": "INV"}, "did you mean 'inv'"),
    ({"type": "sgd"}, "unknown solver type 'sgd'; did you mean 'SGD'"),
    ({"regularization_type": "L3"}, "regularization_type"),
    ({"iter_size": 0}, "iter_size"),
    ({"test_iter": [0], "test_interval": 5}, "test_iter must be > 0"),
    ({"snapshot": 10}, "snapshot_prefix is not set"),
    ({"test_iter": [3]}, "test_interval"),
])
def test_bad_parameters(regression, fields, message):
    with pytest.raises(SolverError, match=message):
        ls_solver(regression, **fields)


def test_train_net_must_be_given_once(regression):
    param = solver_param(least_squares_net(regression[2], N))
    param.train_net_param.CopyFrom(param.net_param)
    with pytest.raises(SolverError, match="exactly one of net, net_param, train_net"):
        Solver(param)
    with pytest.raises(SolverError, match="exactly one.*found none"):
        Solver(solver_param())


def test_unwritable_snapshot_prefix_fails_at_start(regression, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(SolverError, match="cannot write snapshots to .*set snapshot_prefix"):
        ls_solver(regression, snapshot=10, snapshot_prefix=str(blocker / "sub" / "lenet"))


def test_snapshot_directory_is_created(regression, tmp_path):
    prefix = tmp_path / "new" / "dir" / "ls"
    ls_solver(regression, snapshot=10, snapshot_prefix=str(prefix))
    assert prefix.parent.is_dir()
    assert os.listdir(prefix.parent) == []  # the probe file is gone


# -- from files -------------------------------------------------------------------------------
def write_solver_files(tmp_path, regression, solver_extra=""):
    directory = tmp_path / "experiment"
    directory.mkdir()
    net = text_format.MessageToString(least_squares_net(regression[2], N))
    (directory / "ls_net.prototxt").write_text(net)
    (directory / "ls_solver.prototxt").write_text(
        'net: "ls_net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 2\n'
        'type: "Nesterov"\nmomentum: 0.9\nrandom_seed: 3\n' + solver_extra)
    return directory / "ls_solver.prototxt"


def test_solver_file_resolves_the_net_and_the_default_prefix(tmp_path, regression, monkeypatch):
    path = write_solver_files(tmp_path, regression)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the net path resolves against the solver file
    solver = get_solver(str(path))
    assert type(solver).__name__ == "NesterovSolver"
    assert solver.param.snapshot_prefix == str(path.with_suffix(""))
    solver.solve()
    assert (path.parent / "ls_solver_iter_2.caffemodel").is_file()
    assert (path.parent / "ls_solver_iter_2.solverstate").is_file()


def test_solver_file_with_a_missing_net_file(tmp_path, regression):
    path = write_solver_files(tmp_path, regression)
    (path.parent / "ls_net.prototxt").unlink()
    with pytest.raises(SolverError, match="net file 'ls_net.prototxt' not found"):
        get_solver(str(path))


def test_missing_solver_file(tmp_path):
    with pytest.raises(SolverError, match="not found"):
        get_solver(str(tmp_path / "nope.prototxt"))


# -- display, logs and callbacks --------------------------------------------------------------
class Recorder:
    def __init__(self):
        self.displays, self.tests, self.snapshots = [], [], []

    def on_display(self, iteration, loss, outputs, lr):
        self.displays.append((iteration, loss, outputs, lr))

    def on_test(self, iteration, results):
        self.tests.append((iteration, results))

    def on_snapshot(self, paths):
        self.snapshots.append(paths)


def test_log_lines_callbacks_and_schedule(tmp_path, caplog):
    capture(caplog)
    solver = mnist_solver(tmp_path, display=2, max_iter=6, snapshot=4, lr_policy="inv",
                          gamma=1e-4, power=0.75, snapshot_after_train=True)
    recorder = Recorder()
    solver.add_callback(recorder)
    solver.solve()
    lines = messages(caplog)
    prefix = str(tmp_path / "snaps" / "mlp")
    # tests at 0 and 3 inside Step, then 6 after training; snapshots at 4 and after training
    assert [line for line in lines if "Testing net" in line] == [
        "Iteration 0, Testing net (#0)", "Iteration 3, Testing net (#0)",
        "Iteration 6, Testing net (#0)"]
    assert [line for line in lines if line.startswith("Snapshotting")] == [
        f"Snapshotting to binary proto file {prefix}_iter_4.caffemodel",
        f"Snapshotting solver state to binary proto file {prefix}_iter_4.solverstate",
        f"Snapshotting to binary proto file {prefix}_iter_6.caffemodel",
        f"Snapshotting solver state to binary proto file {prefix}_iter_6.solverstate"]
    assert "Solving MnistMLP" in lines and lines[-1] == "Optimization Done."
    display = [line for line in lines if " iter/s, " in line]
    assert len(display) == 3  # iterations 0, 2, 4
    assert display[0].startswith("Iteration 0 (") and "s/2 iters), loss = " in display[0]
    # Caffe's parse_log.py reads every line it needs
    train = [PARSE_LOG_TRAIN.search(line) for line in lines if "Train net output" in line]
    assert [(m.group(1), m.group(2)) for m in train] == [("0", "loss")] * 3
    assert all("(* 1 = " in line for line in lines if "Train net output" in line)
    test = [PARSE_LOG_TEST.search(line) for line in lines if "Test net output" in line]
    assert [m.group(2) for m in test] == ["accuracy", "loss"] * 3
    lr_lines = [line for line in lines if PARSE_LOG_LR.search(line)]
    assert [PARSE_LOG_ITERATION.search(line).group(1) for line in lr_lines] == ["0", "2", "4"]
    for line, it in zip(lr_lines, (0, 2, 4)):
        rate = np.float32(0.01 * (1 + np.float32(1e-4) * it) ** -0.75)
        assert float(PARSE_LOG_LR.search(line).group(1)) == pytest.approx(rate, rel=1e-5)
    assert any(line.startswith("Iteration 6, loss = ") for line in lines)  # final forward
    # the callbacks saw the same numbers
    assert [d[0] for d in recorder.displays] == [0, 2, 4]
    assert all(set(d[2]) == {"loss"} and d[3] > 0 for d in recorder.displays)
    assert [t[0] for t in recorder.tests] == [0, 3, 6]
    assert set(recorder.tests[0][1][0]) == {"accuracy", "loss"}
    assert recorder.snapshots == [(f"{prefix}_iter_4.caffemodel", f"{prefix}_iter_4.solverstate"),
                                  (f"{prefix}_iter_6.caffemodel", f"{prefix}_iter_6.solverstate")]


def test_test_initialization_false_and_test_means(tmp_path, caplog):
    capture(caplog)
    solver = mnist_solver(tmp_path, test_initialization=False, max_iter=3, test_iter=[3],
                          base_lr=0.0, test_compute_loss=True)
    start = solver.test_nets[0].layer_states()
    results = solver.test_all()
    solver.step(3)
    tests = [line for line in messages(caplog) if "Testing net" in line]
    assert tests == ["Iteration 0, Testing net (#0)"]  # only the explicit call
    test_loss = [line for line in messages(caplog) if line.startswith("Test loss: ")]
    assert test_loss == [f"Test loss: {results[0]['loss']:g}"]  # test_compute_loss
    # the logged value is the mean over test_iter batches: recompute it independently
    net = solver.test_nets[0]
    net.load_layer_states(start)
    accuracies = []
    for _ in range(3):
        net.forward()
        accuracies.append(float(net.blobs["accuracy"].data))
    assert results[0]["accuracy"] == pytest.approx(np.mean(accuracies), abs=1e-12)


def test_average_loss_smooths_and_resets_each_step(regression, caplog):
    capture(caplog)
    solver = ls_solver(regression, display=1, average_loss=3, type="SGD", momentum=0.5)
    raw = []
    solver.add_callback(None, lambda: raw.append(float(solver.net.blobs["loss"].data)))
    recorder = Recorder()
    solver.add_callback(recorder)
    solver.step(5)
    smoothed = [d[1] for d in recorder.displays]
    expected = [np.mean(raw[max(0, i - 2):i + 1]) for i in range(5)]
    np.testing.assert_allclose(smoothed, expected, rtol=1e-12)
    solver.step(2)  # a new Step starts a new buffer (Caffe's losses_.clear())
    np.testing.assert_allclose([d[1] for d in recorder.displays[5:]],
                               [raw[5], np.mean(raw[5:7])], rtol=1e-12)


# -- the update steps -----------------------------------------------------------------------------
def test_clip_gradients_runs_before_iter_size_normalisation(tmp_path, rng):
    x, y = rng.normal(size=(N, D)), rng.normal(size=N)
    # two identical halves: each pass sees the same gradient g, so the accumulated diff is 2g
    source = write_regression_data(tmp_path / "twice.npz", np.concatenate([x, x]),
                                   np.concatenate([y, y]))
    clip = 0.125  # exact in the float32 field
    param = solver_param(least_squares_net(source, N), type="SGD", base_lr=1.0, iter_size=2,
                         clip_gradients=clip)
    solver = Solver(param, dtype=np.float64)
    w, b = (p.data.ravel().copy() for p in solver.learnable_params)
    gw, gb = least_squares_gradient(x, y, w, b[0], 0.0)
    g = np.concatenate([gw, [gb]])
    assert 2 * np.linalg.norm(g) > clip
    solver.step(1)
    got = np.concatenate([p.data.ravel() for p in solver.learnable_params])
    # clip scales 2g to norm `clip`, then the /iter_size halves it
    expected = np.concatenate([w, b]) - (clip / 2) * g / np.linalg.norm(g)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_l1_regularisation_and_decay_mult(regression):
    x, y, source = regression
    net = least_squares_net(source, N)
    ip = net.layer[2]
    ip.param[0].decay_mult = 2.0
    # constants exact in the float32 fields, so float64 nets compare to 1e-12
    solver = Solver(solver_param(net, type="SGD", base_lr=0.125, weight_decay=0.25,
                                 regularization_type="L1"), dtype=np.float64)
    w, b = (p.data.ravel().copy() for p in solver.learnable_params)
    gw, gb = least_squares_gradient(x, y, w, b[0], 0.0)
    solver.step(1)
    np.testing.assert_allclose(solver.learnable_params[0].data.ravel(),
                               w - 0.125 * (gw + 0.5 * np.sign(w)), rtol=1e-12)
    np.testing.assert_allclose(solver.learnable_params[1].data.ravel(),
                               b - 0.125 * (gb + 0.25 * np.sign(b)), rtol=1e-12)


def test_weight_decay_applies_at_lr_mult_zero(regression):
    # lr_mult 0 turns off the bias gradient (Caffe's param_propagate_down) but Regularize still
    # adds λ·b to its diff: AdaDelta's gradient history shows it.
    x, y, source = regression
    net = least_squares_net(source, N)
    net.layer[2].param[1].lr_mult = 0.0
    solver = Solver(solver_param(net, type="AdaDelta", base_lr=1.0, momentum=0.75,
                                 weight_decay=0.5), dtype=np.float64)
    w, b = (p.data.ravel().copy() for p in solver.learnable_params)
    gw, _ = least_squares_gradient(x, y, w, b[0], 0.5)
    solver.step(1)
    np.testing.assert_array_equal(solver.learnable_params[1].data.ravel(), b)  # not moved
    np.testing.assert_allclose(solver.history[1].ravel(), 0.25 * (0.5 * b) ** 2, rtol=1e-12)
    np.testing.assert_allclose(solver.history[0].ravel(), 0.25 * gw ** 2, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nonfinite_loss_stops_without_snapshot(regression, tmp_path):
    prefix = tmp_path / "out" / "ls"
    solver = ls_solver(regression, base_lr=1e30, type="SGD", snapshot=1000, max_iter=50,
                       snapshot_prefix=str(prefix), snapshot_after_train=True)
    with pytest.raises(SolverError, match=r"loss became (nan|inf) at iteration \d+"):
        solver.solve()
    assert os.listdir(prefix.parent) == []


# -- snapshots schedule and actions -----------------------------------------------------------
@pytest.mark.parametrize("max_iter,after_train,expected", [
    (5, True, [2, 4, 5]), (5, False, [2, 4]), (4, True, [2, 4])])
def test_snapshot_schedule(regression, tmp_path, max_iter, after_train, expected):
    prefix = tmp_path / "s" / "ls"
    solver = ls_solver(regression, snapshot=2, max_iter=max_iter, snapshot_prefix=str(prefix),
                       snapshot_after_train=after_train, type="SGD")
    solver.solve()
    written = sorted(int(name.split("_iter_")[1].split(".")[0])
                     for name in os.listdir(prefix.parent) if name.endswith(".solverstate"))
    assert written == expected


def test_stop_and_snapshot_actions(regression, tmp_path, caplog):
    capture(caplog)
    prefix = tmp_path / "a" / "ls"
    solver = ls_solver(regression, max_iter=100, snapshot_prefix=str(prefix),
                       snapshot_after_train=True, type="SGD")
    actions = iter(["none", "snapshot", "none", "stop"])
    solver.set_action_function(lambda: next(actions))
    solver.solve()
    assert solver.iter == 4
    assert sorted(os.listdir(prefix.parent)) == sorted(
        f"ls_iter_{i}{ext}" for i in (2, 4)
        for ext in (".caffemodel", ".solverstate", ".solverstate.caffelite.json"))
    assert "Optimization stopped early." in messages(caplog)


# -- nets -----------------------------------------------------------------------------------------
def test_several_test_nets_in_caffe_order(tmp_path):
    net = mnist_net()
    extra = net.layer.add(name="silence", type="Silence", bottom=["label"])
    extra.include.add(phase=pb.TEST, stage=["quiet"])
    param = solver_param(net, test_iter=[1, 2, 3], test_interval=5, type="SGD")
    param.test_net_param.add().CopyFrom(mnist_net(hidden=16, dropout=False))
    param.test_net_param[0].name = "FromTestNetParam"
    for stages in ([], [], ["quiet"]):
        param.test_state.add(stage=stages)
    solver = Solver(param)
    assert len(solver.test_nets) == 3
    assert [n.name for n in solver.test_nets] == ["FromTestNetParam", "MnistMLP", "MnistMLP"]
    assert all(n.phase == pb.TEST for n in solver.test_nets) and solver.net.phase == pb.TRAIN
    assert ["silence" in n.layer_names for n in solver.test_nets] == [False, False, True]
    assert "accuracy" not in solver.net.layer_names
    solver.step(1)
    results = solver.test_all()
    assert len(results) == 3
    # the test nets use the trained weights
    for n in solver.test_nets:
        np.testing.assert_array_equal(n.params["ip1"][0].data, solver.net.params["ip1"][0].data)


def test_same_seed_same_run_bit_identical(tmp_path):
    runs = []
    for seed in (5, 5, 6):
        solver = Solver(solver_param(mnist_net(), type="Adam", momentum=0.9, random_seed=seed,
                                     test_iter=[1], test_interval=2))
        solver.step(4)
        runs.append(params_of(solver) + [h.copy() for h in solver.history])
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not np.array_equal(runs[0][0], runs[2][0])



def test_train_state_selects_train_layers():
    net = mnist_net()
    extra = net.layer.add(name="silence", type="Silence", bottom=["label"])
    extra.include.add(phase=pb.TRAIN, stage=["quiet"])
    plain = Solver(solver_param(net))
    assert "silence" not in plain.net.layer_names
    param = solver_param(net)
    param.train_state.stage.append("quiet")
    assert "silence" in Solver(param).net.layer_names


def test_weights_field_finetunes_train_and_test_nets(tmp_path):
    source = Solver(solver_param(mnist_net(), random_seed=1))
    source.net.save(str(tmp_path / "source.caffemodel"))
    param = solver_param(mnist_net(), random_seed=2, test_iter=[1], test_interval=10)
    param.weights.append(str(tmp_path / "source.caffemodel"))
    solver = Solver(param)
    for net in (solver.net, solver.test_nets[0]):
        for name in ("ip1", "ip2"):
            for mine, theirs in zip(net.params[name], source.net.params[name]):
                np.testing.assert_array_equal(mine.data, theirs.data)
    param.weights[0] = str(tmp_path / "missing.caffemodel")
    with pytest.raises(SolverError, match="weights file .*missing.caffemodel' not found"):
        Solver(param)


def test_debug_info_on_display_iterations(regression, caplog):
    capture(caplog)
    solver = ls_solver(regression, display=2, debug_info=True, type="SGD")
    solver.step(3)
    lines = messages(caplog)
    forward = [i for i, line in enumerate(lines) if line.startswith("    [Forward] Layer")]
    displays = [i for i, line in enumerate(lines) if " iter/s, " in line]
    assert len(displays) == 2  # iterations 0 and 2
    # forward runs before the display line: iteration 0's lines precede the first display,
    # iteration 2's (and none of iteration 1's) lie between the two
    before = sum(i < displays[0] for i in forward)
    between = sum(displays[0] < i < displays[1] for i in forward)
    assert before == between > 0
    assert len(forward) == before + between


@pytest.mark.parametrize("solver_type,fields", [
    ("SGD", {"base_lr": 0.05, "momentum": 0.9}),
    ("Adam", {"base_lr": 0.002, "momentum": 0.9, "momentum2": 0.999}),
])
def test_an_mlp_learns_mnist(solver_type, fields):
    # 300 updates of a 784-64-10 MLP on the bundled digits; the test net scores all 2,000
    param = solver_param(mnist_net(batch_size=32, hidden=64, dropout=False), type=solver_type,
                         weight_decay=5e-4, test_iter=[100], test_interval=300, max_iter=300,
                         **fields)
    solver = Solver(param)
    first = solver.test_all()[0]
    solver.solve()
    last = solver.test_results[0]
    assert first["accuracy"] < 0.3
    assert last["accuracy"] > 0.88 and last["loss"] < 0.45
