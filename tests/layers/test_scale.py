"""Scale: broadcasting (axis, num_axes, scalar), learned or bottom[1] scale, bias_term, grads."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer


def setup(params, *arrays):
    layer = make_layer(f"type: 'Scale' {params}")
    bottom, top = [blob_from(a) for a in arrays], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    return layer, bottom, top


@pytest.fixture
def x(rng):
    return rng.normal(size=(2, 3, 4, 5))


@pytest.mark.parametrize("params, shape, expand", [
    ("", (3,), lambda s: s[None, :, None, None]),
    ("scale_param { axis: 0 num_axes: 2 }", (2, 3), lambda s: s[:, :, None, None]),
    ("scale_param { axis: -2 num_axes: -1 }", (4, 5), lambda s: s[None, None]),
    ("scale_param { num_axes: 0 }", (), lambda s: s),
    ("scale_param { axis: 1 num_axes: 3 }", (3, 4, 5), lambda s: s[None]),
])
def test_learned_scale_broadcasts(params, shape, expand, x, rng):
    layer, bottom, top = setup(params, x)
    assert [b.shape for b in layer.blobs] == [shape]
    np.testing.assert_array_equal(layer.blobs[0].data, np.ones(shape))  # default filler: 1
    s = rng.normal(size=shape)
    layer.blobs[0].data[...] = s
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x * expand(s), rtol=1e-14)


def test_scale_from_second_bottom_with_bias(x, rng):
    s = rng.normal(size=(3, 4))
    layer, bottom, top = setup("scale_param { bias_term: true bias_filler { type: 'constant' "
                               "value: 0.5 } }", x, s)
    assert [b.shape for b in layer.blobs] == [(3, 4)]  # only the bias is learned
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x * s[None, :, :, None] + 0.5, rtol=1e-14)


def test_scalar_second_bottom_ignores_axis(x):
    layer, bottom, top = setup("scale_param { axis: 2 }", x, np.array(3.0))
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, 3 * x)


def test_bias_term_blob_order_and_fillers(x):
    layer, bottom, top = setup("scale_param { bias_term: true filler { type: 'constant' "
                               "value: 2 } }", x)
    assert [b.shape for b in layer.blobs] == [(3,), (3,)]
    np.testing.assert_array_equal(layer.blobs[0].data, [2, 2, 2])
    np.testing.assert_array_equal(layer.blobs[1].data, [0, 0, 0])  # bias_filler default 0
    layer.blobs[1].data[...] = [1, 2, 3]
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, 2 * x + np.array([1, 2, 3])[None, :, None, None])


@pytest.mark.parametrize("params", [
    "scale_param { bias_term: true }",
    "scale_param { axis: 0 num_axes: -1 }",
    "scale_param { num_axes: 0 bias_term: true }",
])
def test_gradient_learned(params, rng):
    layer = make_layer(f"type: 'Scale' {params}")
    bottom = [blob_from(rng.normal(size=(2, 3, 2)))]
    layer.setup(bottom, [Blob(dtype=np.float64)])
    for blob in layer.blobs:
        blob.data[...] = rng.normal(size=blob.shape)
    check_gradient(layer, bottom, [Blob(dtype=np.float64)], setup=False)


@pytest.mark.parametrize("params, scale_shape", [
    ("", (3,)), ("scale_param { axis: 0 bias_term: true }", (2, 3)), ("", ()),
])
def test_gradient_second_bottom(params, scale_shape, rng):
    layer = make_layer(f"type: 'Scale' {params}")
    bottom = [blob_from(rng.normal(size=(2, 3, 2))), blob_from(rng.normal(size=scale_shape))]
    check_gradient(layer, bottom, [Blob(dtype=np.float64)])


def test_in_place_gradients(x, rng):
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer, bottom, top = setup("scale_param { bias_term: true }", x)
        layer.blobs[0].data[...] = [1.5, -2.0, 0.5]
        if in_place:
            top = bottom
            layer.reshape(bottom, top)
        layer.forward(bottom, top)
        out = top[0].data.copy()
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        results.append((out, bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
                        layer.blobs[1].diff.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_param_diffs_accumulate(x, rng):
    layer, bottom, top = setup("scale_param { bias_term: true }", x)
    top[0].diff[...] = rng.normal(size=x.shape)
    layer.forward(bottom, top)
    layer.backward(top, [True], bottom)
    once = [b.diff.copy() for b in layer.blobs]
    layer.backward(top, [True], bottom)
    for blob, first in zip(layer.blobs, once):
        np.testing.assert_allclose(blob.diff, 2 * first)


def test_shape_mismatch_is_an_error(x):
    with pytest.raises(NetError, match=r"layer 'sc' \(Scale\).*\(4,\).*does not match"):
        setup("name: 'sc'", x, np.ones(4))
    with pytest.raises(NetError, match=r"layer 'sc' \(Scale\).*extend past"):
        setup("name: 'sc' scale_param { axis: 2 num_axes: 3 }", x)
