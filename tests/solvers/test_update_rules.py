"""Caffe's least-squares check (test_gradient_based_solver.cpp): after K = 0..4 steps, the next
update of every solver equals its closed form computed here from the weights and history, and
iter_size = 2 on half batches equals full batches."""
import math

import numpy as np
import pytest

from caffelite.solvers import Solver
from tests.solvers.nets import (
    SOLVER_SETTINGS,
    SOLVER_TYPES,
    least_squares_net,
    mnist_net,
    params_of,
    solver_param,
    write_regression_data,
)

N, D = 4, 10
WEIGHT_DECAY = 0.5


@pytest.fixture
def data(tmp_path, rng):
    x, y = rng.normal(size=(N, D)), rng.normal(size=N)
    return x, y, write_regression_data(tmp_path / "regression.npz", x, y)


def least_squares_gradient(x, y, w, b, weight_decay):
    """Gradient of Σ(xw + b − y)²/(2N) plus L2 decay on weights and bias (decay_mult 1)."""
    residual = x @ w + b - y  # (N,)
    return (x.T @ residual / len(y) + weight_decay * w,
            residual.mean() + weight_decay * b)


def expected_update(solver_type, p, grad, history, t):
    """The closed forms of test_gradient_based_solver.cpp's ComputeLeastSquaresUpdate."""
    lr, mu, delta = p.base_lr, p.momentum, p.delta
    if solver_type == "SGD":
        return lr * grad + mu * history[0]
    if solver_type == "Nesterov":
        new_history = lr * grad + mu * history[0]
        return (1 + mu) * new_history - mu * history[0]
    if solver_type == "AdaGrad":
        return lr * grad / (np.sqrt(history[0] + grad ** 2) + delta)
    if solver_type == "RMSProp":
        d = p.rms_decay
        return lr * grad / (np.sqrt(d * history[0] + (1 - d) * grad ** 2) + delta)
    if solver_type == "AdaDelta":
        averaged = mu * history[0] + (1 - mu) * grad ** 2
        return lr * grad * np.sqrt((history[1] + delta) / (averaged + delta))
    if solver_type == "Adam":
        b1, b2 = p.momentum, p.momentum2
        m = b1 * history[0] + (1 - b1) * grad
        v = b2 * history[1] + (1 - b2) * grad ** 2
        return lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + delta)
    raise AssertionError(solver_type)


def sweep():
    for solver_type in SOLVER_TYPES:
        momenta = [0.0] if solver_type in ("AdaGrad", "RMSProp") else [0.5, 0.9]
        for lr in (1.0, 0.01):
            for momentum in momenta:
                yield solver_type, lr, momentum


def make_solver(data, solver_type, lr, momentum, share=False, dtype=np.float32, **fields):
    settings = {**SOLVER_SETTINGS[solver_type], **fields}
    if solver_type not in ("AdaGrad", "RMSProp"):
        settings["momentum"] = momentum
    param = solver_param(least_squares_net(data[2], N // settings.get("iter_size", 1), share),
                         type=solver_type, base_lr=lr, weight_decay=WEIGHT_DECAY, **settings)
    return Solver(param, dtype=dtype)


@pytest.mark.parametrize("share", [False, True], ids=["plain", "share"])
@pytest.mark.parametrize("dtype,rtol,floor", [(np.float32, 1e-2, 1e-7), (np.float64, 1e-9, 1e-14)],
                         ids=["float32", "float64"])
@pytest.mark.parametrize("solver_type,lr,momentum", list(sweep()))
def test_least_squares_update(data, solver_type, lr, momentum, share, dtype, rtol, floor):
    x, y, _ = data
    solver = make_solver(data, solver_type, lr, momentum, share=share, dtype=dtype)
    assert type(solver).__name__ == f"{solver_type}Solver"
    assert len(solver.learnable_params) == 2  # shared params have one owner
    assert len(solver.history) == 2 * solver.history_per_param
    p = solver.param
    for k in range(5):  # the update after K = 0..4 steps
        w, b = (param.data.astype(np.float64).ravel() for param in solver.learnable_params)
        history = [h.astype(np.float64).ravel() for h in solver.history]
        gw, gb = least_squares_gradient(x, y, w, b[0], p.weight_decay)
        grad = np.concatenate([gw, [gb]])
        per_param = solver.history_per_param
        blocks = [np.concatenate([history[j * 2], history[j * 2 + 1]]) for j in range(per_param)]
        update = expected_update(solver_type, p, grad, blocks, t=k + 1)
        solver.step(1)
        assert solver.iter == k + 1
        got = np.concatenate([param.data.astype(np.float64).ravel()
                              for param in solver.learnable_params])
        diff = np.concatenate([param.diff.astype(np.float64).ravel()
                               for param in solver.learnable_params])
        expected = np.concatenate([w, b]) - update
        # Caffe's margin: max(kMinPrecision, kPrecision · min(|expected|, |actual|))
        margin = np.maximum(floor, rtol * np.minimum(np.abs(expected), np.abs(got)))
        assert np.all(np.abs(got - expected) <= margin), (k, got, expected)
        margin = np.maximum(floor, rtol * np.minimum(np.abs(update), np.abs(diff)))
        assert np.all(np.abs(diff - update) <= margin), (k, diff, update)
        if solver_type == "SGD":  # the history is the last update (learning rate included)
            hist = np.concatenate([h.astype(np.float64).ravel() for h in solver.history])
            assert np.all(np.abs(hist - update) <= margin)


@pytest.mark.parametrize("solver_type", SOLVER_TYPES)
def test_iter_size_two_half_batches_equal_full_batches(data, solver_type):
    full = make_solver(data, solver_type, 0.01, 0.9, dtype=np.float64)
    accumulated = make_solver(data, solver_type, 0.01, 0.9, dtype=np.float64, iter_size=2)
    assert accumulated.net.blobs["data"].shape[0] == N // 2
    for before, after in zip(params_of(full), params_of(accumulated)):
        np.testing.assert_array_equal(before, after)  # same seed: same initial weights
    full.step(4)
    accumulated.step(4)
    for a, b in zip(params_of(full), params_of(accumulated)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(full.history, accumulated.history):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("regularization", ["L2", "L1"])
@pytest.mark.parametrize("solver_type", SOLVER_TYPES)
def test_chunked_update_on_threads_equals_whole_arrays(solver_type, regularization, monkeypatch):
    """The update runs a param in chunks split among the threads; every step is elementwise,
    so the weights and history equal those of one pass over whole arrays, bit for bit."""
    from caffelite import runtime
    from caffelite.solvers import solver as solver_module

    def train(chunk, split_min, threads):
        monkeypatch.setattr(solver_module, "UPDATE_CHUNK", chunk)
        monkeypatch.setattr(solver_module, "UPDATE_SPLIT_MIN", split_min)
        monkeypatch.setattr(runtime.threads, "_num_threads", threads)
        settings = {**SOLVER_SETTINGS[solver_type], "iter_size": 2}
        param = solver_param(mnist_net(batch_size=4, hidden=37, dropout=False),
                             type=solver_type, weight_decay=5e-3,
                             regularization_type=regularization, **settings)
        solver = Solver(param)
        solver.step(3)
        return params_of(solver) + [h.copy() for h in solver.history]

    whole = train(1 << 40, 1 << 40, 1)
    chunked = train(1000, 3000, 2)  # ip1's 29,008 weights: two ranges of 15 chunks
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)
