"""Flatten: output shapes for axis/end_axis, values, shared memory, gradient, in-place error."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import blob_from, check_gradient, make_layer


def blob64(shape=()):
    return Blob(shape, dtype=np.float64)


def flatten(x, params=""):
    layer = make_layer(f"type: 'Flatten' flatten_param {{ {params} }}")
    bottom, top = blob_from(x), blob64()
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


@pytest.mark.parametrize("params, shape", [
    ("", (2, 60)),
    ("axis: 0", (120,)),
    ("axis: 2", (2, 3, 20)),
    ("end_axis: -2", (2, 12, 5)),
    ("axis: 1 end_axis: 2", (2, 12, 5)),
    ("axis: -2 end_axis: -1", (2, 3, 20)),
    ("axis: 3 end_axis: 3", (2, 3, 4, 5)),
])
def test_output_shapes(params, shape, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    _, _, top = flatten(x, params)
    assert top.shape == shape
    np.testing.assert_array_equal(top.data, x.reshape(shape))  # C order, like Caffe


def test_shares_data_and_diff(rng):
    layer, bottom, top = flatten(rng.normal(size=(2, 3, 4)))
    assert np.shares_memory(top.data, bottom.data)
    top.diff[...] = np.arange(24).reshape(2, 12)
    layer.backward([top], [True], [bottom])
    np.testing.assert_array_equal(bottom.diff, np.arange(24).reshape(2, 3, 4))


def test_gradient(rng):
    check_gradient(make_layer("type: 'Flatten'"), [blob_from(rng.normal(size=(2, 3, 2)))],
                   [blob64()])


def test_errors():
    blob = Blob((2, 3))
    with pytest.raises(CaffeliteError, match="in-place"):
        make_layer("type: 'Flatten'").setup([blob], [blob])
    with pytest.raises(CaffeliteError, match="flatten_param"):
        make_layer("type: 'Flatten' flatten_param { axis: 5 }").setup([blob], [blob64()])
    with pytest.raises(CaffeliteError, match="end_axis"):
        make_layer("type: 'Flatten' flatten_param { axis: 1 end_axis: 0 }").setup(
            [blob], [blob64()])
