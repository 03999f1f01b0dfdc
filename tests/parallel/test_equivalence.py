"""Real `mpiexec -n N caffelite train`: N ranks with batch B train the model one process with
batch N·B trains (float summation order aside), reruns and resumes with the same N are
bit-identical, and only rank 0 writes files."""
import json

import pytest

from tests.parallel.mpirun import mpiexec, relative_difference, train, weights, write_config

pytestmark = pytest.mark.timeout(240)
TOLERANCE = 1e-5


def run_pair(tmp_path, ranks, **fields):
    """Train tiny.yaml for 50 iterations on `ranks` ranks (batch 8 each) and in one process
    (batch 8·ranks); the two runs' directories."""
    mpiexec()
    many, one = tmp_path / f"ranks{ranks}", tmp_path / "one"
    many.mkdir()
    one.mkdir()
    train(many, write_config(many, **fields), ranks=ranks)
    train(one, write_config(one, batch=8 * ranks, test_batch=10 * ranks, **fields))
    return many, one


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The unbroken 2-rank SGD run (with --log) and its one-process twin."""
    mpiexec()
    root = tmp_path_factory.mktemp("sgd")
    many, one = root / "ranks2", root / "one"
    many.mkdir()
    one.mkdir()
    code, out, err = train(many, write_config(many), ranks=2, args=["--log", "train.log"])
    train(one, write_config(one, batch=16, test_batch=20))
    return many, one, err


def test_two_ranks_equal_one_process_with_twice_the_batch_sgd(two_ranks):
    many, one, _ = two_ranks
    for it in (25, 50):
        a, b = (weights(d / f"out/tiny_iter_{it}.caffemodel") for d in (many, one))
        assert relative_difference(a, b) < TOLERANCE


def test_logged_losses_and_test_accuracy_are_the_global_ones(two_ranks):
    many, one, _ = two_ranks
    records = [[json.loads(line) for line in open(d / "out/tiny.metrics.jsonl")]
               for d in (many, one)]
    assert len(records[0]) == len(records[1]) > 0
    for mine, theirs in zip(*records):
        assert mine["iter"] == theirs["iter"] and mine["phase"] == theirs["phase"]
        for key in ("loss", "accuracy", "smoothed_loss"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], rel=1e-4), (key, mine)


def test_only_rank_0_writes_logs_metrics_and_snapshots(two_ranks):
    many, _, err = two_ranks
    names = sorted(p.name for p in (many / "out").iterdir())
    assert names == ["tiny.metrics.jsonl", "tiny_iter_25.caffemodel", "tiny_iter_25.solverstate",
                     "tiny_iter_25.solverstate.caffelite.json", "tiny_iter_50.caffemodel",
                     "tiny_iter_50.solverstate", "tiny_iter_50.solverstate.caffelite.json"]
    log = (many / "train.log").read_text().splitlines()
    assert {line.split()[2] for line in log} == {log[0].split()[2]}  # one process id
    # stderr: every line from that process, each iteration displayed once
    assert [line for line in err.splitlines() if "Iteration 10 (" in line] != []
    assert len([line for line in err.splitlines() if "Iteration 10 (" in line]) == 1
    assert {line.split()[2] for line in err.splitlines() if line.startswith("I")} == \
        {log[0].split()[2]}
    metrics = (many / "out/tiny.metrics.jsonl").read_text().splitlines()
    assert len(metrics) == len({line for line in metrics})  # no record written twice


def test_rerun_with_the_same_ranks_is_bit_identical(two_ranks, tmp_path):
    many, _, _ = two_ranks
    train(tmp_path, write_config(tmp_path), ranks=2)
    for suffix in (".caffemodel", ".solverstate"):
        assert (tmp_path / f"out/tiny_iter_50{suffix}").read_bytes() == \
            (many / f"out/tiny_iter_50{suffix}").read_bytes()


def test_resume_with_the_same_ranks_is_bit_identical(two_ranks, tmp_path):
    many, _, _ = two_ranks
    config = write_config(tmp_path)
    train(tmp_path, config, ranks=2, args=["--snapshot", many / "out/tiny_iter_25.solverstate"])
    assert (tmp_path / "out/tiny_iter_50.caffemodel").read_bytes() == \
        (many / "out/tiny_iter_50.caffemodel").read_bytes()


def test_resume_with_other_ranks_goes_on_but_is_not_bit_exact(two_ranks, tmp_path):
    many, _, _ = two_ranks
    config = write_config(tmp_path)
    _, _, err = train(tmp_path, config, ranks=3,
                      args=["--snapshot", many / "out/tiny_iter_25.solverstate"])
    assert "Iteration 50, Testing net" in err
    resumed, unbroken = (weights(d / "out/tiny_iter_50.caffemodel") for d in (tmp_path, many))
    # 3 x 8 images per iteration from iteration 25 on: a close model, not the same one
    assert 0 < relative_difference(resumed, unbroken) < 0.5


def test_adam_two_ranks_equal_one_process(tmp_path):
    many, one = run_pair(tmp_path, 2, type="Adam", base_lr=0.001, momentum2=0.999)
    a, b = (weights(d / "out/tiny_iter_50.caffemodel") for d in (many, one))
    assert relative_difference(a, b) < TOLERANCE


def test_three_ranks_equal_one_process_with_three_times_the_batch(tmp_path):
    many, one = run_pair(tmp_path, 3)
    a, b = (weights(d / "out/tiny_iter_50.caffemodel") for d in (many, one))
    assert relative_difference(a, b) < TOLERANCE


def test_finetuning_from_weights_read_by_rank_0_equals_one_process(two_ranks, tmp_path):
    many, _, _ = two_ranks
    start = many / "out/tiny_iter_25.caffemodel"
    dirs = [tmp_path / "ranks2", tmp_path / "one"]
    for directory in dirs:
        directory.mkdir()
    train(dirs[0], write_config(dirs[0], max_iter=20, snapshot=0), ranks=2,
          args=["--weights", start])
    train(dirs[1], write_config(dirs[1], batch=16, test_batch=20, max_iter=20, snapshot=0),
          args=["--weights", start])
    a, b = (weights(d / "out/tiny_iter_20.caffemodel") for d in dirs)
    assert relative_difference(a, b) < TOLERANCE
    assert relative_difference(a, weights(start)) > 1e-3  # it trained from there


def test_iter_size_accumulation_on_two_ranks_equals_one_process(tmp_path):
    many, one = run_pair(tmp_path, 2, iter_size=2, max_iter=20, snapshot=0)
    a, b = (weights(d / "out/tiny_iter_20.caffemodel") for d in (many, one))
    assert relative_difference(a, b) < TOLERANCE
