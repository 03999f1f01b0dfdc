"""Crop: slicing formula, Caffe's shape cases, gradient check, errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64


def run(text, big, ref_shape):
    layer = make_layer("type: 'Crop' crop_param { " + text + " }")
    bottom = [blob_from(big), Blob(ref_shape, F64)]
    top = [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize("text, ref_shape, slices", [
    ("", (2, 4, 3, 2), np.s_[:, :, 0:3, 0:2]),                   # default axis 2, offset 0
    ("axis: 0", (1, 2, 3, 4), np.s_[0:1, 0:2, 0:3, 0:4]),        # crop every axis
    ("axis: 0 offset: 1", (1, 2, 3, 4), np.s_[1:2, 1:3, 1:4, 1:5]),
    ("axis: 2 offset: 1 offset: 2", (2, 4, 3, 3), np.s_[:, :, 1:4, 2:5]),
    ("axis: -1 offset: 2", (2, 4, 5, 2), np.s_[:, :, :, 2:4]),   # negative axis
    ("axis: 1 offset: 0 offset: 1 offset: 2", (2, 3, 4, 3), np.s_[:, 0:3, 1:5, 2:5]),
])
def test_forward_is_the_slice(text, ref_shape, slices, rng):
    x = rng.normal(size=(2, 4, 5, 6))
    layer, bottom, top = run(text, x, ref_shape)
    np.testing.assert_array_equal(top[0].data, x[slices])
    top[0].diff[...] = dy = rng.normal(size=top[0].shape)
    bottom[0].diff[...] = 9
    layer.backward(top, [True, False], bottom)
    want = np.zeros_like(x)
    want[slices] = dy
    np.testing.assert_array_equal(bottom[0].diff, want)


def test_five_d(rng):
    x = rng.normal(size=(2, 3, 4, 5, 6))
    _, _, top = run("axis: 2 offset: 1 offset: 0 offset: 3", x, (2, 3, 2, 4, 3))
    np.testing.assert_array_equal(top[0].data, x[:, :, 1:3, 0:4, 3:6])


def test_gradient(rng):
    layer = make_layer("type: 'Crop' crop_param { axis: 1 offset: 1 }")
    bottom = [blob_from(rng.normal(size=(2, 3, 4, 4))), Blob((2, 2, 2, 3), F64)]
    check_gradient(layer, bottom, [Blob(dtype=F64)], check_bottom=[0])


def test_reference_bottom_gets_no_gradient(rng):
    layer, bottom, top = run("", rng.normal(size=(1, 1, 4, 4)), (1, 1, 2, 2))
    bottom[1].diff[...] = 5
    layer.backward(top, [True, True], bottom)
    assert np.all(bottom[1].diff == 0)


@pytest.mark.parametrize("text, ref_shape, message", [
    ("axis: 2 offset: 1 offset: 2 offset: 3", (2, 4, 3, 3), "one per cropped axis"),
    ("offset: 3", (2, 4, 3, 3), "invalid crop on axis 2"),
    ("", (2, 4, 6, 3), "invalid crop on axis 2"),
    ("", (2, 4, 3), "same number of axes"),
    ("axis: 4", (2, 4, 3, 3), "crop_param.axis"),
])
def test_errors_name_the_layer(text, ref_shape, message):
    layer = make_layer("name: 'crop' type: 'Crop' crop_param { " + text + " }")
    with pytest.raises(NetError, match=message) as info:
        layer.setup([Blob((2, 4, 5, 6), F64), Blob(ref_shape, F64)], [Blob(dtype=F64)])
    assert "layer 'crop' (Crop)" in str(info.value)
