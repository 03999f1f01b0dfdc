"""BatchReindex: forward vs NumPy fancy indexing; backward sums repeats; gradient; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64


def run(x, index):
    layer = make_layer("type: 'BatchReindex'")
    bottom, top = [blob_from(x), blob_from(index)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def test_forward_matches_fancy_indexing(rng):
    x = rng.normal(size=(5, 3, 2))
    index = np.array([4.0, 0.0, 0.0, 2.0, 4.0, 1.0, 4.0])
    _, _, top = run(x, index)
    assert top[0].shape == (7, 3, 2)
    np.testing.assert_array_equal(top[0].data, x[index.astype(int)])


def test_backward_sums_repeats_and_zeroes_unused(rng):
    x = rng.normal(size=(5, 3))
    index = np.array([4.0, 0.0, 0.0, 4.0, 4.0])
    layer, bottom, top = run(x, index)
    dy = rng.normal(size=top[0].shape)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7.0  # overwritten, not accumulated
    layer.backward(top, [True, False], bottom)
    expected = np.zeros((5, 3))
    expected[0] = dy[1] + dy[2]
    expected[4] = dy[0] + dy[3] + dy[4]
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-14)


def test_gradient(rng):
    x = rng.normal(size=(4, 3, 2))
    index = np.array([3.0, 1.0, 1.0, 0.0, 3.0, 2.0])
    layer = make_layer("type: 'BatchReindex'")
    check_gradient(layer, [blob_from(x), blob_from(index)], [Blob(dtype=F64)], check_bottom=[0])


@pytest.mark.parametrize("index,message", [
    (np.array([0.0, 5.0]), r"index 5 is not a whole number in \[0, 5\)"),
    (np.array([-1.0]), r"index -1 is not"),
    (np.array([1.5]), r"index 1.5 is not"),
    (np.array([[1.0]]), r"must be 1-D"),
])
def test_bad_indices(index, message):
    with pytest.raises(NetError, match=r"layer 'test' \(BatchReindex\).*" + message):
        run(np.zeros((5, 2)), index)


def test_no_gradient_to_the_index(rng):
    layer, bottom, top = run(rng.normal(size=(3, 2)), np.array([0.0, 2.0]))
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    with pytest.raises(NetError, match=r"\(BatchReindex\).*index bottom"):
        layer.backward(top, [True, True], bottom)
