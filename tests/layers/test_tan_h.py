"""TanH: forward vs the exp formula and torch.tanh; gradient; in place."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, in_place=False, dtype=np.float64):
    layer = make_layer("type: 'TanH'", dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


def test_forward_formula(rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 2
    _, _, top = run(x)
    expected = (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1)
    np.testing.assert_allclose(top.data, expected, rtol=1e-12, atol=1e-15)


def test_forward_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = (rng.normal(size=(4, 7)) * 3).astype(np.float32)
    _, _, top = run(x, dtype=np.float32)
    np.testing.assert_allclose(top.data, torch.tanh(torch.from_numpy(x)).numpy(),
                               rtol=1e-6, atol=1e-7)


def test_saturates():
    _, _, top = run(np.array([-100.0, 0.0, 100.0]))
    np.testing.assert_array_equal(top.data, [-1.0, 0.0, 1.0])


def test_gradient(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer("type: 'TanH'"), [blob_from(x)], [Blob(dtype=np.float64)])


def test_backward_values_and_in_place(rng):
    x = rng.normal(size=(3, 4))
    dy = rng.normal(size=x.shape)
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), in_place=in_place)
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        np.testing.assert_allclose(bottom.diff, dy * (1 - np.tanh(x) ** 2), rtol=1e-10)
