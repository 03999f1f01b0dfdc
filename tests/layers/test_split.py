"""Split: tops share the bottom's data; the bottom diff is the sum of the top diffs."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import blob_from, check_gradient, make_layer


def blob64(shape=()):
    return Blob(shape, dtype=np.float64)


def test_forward_shares_data(rng):
    layer = make_layer("type: 'Split'")
    bottom, top = blob_from(rng.normal(size=(2, 3, 4))), [blob64(), blob64(), blob64()]
    layer.setup([bottom], top)
    layer.forward([bottom], top)
    for t in top:
        assert t.shape == bottom.shape
        assert np.shares_memory(t.data, bottom.data)
        np.testing.assert_array_equal(t.data, bottom.data)
        assert not np.shares_memory(t.diff, bottom.diff)


def test_reshare_after_bottom_reshape(rng):
    layer = make_layer("type: 'Split'")
    bottom, top = blob_from(rng.normal(size=(2, 3))), [blob64(), blob64()]
    layer.setup([bottom], top)
    bottom.reshape(4, 5)
    bottom.data[...] = rng.normal(size=(4, 5))
    layer.reshape([bottom], top)
    layer.forward([bottom], top)
    for t in top:
        np.testing.assert_array_equal(t.data, bottom.data)


@pytest.mark.parametrize("num_top", [1, 2, 3])
def test_backward_sums(num_top, rng):
    layer = make_layer("type: 'Split'")
    bottom, top = blob_from(rng.normal(size=(2, 3))), [blob64() for _ in range(num_top)]
    layer.setup([bottom], top)
    layer.forward([bottom], top)
    diffs = [rng.normal(size=(2, 3)) for _ in range(num_top)]
    for t, d in zip(top, diffs):
        t.diff[...] = d
    bottom.diff[...] = 100  # overwritten, not accumulated
    layer.backward(top, [True], [bottom])
    np.testing.assert_allclose(bottom.diff, sum(diffs), rtol=1e-12)


def test_gradient(rng):
    check_gradient(make_layer("type: 'Split'"), [blob_from(rng.normal(size=(2, 3, 2)))],
                   [blob64(), blob64()])


def test_in_place_is_an_error():
    blob = Blob((2, 3))
    with pytest.raises(CaffeliteError, match="in-place"):
        make_layer("type: 'Split'").setup([blob], [blob64(), blob])
