"""Swish: forward vs x·sigmoid(beta·x) and torch silu; gradients vs autograd; in place."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def text(beta):
    return "type: 'Swish'" + (f" swish_param {{ beta: {beta} }}" if beta is not None else "")


def run(x, beta=None, in_place=False, dtype=np.float64):
    layer = make_layer(text(beta), dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


@pytest.mark.parametrize("beta", [None, 1.5, 0.3])
def test_forward_formula(beta, rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 3
    _, _, top = run(x, beta)
    b = 1.0 if beta is None else float(np.float32(beta))
    np.testing.assert_allclose(top.data, x / (1 + np.exp(-b * x)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("beta", [1.0, 1.7])
def test_forward_and_gradient_match_torch(beta, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = (rng.normal(size=(4, 3, 5)) * 3).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    layer, bottom, top = run(x, beta, dtype=np.float32)
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    tx = torch.from_numpy(x).requires_grad_()
    ty = tx * torch.sigmoid(np.float32(beta) * tx)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(top.data, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bottom.diff, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    if beta == 1.0:
        silu = torch.nn.functional.silu(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(top.data, silu, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("beta", [None, 1.5])
def test_gradient(beta, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer(text(beta)), [blob_from(x)], [Blob(dtype=np.float64)])


def test_in_place_equals_out_of_place(rng):
    x = rng.normal(size=(2, 3, 5))
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), 1.5, in_place=in_place)
        y = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        results.append((y, bottom.diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-14)
