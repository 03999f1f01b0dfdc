"""ELU: forward vs the formula and torch elu; gradients vs torch autograd and the checker."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, alpha=None, in_place=False, dtype=np.float64):
    text = "type: 'ELU'" + (f" elu_param {{ alpha: {alpha} }}" if alpha is not None else "")
    layer = make_layer(text, dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


@pytest.mark.parametrize("alpha", [None, 0.5, 2.0])
def test_forward_formula(alpha, rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 2
    _, _, top = run(x, alpha)
    a = 1.0 if alpha is None else alpha
    np.testing.assert_allclose(top.data, np.where(x > 0, x, a * (np.exp(x) - 1)), rtol=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_forward_and_gradient_match_torch(alpha, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = (rng.normal(size=(4, 3, 5)) * 2).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    layer, bottom, top = run(x, alpha, dtype=np.float32)
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.elu(tx, alpha=float(np.float32(alpha)))
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(top.data, ty.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bottom.diff, tx.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_gradient(alpha, rng):
    text = "type: 'ELU'" + (f" elu_param {{ alpha: {alpha} }}" if alpha is not None else "")
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer(text), [blob_from(x)], [Blob(dtype=np.float64)],
                   kink=0.0, kink_range=0.01)


def test_in_place_equals_out_of_place(rng):
    x = rng.normal(size=(2, 3, 5))
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), 0.7, in_place=in_place)
        y = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        results.append((y, bottom.diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
