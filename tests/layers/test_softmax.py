"""Softmax: forward vs a NumPy formula and torch.softmax on several axes; gradient; stability."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import blob_from, check_gradient, make_layer


def reference(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def forward(x, axis=None, dtype=np.float64):
    text = "type: 'Softmax'" + (f" softmax_param {{ axis: {axis} }}" if axis is not None else "")
    layer = make_layer(text, dtype=dtype)
    bottom, top = blob_from(x, dtype=dtype), Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return top.data


@pytest.mark.parametrize("axis", [None, 0, 2, -1])
def test_forward_formula(axis, rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 3
    np.testing.assert_allclose(forward(x, axis), reference(x, 1 if axis is None else axis),
                               rtol=1e-12)


@pytest.mark.parametrize("axis", [1, 3])
def test_forward_matches_torch(axis, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    expected = torch.softmax(torch.from_numpy(x), dim=axis).numpy()
    np.testing.assert_allclose(forward(x, axis, np.float32), expected, rtol=1e-5, atol=1e-7)


def test_large_inputs_are_stable():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], dtype=np.float32)
    y = forward(x, dtype=np.float32)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(y[0], reference(np.array([1.0, 2.0, 0.0]), 0), rtol=1e-6)


@pytest.mark.parametrize("axis", [1, 2])
def test_gradient(axis, rng):
    layer = make_layer(f"type: 'Softmax' softmax_param {{ axis: {axis} }}")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 3, 2, 2)))], [Blob()])


def test_in_place(rng):
    x = rng.normal(size=(3, 4))
    layer = make_layer("type: 'Softmax'")
    blob = blob_from(x)
    layer.setup([blob], [blob])
    layer.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, reference(x, 1), rtol=1e-12)
    dy = rng.normal(size=x.shape)
    blob.diff[...] = dy
    layer.backward([blob], [True], [blob])
    y = reference(x, 1)
    np.testing.assert_allclose(blob.diff, (dy - (dy * y).sum(1, keepdims=True)) * y, rtol=1e-10)


def test_bad_axis():
    with pytest.raises(CaffeliteError, match="axis"):
        forward(np.zeros((2, 3)), axis=4)
