"""EuclideanLoss: Σ‖a - b‖²/(2N) vs torch mse_loss, gradients to both bottoms, loss weight."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(a, b, params=""):
    layer = make_layer(f"type: 'EuclideanLoss' {params}")
    bottom, top = [blob_from(a), blob_from(b)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def test_forward_matches_torch_and_formula(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    a, b = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    _, _, top = run(a, b)
    assert top[0].shape == ()
    expected = torch.nn.functional.mse_loss(torch.from_numpy(a), torch.from_numpy(b),
                                            reduction="sum").item() / (2 * 5)
    np.testing.assert_allclose(float(top[0].data), expected, rtol=1e-13)
    np.testing.assert_allclose(float(top[0].data), ((a - b) ** 2).sum() / 10, rtol=1e-13)


def test_label_blob_may_have_another_shape_with_the_same_count(rng):
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 2, 3))
    _, _, top = run(a, b)
    np.testing.assert_allclose(float(top[0].data), ((a - b.reshape(4, 6)) ** 2).sum() / 8)


def test_backward_scales_by_loss_weight(rng):
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    layer, bottom, top = run(a, b, "loss_weight: 2.5")
    assert float(top[0].diff) == 2.5
    layer.backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[0].diff, 2.5 * (a - b) / 4)
    np.testing.assert_allclose(bottom[1].diff, -2.5 * (a - b) / 4)
    assert layer.allow_force_backward(1)


def test_gradient(rng):
    layer = make_layer("type: 'EuclideanLoss'")
    bottom = [blob_from(rng.normal(size=(5, 3, 2))), blob_from(rng.normal(size=(5, 3, 2)))]
    check_gradient(layer, bottom, [Blob(dtype=np.float64)], threshold=1e-2)


def test_dimension_mismatch_is_an_error():
    with pytest.raises(NetError, match=r"layer 'loss' \(EuclideanLoss\).*same dimension"):
        run(np.ones((3, 4)), np.ones((3, 5)), "name: 'loss'")
