"""The Python API under a real mpiexec: get_solver(..., parallel=True), the by-hand
DataParallel callback, solver_count/solver_rank; every rank ends with the same weights."""
import json
import subprocess
import sys

import pytest

from tests.parallel.mpirun import HERE, environment, mpiexec, write_config


@pytest.mark.timeout(120)
def test_get_solver_parallel_and_the_callback_train_identical_ranks(tmp_path):
    config = write_config(tmp_path, test_interval=1000, snapshot=0)
    out = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(HERE / "api_script.py"),
                          str(config)], cwd=tmp_path, env=environment(), capture_output=True,
                         text=True, timeout=100)
    assert out.returncode == 0, out.stderr[-3000:]
    reports = [json.loads((tmp_path / f"report{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["rank"], r["count"]) for r in reports] == [(0, 2), (1, 2)]
    assert reports[0]["digests"] == reports[1]["digests"]  # identical weights on both ranks
    assert reports[0]["loss"] == reports[1]["loss"]  # the global mean loss on both
    # the same config and seed: both ways train the same model
    assert reports[0]["digests"][0] == reports[0]["digests"][1]
