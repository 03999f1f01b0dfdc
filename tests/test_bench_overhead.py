"""scripts/bench_overhead.py: its bare loop does the solver's work, so the overhead it reports
is the machinery's alone."""
import sys

import numpy as np
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import bench  # noqa: E402
import bench_overhead  # noqa: E402


@pytest.mark.parametrize("name", sorted(bench.NETS))
def test_bare_loop_trains_as_solver_step(name):
    """Two iterations each from the same weights end at the same weights (with momentum, so
    the second step also checks the history)."""
    stepped, bare = (bench.make_side("caffelite", name, 4) for _ in range(2))
    initial = [blob.data.copy() for blob in stepped.net.learnable_params]
    loop = bench_overhead.BareLoop(bare.solver)
    for _ in range(2):
        stepped.solver.step(1)
        loop.step()
    for ours, theirs, start in zip(stepped.net.learnable_params, bare.net.learnable_params,
                                   initial):
        assert not np.array_equal(ours.data, start)
        np.testing.assert_allclose(theirs.data, ours.data, rtol=1e-6, atol=1e-9)
