"""Sigmoid: forward vs 1/(1+exp(-x)) and torch.sigmoid; no overflow; gradient; in place."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, in_place=False, dtype=np.float64):
    layer = make_layer("type: 'Sigmoid'", dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


def test_forward_formula(rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 3
    _, _, top = run(x)
    np.testing.assert_allclose(top.data, 1 / (1 + np.exp(-x)), rtol=1e-12)


def test_forward_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = (rng.normal(size=(4, 7)) * 4).astype(np.float32)
    _, _, top = run(x, dtype=np.float32)
    np.testing.assert_allclose(top.data, torch.sigmoid(torch.from_numpy(x)).numpy(),
                               rtol=1e-6, atol=1e-7)
    assert top.data.dtype == np.float32


def test_saturates_without_overflow():
    with np.errstate(all="raise"):
        _, _, top = run(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32),
                        dtype=np.float32)
    np.testing.assert_allclose(top.data, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)


def test_gradient(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer("type: 'Sigmoid'"), [blob_from(x)], [Blob(dtype=np.float64)])


def test_backward_values(rng):
    x = rng.normal(size=(3, 4))
    layer, bottom, top = run(x)
    dy = rng.normal(size=x.shape)
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(bottom.diff, dy * s * (1 - s), rtol=1e-10)


def test_in_place_equals_out_of_place(rng):
    x = rng.normal(size=(2, 3, 5))
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), in_place=in_place)
        y = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        results.append((y, bottom.diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
