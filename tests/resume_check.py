"""Exact resume, checked the same way for every data source: K iterations, snapshot, restore
into a fresh solver and N - K more must give the weights of N straight, bit for bit."""
import numpy as np


def check_exact_resume(make_solver, total, first, before_steps=None):
    """make_solver(name) -> a fresh Solver snapshotting under its own name. Returns the
    (straight, first, resumed) solvers for further checks; before_steps(resumed) runs after
    the restore, before the remaining steps."""
    straight = make_solver("straight")
    straight.step(total)
    interrupted = make_solver("first")
    interrupted.step(first)
    _, state = interrupted.snapshot()
    resumed = make_solver("resumed")
    resumed.restore(state)
    if before_steps:
        before_steps(resumed)
    resumed.step(total - first)
    for a, b in zip(straight.net.learnable_params, resumed.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    return straight, interrupted, resumed
