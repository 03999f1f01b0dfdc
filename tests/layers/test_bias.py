"""Bias: broadcasting (axis, num_axes, scalar), learned or bottom[1] bias, gradients, errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer


def setup(params, *arrays):
    layer = make_layer(f"type: 'Bias' {params}")
    bottom, top = [blob_from(a) for a in arrays], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    return layer, bottom, top


@pytest.fixture
def x(rng):
    return rng.normal(size=(2, 3, 4, 5))


@pytest.mark.parametrize("params, shape, expand", [
    ("", (3,), lambda b: b[None, :, None, None]),
    ("bias_param { axis: 0 num_axes: 2 }", (2, 3), lambda b: b[:, :, None, None]),
    ("bias_param { axis: 2 num_axes: -1 }", (4, 5), lambda b: b[None, None]),
    ("bias_param { num_axes: 0 }", (), lambda b: b),
])
def test_learned_bias_broadcasts(params, shape, expand, x, rng):
    layer, bottom, top = setup(params, x)
    assert [b.shape for b in layer.blobs] == [shape]
    np.testing.assert_array_equal(layer.blobs[0].data, np.zeros(shape))  # default filler: 0
    b = rng.normal(size=shape)
    layer.blobs[0].data[...] = b
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x + expand(b), rtol=1e-14)


def test_filler_and_second_bottom(x, rng):
    layer, _, _ = setup("bias_param { filler { type: 'constant' value: 0.25 } }", x)
    np.testing.assert_array_equal(layer.blobs[0].data, [0.25] * 3)
    b = rng.normal(size=(3, 4))
    layer, bottom, top = setup("", x, b)
    assert layer.blobs == []
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x + b[None, :, :, None])


@pytest.mark.parametrize("params", ["", "bias_param { axis: 0 num_axes: -1 }",
                                    "bias_param { num_axes: 0 }"])
def test_gradient_learned(params, rng):
    layer = make_layer(f"type: 'Bias' {params}")
    bottom = [blob_from(rng.normal(size=(2, 3, 2)))]
    layer.setup(bottom, [Blob(dtype=np.float64)])
    layer.blobs[0].data[...] = rng.normal(size=layer.blobs[0].shape)
    check_gradient(layer, bottom, [Blob(dtype=np.float64)], setup=False)


@pytest.mark.parametrize("bias_shape", [(3,), (3, 2), ()])
def test_gradient_second_bottom(bias_shape, rng):
    layer = make_layer("type: 'Bias'")
    bottom = [blob_from(rng.normal(size=(2, 3, 2))), blob_from(rng.normal(size=bias_shape))]
    check_gradient(layer, bottom, [Blob(dtype=np.float64)])


def test_in_place(x, rng):
    layer, bottom, _ = setup("", x)
    layer.blobs[0].data[...] = [1.0, 2.0, 3.0]
    layer.forward(bottom, bottom)
    np.testing.assert_allclose(bottom[0].data, x + np.array([1, 2, 3])[None, :, None, None])
    dy = rng.normal(size=x.shape)
    bottom[0].diff[...] = dy
    layer.backward(bottom, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, dy)
    np.testing.assert_allclose(layer.blobs[0].diff, dy.sum(axis=(0, 2, 3)))


def test_shape_mismatch_is_an_error(x):
    with pytest.raises(NetError, match=r"layer 'b' \(Bias\).*does not match"):
        setup("name: 'b'", x, np.ones((3, 5)))
    with pytest.raises(NetError, match=r"layer 'b' \(Bias\).*num_axes"):
        setup("name: 'b' bias_param { num_axes: -2 }", x)
