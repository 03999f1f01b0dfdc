"""PReLU: blob shapes and filler, forward and gradients vs torch prelu/autograd, accumulation."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer


def build(x, text="", in_place=False, dtype=np.float64):
    layer = make_layer(f"type: 'PReLU' {text}", dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    return layer, bottom, top


def test_blob_shapes_and_default_filler(rng):
    layer, _, _ = build(rng.normal(size=(2, 3, 4, 5)))
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    shared, _, _ = build(rng.normal(size=(2, 3, 4, 5)), "prelu_param { channel_shared: true }")
    assert shared.blobs[0].shape == ()  # Caffe's 0-axis Blob(vector<int>(0))
    assert shared.blobs[0].count() == 1
    np.testing.assert_array_equal(shared.blobs[0].data, 0.25)


def test_filler_is_used(rng):
    layer, _, _ = build(rng.normal(size=(2, 6, 3)),
                        "prelu_param { filler { type: 'uniform' min: 0.5 max: 0.7 } }")
    a = layer.blobs[0].data
    assert a.shape == (6,) and np.all((a >= 0.5) & (a <= 0.7)) and np.unique(a).size == 6


@pytest.mark.parametrize("shared", [False, True])
def test_forward_formula(shared, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    layer, bottom, top = build(x, f"prelu_param {{ channel_shared: {str(shared).lower()} }}")
    a = np.array(0.3) if shared else np.array([0.1, -0.2, 0.7])
    layer.blobs[0].data[...] = a
    layer.forward([bottom], [top])
    slope = a if shared else a[None, :, None, None]
    np.testing.assert_allclose(top.data, np.where(x > 0, x, slope * x), rtol=1e-12)


@pytest.mark.parametrize("shared", [False, True])
def test_forward_and_gradients_match_torch(shared, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(4, 3, 5, 2)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    layer, bottom, top = build(x, f"prelu_param {{ channel_shared: {str(shared).lower()} }}",
                               dtype=np.float32)
    a = np.float32([0.3]) if shared else rng.uniform(-0.5, 0.5, size=3).astype(np.float32)
    layer.blobs[0].data[...] = a.reshape(layer.blobs[0].shape)
    layer.forward([bottom], [top])
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])

    tx = torch.from_numpy(x).requires_grad_()
    ta = torch.from_numpy(a).requires_grad_()
    ty = torch.nn.functional.prelu(tx, ta)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(top.data, ty.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bottom.diff, tx.grad.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layer.blobs[0].diff.reshape(-1), ta.grad.numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shared", ["false", "true"])
def test_gradient(shared, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    layer = make_layer(f"type: 'PReLU' prelu_param {{ channel_shared: {shared} "
                       "filler { type: 'gaussian' } }")
    check_gradient(layer, [blob_from(x)], [Blob(dtype=np.float64)], kink=0.0, kink_range=0.01)


def test_param_diff_accumulates_and_in_place(rng):
    x = rng.normal(size=(2, 3, 4))
    dy = rng.normal(size=x.shape)
    grads = []
    for in_place in (False, True):
        layer, bottom, top = build(x.copy(), in_place=in_place)
        for _ in range(2):  # two backward passes add up in the slope diff
            layer.forward([bottom], [top])
            top.diff[...] = dy
            layer.backward([top], [True], [bottom])
            if in_place:
                bottom.data[...] = x  # the next forward reads x again
        grads.append((bottom.diff.copy(), layer.blobs[0].diff.copy()))
    expected_da = 2 * (dy * x * (x <= 0)).sum(axis=(0, 2))
    np.testing.assert_allclose(grads[0][1], expected_da, rtol=1e-12)
    np.testing.assert_allclose(grads[1][1], expected_da, rtol=1e-12)
    np.testing.assert_allclose(grads[1][0], dy * np.where(x > 0, 1, 0.25), rtol=1e-12)
    np.testing.assert_array_equal(grads[0][0], grads[1][0])


def test_needs_two_axes():
    with pytest.raises(NetError, match=r"layer 'test' \(PReLU\).*at least 2 axes"):
        build(np.zeros(5))
