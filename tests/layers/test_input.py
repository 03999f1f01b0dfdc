"""Input: tops shaped from input_param (one shape or one per top); reshape/forward are no-ops."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import make_layer


def setup(params, num_top):
    layer = make_layer(f"type: 'Input' input_param {{ {params} }}")
    top = [Blob() for _ in range(num_top)]
    layer.setup([], top)
    return layer, top


def test_one_shape_for_all_tops():
    _, top = setup("shape { dim: 10 dim: 3 dim: 28 dim: 28 }", 2)
    assert [t.shape for t in top] == [(10, 3, 28, 28)] * 2


def test_one_shape_per_top():
    _, top = setup("shape { dim: 64 dim: 1 dim: 28 dim: 28 } shape { dim: 64 }", 2)
    assert [t.shape for t in top] == [(64, 1, 28, 28), (64,)]


def test_reshape_and_forward_keep_caller_data():
    layer, top = setup("shape { dim: 2 dim: 3 }", 1)
    top[0].reshape(5, 3)  # a caller reshapes the net input
    top[0].data[...] = np.arange(15).reshape(5, 3)
    layer.reshape([], top)
    layer.forward([], top)
    layer.backward(top, [], [])
    assert top[0].shape == (5, 3)
    np.testing.assert_array_equal(top[0].data, np.arange(15).reshape(5, 3))


def test_errors():
    with pytest.raises(CaffeliteError, match="2 shapes for 3 tops"):
        setup("shape { dim: 1 } shape { dim: 2 }", 3)
    with pytest.raises(CaffeliteError, match="negative"):
        setup("shape { dim: -1 dim: 2 }", 1)
    with pytest.raises(CaffeliteError, match="bottom"):
        make_layer("type: 'Input' input_param { shape { dim: 1 } }").setup([Blob()], [Blob()])
