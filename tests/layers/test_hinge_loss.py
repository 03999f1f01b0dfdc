"""HingeLoss: L1 and L2 one-vs-all hinge vs a NumPy loop, hand-computed case, gradients."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, labels, params=""):
    layer = make_layer(f"type: 'HingeLoss' {params}")
    bottom, top = [blob_from(x), blob_from(labels)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def loop_loss(x, labels, power):
    n = x.shape[0]
    x = x.reshape(n, -1)
    total = 0.0
    for i in range(n):
        for k in range(x.shape[1]):
            sign = -1.0 if k == int(labels[i]) else 1.0
            total += max(0.0, 1.0 + sign * x[i, k]) ** power
    return total / n


@pytest.fixture
def data(rng):
    x = rng.normal(size=(6, 5, 1, 1)) * 2
    return x, rng.integers(0, 5, size=6).astype(np.float64)


@pytest.mark.parametrize("norm, power", [("L1", 1), ("L2", 2)])
def test_forward_matches_loop(norm, power, data):
    x, labels = data
    _, _, top = run(x, labels, f"hinge_loss_param {{ norm: {norm} }}")
    np.testing.assert_allclose(float(top[0].data), loop_loss(x, labels, power), rtol=1e-13)


def test_hand_computed():
    x = np.array([[2.0, 0.5, -3.0]])
    # true class 0: max(0, 1 - 2) = 0; others: max(0, 1.5) = 1.5, max(0, -2) = 0
    _, _, top = run(x, np.array([0.0]))
    assert float(top[0].data) == pytest.approx(1.5)
    _, _, top = run(x, np.array([0.0]), "hinge_loss_param { norm: L2 }")
    assert float(top[0].data) == pytest.approx(2.25)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_gradient(norm, data):
    x, labels = data
    layer = make_layer(f"type: 'HingeLoss' hinge_loss_param {{ norm: {norm} }}")
    # kinks where 1 + s·x = 0, i.e. |x| = 1 (Caffe's test skips them the same way)
    check_gradient(layer, [blob_from(x), blob_from(labels)], [Blob(dtype=np.float64)],
                   check_bottom=[0], threshold=2e-3, kink=1.0, kink_range=0.01)


def test_label_out_of_range_is_an_error(data):
    x, labels = data
    labels[2] = 5
    with pytest.raises(NetError, match=r"\(HingeLoss\).*label 5 out of range"):
        run(x, labels)
