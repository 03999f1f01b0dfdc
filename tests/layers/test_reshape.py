"""Reshape: Caffe's test_reshape_layer cases (0 copies, -1 inferred, axis/num_axes), errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import blob_from, check_gradient, make_layer


def blob64(shape=()):
    return Blob(shape, dtype=np.float64)


def reshape(x, params):
    layer = make_layer(f"type: 'Reshape' reshape_param {{ {params} }}")
    bottom, top = blob_from(x), blob64()
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


def dims(*values):
    return "shape { " + " ".join(f"dim: {v}" for v in values) + " }"


@pytest.mark.parametrize("params, shape", [
    (dims(0, -1, 1, 1), (2, 90, 1, 1)),  # TestFlattenOutputSizes
    (dims(0, 0, 0, 0), (2, 3, 6, 5)),  # TestCopyDimensions
    (dims(0, 3, 10, -1), (2, 3, 10, 3)),  # TestInferenceOfUnspecified
    ("axis: 1 " + dims(3, 10, -1), (2, 3, 10, 3)),  # ...WithStartAxis
    ("axis: 0 num_axes: 0 " + dims(1, 1, 1), (1, 1, 1, 2, 3, 6, 5)),  # InsertSingletonAxesStart
    ("axis: 2 num_axes: 0 " + dims(1, 1, 1), (2, 3, 1, 1, 1, 6, 5)),  # ...Middle
    ("axis: -1 num_axes: 0 " + dims(1, 1, 1), (2, 3, 6, 5, 1, 1, 1)),  # ...End
    ("axis: 1 num_axes: 2 " + dims(-1), (2, 18, 5)),  # TestFlattenMiddle
    ("axis: -2 num_axes: 1 " + dims(5, 1), (2, 3, 6, 5, 1)),  # -2 = the last axis
    (dims(-1), (180,)),
])
def test_output_shapes(params, shape, rng):
    x = rng.normal(size=(2, 3, 6, 5))
    _, _, top = reshape(x, params)
    assert top.shape == shape
    np.testing.assert_array_equal(top.data, x.reshape(shape))


def test_shares_data_and_diff_and_follows_bottom_reshape(rng):
    layer, bottom, top = reshape(rng.normal(size=(2, 3, 6, 5)), dims(0, -1))
    assert top.shape == (2, 90)
    assert np.shares_memory(top.data, bottom.data)
    assert np.shares_memory(top.diff, bottom.diff)
    bottom.reshape(4, 3, 6, 5)  # TestForwardAfterReshape
    bottom.data[...] = rng.normal(size=bottom.shape)
    layer.reshape([bottom], [top])
    layer.forward([bottom], [top])
    assert top.shape == (4, 90)
    np.testing.assert_array_equal(top.data, bottom.data.reshape(4, 90))


def test_gradient(rng):
    layer = make_layer("type: 'Reshape' reshape_param { " + dims(6, -1) + " }")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 3, 2)))], [blob64()])


@pytest.mark.parametrize("params, message", [
    (dims(-1, -1), "multiple -1"),
    (dims(2, 3, 6, 6), "count must match"),
    (dims(7, -1), "divisible"),
    ("axis: 3 " + dims(0, 0), "no axis"),
    ("axis: 5 " + dims(1), "out of range"),
    ("axis: 1 num_axes: 4 " + dims(1), "out of range"),
    (dims(-2, 90), "< -1"),
])
def test_errors(params, message, rng):
    with pytest.raises(CaffeliteError, match=message):
        reshape(rng.normal(size=(2, 3, 6, 5)), params)


def test_in_place_is_an_error():
    blob = Blob((2, 3))
    with pytest.raises(CaffeliteError, match="in-place"):
        make_layer("type: 'Reshape' reshape_param { " + dims(-1) + " }").setup([blob], [blob])
