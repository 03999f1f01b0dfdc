"""Silence: no tops, forward leaves the bottoms alone, backward zeroes the diffs asked for."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, make_layer


def test_forward_and_backward(rng):
    arrays = [rng.normal(size=(2, 3)), rng.normal(size=(4,))]
    layer = make_layer("type: 'Silence'")
    bottom = [blob_from(a) for a in arrays]
    layer.setup(bottom, [])
    layer.forward(bottom, [])
    for blob, a in zip(bottom, arrays):
        np.testing.assert_array_equal(blob.data, a)
        blob.diff[...] = 9.0
    layer.backward([], [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 0.0)
    np.testing.assert_array_equal(bottom[1].diff, 9.0)  # not asked: untouched


def test_blob_counts():
    layer = make_layer("type: 'Silence'")
    with pytest.raises(NetError, match=r"layer 'test' \(Silence\).*produces 0 top"):
        layer.setup([blob_from(np.ones(2))], [Blob(dtype=np.float64)])
    with pytest.raises(NetError, match=r"\(Silence\).*at least 1 bottom"):
        make_layer("type: 'Silence'").setup([], [])
