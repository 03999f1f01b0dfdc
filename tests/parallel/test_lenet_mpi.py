"""The acceptance run: `mpiexec -n 2 caffelite train configs/lenet/lenet_mpi.yaml` (LeNet's
recipe, batch 32 per rank) reaches test accuracy >= 0.97 and writes one set of files."""
import json

import pytest

from tests.parallel.mpirun import ROOT, mpiexec, train


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_lenet_recipe_on_two_ranks(tmp_path):
    mpiexec()
    train(tmp_path, ROOT / "configs/lenet/lenet_mpi.yaml", ranks=2, timeout=3500)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("lenet_mpi"))
    assert names == sorted(f"lenet_mpi{s}" for s in (
        ".metrics.jsonl", "_iter_5000.caffemodel", "_iter_5000.solverstate",
        "_iter_5000.solverstate.caffelite.json", "_iter_10000.caffemodel",
        "_iter_10000.solverstate", "_iter_10000.solverstate.caffelite.json"))
    records = [json.loads(line) for line in open(tmp_path / "lenet_mpi.metrics.jsonl")]
    tests = [r for r in records if r["phase"] == "test"]
    assert tests[-1]["iter"] == 10000 and tests[-1]["accuracy"] >= 0.97
    assert len(records) == len({json.dumps(r, sort_keys=True) for r in records})
