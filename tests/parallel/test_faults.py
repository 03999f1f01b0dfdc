"""Faults under a real mpiexec end the whole job cleanly and never hang: an error on one rank,
a NaN loss, Ctrl-C (every rank stops at the same iteration, rank 0 snapshots), a killed rank
and a rank that stops answering."""
import os
import signal

import pytest

from tests.parallel.mpirun import finish, kill_group, start, train, wait_for, write_config
from tests.parallel.rank_probe import layer_text

pytestmark = pytest.mark.timeout(120)


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("caffelite: error:")]


def test_an_error_on_one_rank_ends_the_job_with_its_one_line_message(tmp_path):
    config = write_config(tmp_path, extra_layers=layer_text("fail 1 3"), max_iter=1000)
    code, _, err = train(tmp_path, config, ranks=2, timeout=60, check=False)
    assert code == 2
    assert error_lines(err) == ["caffelite: error: rank 1 of 2: missing-shard-1.bin: no such "
                                "file"]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*iter_1000*"))


def test_a_nan_loss_on_every_rank_is_reported_once_by_rank_0(tmp_path):
    config = write_config(tmp_path, base_lr=1e9)
    code, _, err = train(tmp_path, config, ranks=2, timeout=60, check=False)
    assert code == 2
    lines = error_lines(err)
    assert lines and lines[0].startswith("caffelite: error: rank 0 of 2: the loss became nan")


def test_a_bad_config_on_every_rank_ends_the_job(tmp_path):
    config = write_config(tmp_path, lr_policy="sometimes")
    code, _, err = train(tmp_path, config, ranks=2, timeout=60, check=False)
    assert code == 2
    assert "sometimes" in error_lines(err)[0]


def test_a_missing_snapshot_is_reported_once_by_rank_0(tmp_path):
    config = write_config(tmp_path)
    code, _, err = train(tmp_path, config, ranks=2, args=["--snapshot", "gone.solverstate"],
                         timeout=60, check=False)
    assert code == 2
    assert error_lines(err) == ["caffelite: error: rank 0 of 2: --snapshot gone.solverstate: "
                                "no such file"]


def test_ctrl_c_stops_every_rank_at_the_same_iteration_and_rank_0_snapshots(tmp_path):
    config = write_config(tmp_path, max_iter=1000000, display=1, snapshot=0,
                          test_interval=1000000)
    log = tmp_path / "train.log"
    proc = start(tmp_path, config, ranks=2, args=["--log", log], CAFFELITE_MPI_TIMEOUT=20)
    try:
        wait_for(lambda: log.exists() and "Iteration 30," in log.read_text(), 60,
                 "iteration 30", proc)
        proc.send_signal(signal.SIGINT)  # mpiexec passes it on to every rank
        code, _, err = finish(proc, 60)
    finally:
        kill_group(proc)
    # A rank stopping alone would leave the other in its allreduce until the 20 s watchdog,
    # then fail the job: a clean exit means they stopped together.
    assert code == 0, err[-2000:]
    text = log.read_text()
    assert "Optimization stopped early." in text
    snapshots = list((tmp_path / "out").glob("tiny_iter_*.caffemodel"))
    assert len(snapshots) == 1
    stopped = int(snapshots[0].name.split("_iter_")[1].split(".")[0])
    assert stopped >= 30 and f"Snapshotting to binary proto file out/tiny_iter_{stopped}" in text


def _pids_once_training(directory, ranks, proc):
    """The ranks' process ids, once rank 0 has logged iteration 20."""
    paths = [directory / f"rank{r}.pid" for r in range(ranks)]
    wait_for(lambda: all(p.exists() for p in paths)
             and "Iteration 20 (" in proc.outputs[1].read_text(), 60, "iteration 20", proc)
    return [int(p.read_text()) for p in paths]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_sighup_to_one_rank_makes_rank_0_snapshot_and_training_go_on(tmp_path):
    # mpiexec does not pass SIGHUP on: it goes to a rank, and the ranks vote.
    config = write_config(tmp_path, extra_layers=layer_text("pid"), max_iter=400, snapshot=0,
                          display=10)
    proc = start(tmp_path, config, ranks=2)
    try:
        pids = _pids_once_training(tmp_path, 2, proc)
        os.kill(pids[1], signal.SIGHUP)
        code, _, err = finish(proc, 60)
    finally:
        kill_group(proc)
    assert code == 0, err[-2000:]
    models = sorted(p.name for p in (tmp_path / "out").glob("*.caffemodel"))
    assert len(models) == 2 and "tiny_iter_400.caffemodel" in models
    assert "Optimization Done." in err


def test_a_killed_rank_makes_the_others_exit(tmp_path):
    config = write_config(tmp_path, extra_layers=layer_text("pid"), max_iter=1000000,
                          snapshot=0, display=10)
    proc = start(tmp_path, config, ranks=2, CAFFELITE_MPI_TIMEOUT=20)
    try:
        pids = _pids_once_training(tmp_path, 2, proc)
        os.kill(pids[1], signal.SIGKILL)
        code, _, _ = finish(proc, 60)
        assert code != 0
        wait_for(lambda: not _alive(pids[0]), 30, "rank 0 to exit")
    finally:
        kill_group(proc)


def test_a_rank_that_stops_answering_trips_the_watchdog(tmp_path):
    config = write_config(tmp_path, extra_layers=layer_text("pid"), max_iter=1000000,
                          snapshot=0, display=10)
    proc = start(tmp_path, config, ranks=2, CAFFELITE_MPI_TIMEOUT=3)
    pids = []
    try:
        pids = _pids_once_training(tmp_path, 2, proc)
        os.kill(pids[1], signal.SIGSTOP)  # alive to the launcher, silent to MPI
        code, _, err = finish(proc, 60)
        assert code == 2
        assert error_lines(err)[0].startswith("caffelite: error: rank 0 of 2: no answer from "
                                              "the other ranks in the ")  # an allreduce
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        kill_group(proc)
