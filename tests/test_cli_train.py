"""`caffelite train` and `caffelite test` end to end on small nets over the bundled MNIST."""
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import MNIST10K, ROOT, need_shared

from caffelite.cli import main
from caffelite.cli.train import GlogFormatter, SignalActions
from caffelite.proto import caffelite_pb2 as pb

SCALE = np.float32(0.00390625)

# A softmax regression on the bundled digits: fast, and its scores are a NumPy formula.
NET = """
name: "tiny"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { scale: 0.00390625 }
        data_param { source: "caffelite://mnist10k/train" batch_size: 16 } }
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TEST }
        transform_param { scale: 0.00390625 }
        data_param { source: "caffelite://mnist10k/test" batch_size: 100 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        include { not_stage: "wide" }
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "ip_wide" type: "InnerProduct" bottom: "data" top: "ip"
        include { stage: "wide" min_level: 2 }
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SOLVER = """
net: "net.prototxt"
test_iter: 2
test_interval: 10
base_lr: {base_lr}
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 5
max_iter: {max_iter}
snapshot: 10
snapshot_prefix: "snap/tiny"
random_seed: 1701
"""

# Caffe's tools/extra/parse_log.py and extract_seconds.py, the parts that read each line.
REGEX_ITERATION = re.compile(r"Iteration (\d+)")
REGEX_TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
REGEX_LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def extract_datetime_from_line(line, year):
    line = line.strip().split()
    month, day = int(line[0][1:3]), int(line[0][3:5])
    timestamp = line[1]
    pos = timestamp.rfind(".")
    hour, minute, second = (int(x) for x in timestamp[:pos].split(":"))
    return datetime.datetime(year, month, day, hour, minute, second, int(timestamp[pos + 1:]))


def parse_log(text):
    """(train rows, test rows) as parse_log.py builds them: dicts of iteration and outputs."""
    lines = text.splitlines()
    start = next(extract_datetime_from_line(x, 2026) for x in lines if "Solving" in x)
    iteration, lr, train, test = -1, float("nan"), {}, {}
    for line in lines:
        match = REGEX_ITERATION.search(line)
        if match:
            iteration = int(match.group(1))
        if iteration == -1:
            continue
        seconds = (extract_datetime_from_line(line, 2026) - start).total_seconds()
        assert seconds >= 0
        match = REGEX_LEARNING_RATE.search(line)
        if match:
            lr = float(match.group(1))
        for regex, rows in ((REGEX_TRAIN_OUTPUT, train), (REGEX_TEST_OUTPUT, test)):
            match = regex.search(line)
            if match:
                rows.setdefault(iteration, {"lr": lr})[match.group(2)] = float(match.group(3))
    return train, test


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "net.prototxt").write_text(NET)
    write_solver(tmp_path / "conf" / "solver.prototxt")
    return tmp_path


def write_solver(path, base_lr=0.01, max_iter=20, extra=""):
    path.write_text(SOLVER.format(base_lr=base_lr, max_iter=max_iter) + extra)
    return str(path)


def train(*args):
    result = CliRunner().invoke(main, ["train", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def lines(result):
    return result.output.strip().splitlines()


def test_train_writes_snapshots_and_a_log_parse_log_reads(workdir):
    result = train("conf/solver.prototxt", "--log", "train.log")
    assert result.exit_code == 0, result.output
    for it in (10, 20):
        for ext in (".caffemodel", ".solverstate"):
            assert (workdir / "snap" / f"tiny_iter_{it}{ext}").is_file()
    log = (workdir / "train.log").read_text()
    assert all(re.match(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \S+:\d+\] ", x)
               for x in log.splitlines())
    train_rows, test_rows = parse_log(log)
    assert sorted(train_rows) == [0, 5, 10, 15]
    assert sorted(test_rows) == [0, 10, 20]  # test_initialization defaults to true
    # parse_log.py files a row under the last lr seen: Caffe logs "lr =" after the outputs.
    assert train_rows[10]["lr"] == pytest.approx(0.01 * (1 + 0.0001 * 5) ** -0.75, rel=1e-5)
    assert 0 < test_rows[20]["loss"] < train_rows[0]["loss"]
    assert 0.5 < test_rows[20]["accuracy"] <= 1
    assert result.output.count("Iteration 5 (") == 1  # stderr got the same lines


def test_resume_continues_bit_identically(workdir):
    assert train("--solver", "conf/solver.prototxt", "--quiet").exit_code == 0
    straight = (workdir / "snap" / "tiny_iter_20.caffemodel").read_bytes()
    straight_state = (workdir / "snap" / "tiny_iter_20.solverstate").read_bytes()
    (workdir / "snap" / "tiny_iter_20.caffemodel").unlink()
    result = train("conf/solver.prototxt", "--snapshot", "snap/tiny_iter_10.solverstate")
    assert result.exit_code == 0, result.output
    assert "Iteration 10" in result.output and "Iteration 5 (" not in result.output
    assert (workdir / "snap" / "tiny_iter_20.caffemodel").read_bytes() == straight
    assert (workdir / "snap" / "tiny_iter_20.solverstate").read_bytes() == straight_state


def test_weights_finetunes_from_a_trained_model(workdir):
    assert train("conf/solver.prototxt", "--quiet").exit_code == 0
    shutil.copy(workdir / "snap" / "tiny_iter_20.caffemodel", workdir / "trained.caffemodel")
    fresh, _ = parse_log(train("conf/solver.prototxt").output)
    result = train("conf/solver.prototxt", "--weights", "trained.caffemodel")
    assert result.exit_code == 0, result.output
    assert "Finetuning from" in result.output
    tuned, _ = parse_log(result.output)
    assert tuned[0]["loss"] < 0.8 * fresh[0]["loss"]


def test_level_and_stage_select_the_train_net_layers(workdir):
    result = train("conf/solver.prototxt", "--stage", "wide,other", "--level", "2", "--quiet")
    assert result.exit_code == 0, result.output
    model = pb.NetParameter()
    model.ParseFromString((workdir / "snap" / "tiny_iter_20.caffemodel").read_bytes())
    names = [layer.name for layer in model.layer]
    assert "ip_wide" in names and "ip" not in names


@pytest.mark.parametrize("args, message", [
    (["conf/solver.prototxt", "--snapshot", "a.solverstate", "--weights", "b.caffemodel"],
     "give --snapshot (resume) or --weights (finetune), not both"),
    (["conf/missing.prototxt"], "conf/missing.prototxt: no such solver config file"),
    ([], "no solver config: give CONFIG (or --solver CONFIG)"),
    (["conf/solver.prototxt", "--snapshot", "snap/none.solverstate"],
     "--snapshot snap/none.solverstate: no such file"),
    (["conf/solver.prototxt", "--weights", "none.caffemodel", "--quiet"], "none.caffemodel"),
])
def test_usage_errors_are_one_line_with_status_2(workdir, args, message):
    result = train(*args)
    assert result.exit_code == 2
    assert len(lines(result)) == 1 and lines(result)[0].startswith("caffelite: error: ")
    assert message in lines(result)[0]


def test_nan_loss_stops_naming_the_iteration(workdir):
    write_solver(workdir / "conf" / "solver.prototxt", base_lr=1e12, max_iter=100)
    result = train("conf/solver.prototxt", "--quiet", "--log", "nan.log")
    assert result.exit_code == 2, result.output
    *warnings, line = lines(result)  # NumPy's overflow warnings arrive as glog "W" lines
    assert all(x.startswith("W") for x in warnings)
    assert re.search(r"loss became (nan|inf) at iteration \d+", line)
    assert "loss became" in (workdir / "nan.log").read_text().splitlines()[-1]
    assert not (workdir / "snap" / "tiny_iter_100.caffemodel").exists()


def test_signal_actions_follow_the_effects():
    actions = SignalActions("stop", "snapshot")
    with actions.installed():
        os.kill(os.getpid(), signal.SIGHUP)
        assert actions() == "snapshot"
        assert actions() == "none"
        os.kill(os.getpid(), signal.SIGINT)
        assert actions() == "stop"
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C while a stop is pending
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    quiet = SignalActions("none", "none")
    with quiet.installed():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGHUP)
        assert quiet() == "none"


def test_glog_prefix_on_every_line():
    import logging

    record = logging.LogRecord("caffelite", logging.WARNING, "/x/solver.py", 42,
                               "two\nlines", None, None)
    first, second = GlogFormatter().format(record).splitlines()
    when = datetime.datetime.fromtimestamp(record.created)
    assert first.startswith(f"W{when:%m%d %H:%M:%S}.{when.microsecond:06d} ")
    assert first.endswith(" solver.py:42] two") and second.endswith(" solver.py:42] lines")
    assert extract_datetime_from_line(second, when.year) == when


def test_caffelite_test_prints_batches_and_means(workdir):
    assert train("conf/solver.prototxt", "--quiet").exit_code == 0
    result = CliRunner().invoke(main, [
        "test", "--model", "conf/net.prototxt", "--weights", "snap/tiny_iter_20.caffemodel",
        "--iterations", "3"])
    assert result.exit_code == 0, result.output
    messages = [x.split("] ", 1)[1] for x in lines(result)]
    assert messages[:2] == ["Use CPU.", "Running for 3 iterations."]
    # Independent scores: the caffemodel's weights applied with NumPy to the test digits.
    model = pb.NetParameter()
    model.ParseFromString((workdir / "snap" / "tiny_iter_20.caffemodel").read_bytes())
    (ip,) = [layer for layer in model.layer if layer.name == "ip"]
    weight = np.array(ip.blobs[0].data, np.float32).reshape(10, 784)
    bias = np.array(ip.blobs[1].data, np.float32)
    mnist = np.load(need_shared(MNIST10K))
    images = mnist["images"][8000:8300].reshape(300, 784).astype(np.float32) * SCALE
    logits = images @ weight.T + bias
    labels = mnist["labels"][8000:8300]
    shifted = logits - logits.max(1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(1)) - shifted[np.arange(300), labels]
    correct = logits.argmax(1) == labels
    accuracy = [correct[i * 100:(i + 1) * 100].mean() for i in range(3)]
    loss = [nll[i * 100:(i + 1) * 100].mean() for i in range(3)]
    batch = re.compile(r"Batch (\d), (accuracy|loss) = (\S+)$")
    parsed = [batch.match(m).groups() for m in messages[2:8]]
    assert [(int(i), name) for i, name, _ in parsed] == [
        (i, name) for i in range(3) for name in ("accuracy", "loss")]
    for i, name, value in parsed:
        reference = (accuracy if name == "accuracy" else loss)[int(i)]
        assert float(value) == pytest.approx(reference, rel=2e-5, abs=1e-6)
    mean_loss, mean_accuracy = float(np.mean(loss)), float(np.mean(accuracy))
    summary = re.compile(r"Loss: (\S+)$|accuracy = (\S+)$|loss = (\S+) \(\* 1 = (\S+) loss\)$")
    found = [summary.match(m) for m in messages[8:]]
    assert len(found) == 3 and all(found)
    assert float(found[0].group(1)) == pytest.approx(mean_loss, rel=2e-5)
    assert float(found[1].group(2)) == pytest.approx(mean_accuracy, rel=2e-5)
    assert float(found[2].group(3)) == float(found[2].group(4)) == float(found[0].group(1))


def test_caffelite_test_usage_errors(workdir):
    result = CliRunner().invoke(main, ["test", "--model", "conf/none.prototxt",
                                       "--weights", "x.caffemodel"])
    assert result.exit_code == 2 and lines(result) == [
        "caffelite: error: --model conf/none.prototxt: no such net config file"]


def test_subprocess_train_with_sighup_then_sigint(workdir):
    """A real `caffelite train` process: SIGHUP snapshots and goes on, SIGINT stops it with a
    final snapshot (Caffe's default effects)."""
    (workdir / "conf" / "endless.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "fixed"\ndisplay: 1\n'
        'max_iter: 100000\nsnapshot_prefix: "snap/tiny"\nrandom_seed: 1701\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "caffelite", "train",
                                "conf/endless.prototxt"], stderr=subprocess.PIPE, text=True,
                               env=env, cwd=workdir)
    seen, sent = [], []
    deadline = time.monotonic() + 120
    for line in process.stderr:
        seen.append(line)
        if time.monotonic() > deadline:
            process.kill()
            break
        if "Iteration 3 (" in line and not sent:
            process.send_signal(signal.SIGHUP)
            sent.append("HUP")
        if "Snapshotting solver state" in line and sent == ["HUP"]:
            process.send_signal(signal.SIGINT)
            sent.append("INT")
    assert process.wait(timeout=60) == 0, "".join(seen)
    snapshots = sorted((workdir / "snap").glob("tiny_iter_*.caffemodel"))
    assert len(snapshots) == 2, "".join(seen)  # the SIGHUP one and the final one
    first, last = sorted(int(re.search(r"_(\d+)\.", p.name).group(1)) for p in snapshots)
    assert 3 < first < last < 1000
    assert "Optimization stopped early." in "".join(seen)


