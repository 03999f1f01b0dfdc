"""SigmoidCrossEntropyLoss: vs torch BCE-with-logits, Caffe's default BATCH_SIZE normalisation."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, t, params=""):
    layer = make_layer(f"type: 'SigmoidCrossEntropyLoss' {params}")
    bottom, top = [blob_from(x), blob_from(t)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def elementwise(x, t):
    """The textbook form, -[t log σ(x) + (1 - t) log(1 - σ(x))]."""
    p = 1 / (1 + np.exp(-x))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


@pytest.fixture
def data(rng):
    x = rng.normal(size=(4, 3, 2)) * 3
    t = rng.integers(0, 2, size=x.shape).astype(np.float64)
    return x, t


def test_default_normalization_is_batch_size(data):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x, t = data
    _, _, top = run(x, t)
    summed = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(x), torch.from_numpy(t), reduction="sum").item()
    np.testing.assert_allclose(float(top[0].data), summed / 4, rtol=1e-12)
    np.testing.assert_allclose(float(top[0].data), elementwise(x, t).sum() / 4, rtol=1e-12)


def test_hand_computed():
    x = np.array([[0.0, 2.0]])
    t = np.array([[1.0, 0.0]])
    _, _, top = run(x, t)
    assert float(top[0].data) == pytest.approx(np.log(2) + np.log(1 + np.exp(2)))


@pytest.mark.parametrize("params, divisor", [
    ("loss_param { normalization: FULL }", 24),
    ("loss_param { normalization: VALID }", 24),
    ("loss_param { normalization: NONE }", 1),
    ("loss_param { normalize: true }", 24),  # deprecated normalize: true means VALID
    ("loss_param { normalize: false }", 4),
])
def test_normalization_modes(params, divisor, data):
    x, t = data
    _, _, top = run(x, t, params)
    np.testing.assert_allclose(float(top[0].data), elementwise(x, t).sum() / divisor,
                               rtol=1e-12)


def test_soft_targets_match_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x, t = rng.normal(size=(3, 5)) * 4, rng.uniform(size=(3, 5))
    layer, bottom, top = run(x, t)
    tx = torch.from_numpy(x).requires_grad_()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, torch.from_numpy(t), reduction="sum") / 3
    loss.backward()
    np.testing.assert_allclose(float(top[0].data), loss.item(), rtol=1e-12)
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10)


def test_ignore_label(data):
    x, t = data
    t[0, 0, :] = -1
    t[2, 1, 0] = -1
    layer, bottom, top = run(x, t, "loss_param { ignore_label: -1 normalization: VALID }")
    keep = t != -1
    np.testing.assert_allclose(float(top[0].data),
                               elementwise(x[keep], t[keep]).sum() / keep.sum(), rtol=1e-12)
    layer.backward(top, [True, False], bottom)
    assert (bottom[0].diff[~keep] == 0).all()
    p = 1 / (1 + np.exp(-x[keep]))
    np.testing.assert_allclose(bottom[0].diff[keep], (p - t[keep]) / keep.sum(), rtol=1e-10)
    # the default normalisation stays BATCH_SIZE with an ignore_label
    _, _, top = run(x, t, "loss_param { ignore_label: -1 }")
    np.testing.assert_allclose(float(top[0].data), elementwise(x[keep], t[keep]).sum() / 4,
                               rtol=1e-12)


def test_large_scores_are_stable():
    _, _, top = run(np.array([[1000.0, -1000.0]]), np.array([[0.0, 1.0]]))
    assert float(top[0].data) == pytest.approx(2000.0)


@pytest.mark.parametrize("params", ["", "loss_param { ignore_label: -1 normalization: VALID }"])
def test_gradient(params, data):
    x, t = data
    t[1, 0, 1] = -1
    layer = make_layer(f"type: 'SigmoidCrossEntropyLoss' {params}")
    check_gradient(layer, [blob_from(x), blob_from(t)], [Blob(dtype=np.float64)],
                   check_bottom=[0])
