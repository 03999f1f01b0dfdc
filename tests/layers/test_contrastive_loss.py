"""ContrastiveLoss: current and legacy forms vs a NumPy loop, hand-computed case, gradients."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(a, b, y, params=""):
    layer = make_layer(f"type: 'ContrastiveLoss' {params}")
    bottom = [blob_from(a), blob_from(b), blob_from(y)]
    top = [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def loop_loss(a, b, y, margin, legacy):
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        d2 = float(((a[i] - b[i]) ** 2).sum())
        if int(y.reshape(-1)[i]):
            total += d2
        elif legacy:
            total += max(margin - d2, 0.0)
        else:
            total += max(margin - np.sqrt(d2), 0.0) ** 2
    return total / n / 2


@pytest.fixture
def pairs(rng):
    a = rng.uniform(-1, 1, size=(6, 4, 1, 1))
    b = rng.uniform(-1, 1, size=(6, 4, 1, 1))
    y = np.array([1, 0, 0, 1, 0, 1], dtype=np.float64).reshape(6, 1, 1, 1)
    return a, b, y


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("margin", [1.0, 2.0])
def test_forward_matches_loop(legacy, margin, pairs):
    a, b, y = pairs
    params = (f"contrastive_loss_param {{ margin: {margin} "
              f"legacy_version: {str(legacy).lower()} }}")
    _, _, top = run(a, b, y, params)
    np.testing.assert_allclose(float(top[0].data), loop_loss(a, b, y, margin, legacy),
                               rtol=1e-13)


def test_hand_computed():
    a = np.array([[0.0, 0.0], [0.0, 0.0]])
    b = np.array([[0.3, 0.4], [0.3, 0.4]])  # d = 0.5 for both pairs
    y = np.array([1.0, 0.0])
    _, _, top = run(a, b, y)
    assert float(top[0].data) == pytest.approx((0.25 + 0.5 ** 2) / 4)
    _, _, top = run(a, b, y, "contrastive_loss_param { legacy_version: true }")
    assert float(top[0].data) == pytest.approx((0.25 + 0.75) / 4)


@pytest.mark.parametrize("params", ["", "contrastive_loss_param { legacy_version: true }",
                                    "contrastive_loss_param { margin: 2 }"])
def test_gradient(params, pairs):
    a, b, y = pairs
    layer = make_layer(f"type: 'ContrastiveLoss' {params}")
    check_gradient(layer, [blob_from(a), blob_from(b), blob_from(y)], [Blob(dtype=np.float64)],
                   check_bottom=[0, 1], threshold=1e-2)


def test_no_gradient_beyond_the_margin():
    a, b, y = np.zeros((1, 2)), np.array([[3.0, 4.0]]), np.zeros(1)
    layer, bottom, top = run(a, b, y)
    assert float(top[0].data) == 0.0
    layer.backward(top, [True, True, False], bottom)
    assert not bottom[0].diff.any() and not bottom[1].diff.any()
    assert not layer.allow_force_backward(2)