LENET = ROOT / "configs" / "lenet"


@pytest.mark.slow
def test_lenet_yaml_trains_to_097_from_another_directory(tmp_path):
    """The acceptance run: the full 10,000 iterations of Caffe's LeNet recipe on the bundled
    digits, started outside the repository; its last test must reach accuracy >= 0.97."""
    started = time.perf_counter()
    process = subprocess.run([sys.executable, "-m", "caffelite", "train",
                              str(LENET / "lenet.yaml"), "--log", "lenet.log", "--quiet"],
                             cwd=tmp_path, capture_output=True, text=True)
    wall = time.perf_counter() - started
    assert process.returncode == 0, process.stderr
    _, test_rows = parse_log((tmp_path / "lenet.log").read_text())
    assert sorted(test_rows) == list(range(0, 10001, 500))
    final = test_rows[10000]
    print(f"\nLeNet 10,000 iterations: {wall:.1f} s wall, test accuracy {final['accuracy']}, "
          f"loss {final['loss']}")
    assert final["accuracy"] >= 0.97
    for it in (5000, 10000):
        assert (tmp_path / f"lenet_iter_{it}.caffemodel").is_file()
        assert (tmp_path / f"lenet_iter_{it}.solverstate").is_file()


@pytest.mark.slow
def test_lenet_prototxt_and_yaml_forms_train_identically(tmp_path, monkeypatch):
    from caffelite.solvers import Solver

    monkeypatch.chdir(tmp_path)
    runs = []
    for config in ("lenet_solver.prototxt", "lenet.yaml"):
        solver = Solver(str(LENET / config))
        losses = []
        for _ in range(300):
            solver.step(1)  # each step() restarts the smoothing: this is the iteration's loss
            losses.append(solver.smoothed_loss)
        runs.append((losses, [p.data.copy() for p in solver.net.learnable_params]))
    (losses_a, weights_a), (losses_b, weights_b) = runs
    assert losses_a == losses_b and losses_a[-1] < 0.5 * losses_a[0]
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
