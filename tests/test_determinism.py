"""Same seed and config -> a bit-identical run, also when layers split work among threads
(the split must depend on shapes only, never on which thread is free)."""
from pathlib import Path

import numpy as np
import pytest

import caffelite
from caffelite import runtime

LENET = Path(__file__).resolve().parents[1] / "configs" / "lenet" / "lenet.yaml"


def train(iterations):
    solver = caffelite.get_solver(str(LENET))
    solver.param.test_interval = solver.param.snapshot = solver.param.display = 0
    losses = []
    for _ in range(iterations):
        solver.step(1)
        losses.append(solver.smoothed_loss)
    return losses, [p.data.copy() for p in solver.net.learnable_params]


@pytest.mark.parametrize("threads", [1, 2])
def test_lenet_runs_repeat_bit_for_bit(threads):
    saved = runtime.num_threads()
    runtime.set_num_threads(threads)
    try:
        (losses_a, weights_a), (losses_b, weights_b) = train(25), train(25)
    finally:
        runtime.set_num_threads(saved)
    assert losses_a == losses_b
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b))
