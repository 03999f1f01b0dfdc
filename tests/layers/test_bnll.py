"""BNLL: forward vs torch softplus and log1p(exp(x)); stable for large |x|; gradient; in place."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, in_place=False, dtype=np.float64):
    layer = make_layer("type: 'BNLL'", dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


def test_forward_formula(rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 3
    _, _, top = run(x)
    np.testing.assert_allclose(top.data, np.log(1 + np.exp(x)), rtol=1e-12)


def test_forward_matches_torch_softplus(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = (rng.normal(size=(4, 9)) * 5).astype(np.float32)
    _, _, top = run(x, dtype=np.float32)
    expected = torch.nn.functional.softplus(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(top.data, expected, rtol=1e-6, atol=1e-7)


def test_large_inputs_do_not_overflow():
    x = np.array([-1000.0, -60.0, 60.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise"):
        layer, bottom, top = run(x, dtype=np.float32)
        top.diff[...] = 1
        layer.backward([top], [True], [bottom])
    np.testing.assert_allclose(top.data, [0.0, np.exp(-60.0), 60.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(bottom.diff, [0.0, np.exp(-60.0), 1.0, 1.0], rtol=1e-5)


def test_gradient(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer("type: 'BNLL'"), [blob_from(x)], [Blob(dtype=np.float64)])


def test_backward_is_sigmoid_in_and_out_of_place(rng):
    x = rng.normal(size=(3, 4)) * 4
    dy = rng.normal(size=x.shape)
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), in_place=in_place)
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        np.testing.assert_allclose(bottom.diff, dy / (1 + np.exp(-x)), rtol=1e-10)
