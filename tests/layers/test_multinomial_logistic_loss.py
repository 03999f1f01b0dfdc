"""MultinomialLogisticLoss: -Σ log p[label]/N vs torch nll_loss, the 1e-20 floor, gradients."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(p, labels, params=""):
    layer = make_layer(f"type: 'MultinomialLogisticLoss' {params}")
    bottom, top = [blob_from(p), blob_from(labels)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.fixture
def data(rng):
    p = rng.uniform(0.3, 1.0, size=(5, 4, 1, 1))
    return p, rng.integers(0, 4, size=(5, 1, 1, 1)).astype(np.float64)


def test_forward_and_backward_match_torch(data):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    p, labels = data
    layer, bottom, top = run(p, labels, "loss_weight: 2")
    tp = torch.from_numpy(p[:, :, 0, 0]).requires_grad_()
    loss = 2 * torch.nn.functional.nll_loss(torch.log(tp), torch.from_numpy(labels).long().view(-1))
    loss.backward()
    np.testing.assert_allclose(2 * float(top[0].data), loss.item(), rtol=1e-13)
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff[:, :, 0, 0], tp.grad.numpy(), rtol=1e-13)


def test_zero_probability_is_floored():
    p = np.array([[0.0, 1.0], [0.5, 0.5]])
    layer, bottom, top = run(p, np.array([0.0, 1.0]))
    assert float(top[0].data) == pytest.approx((-np.log(1e-20) - np.log(0.5)) / 2)
    layer.backward(top, [True, False], bottom)
    assert bottom[0].diff[0, 0] == pytest.approx(-1.0 / 2 / 1e-20)
    assert bottom[0].diff[0, 1] == 0


def test_gradient(data):
    p, labels = data
    layer = make_layer("type: 'MultinomialLogisticLoss'")
    check_gradient(layer, [blob_from(p), blob_from(labels)], [Blob(dtype=np.float64)],
                   check_bottom=[0], threshold=2e-2)
