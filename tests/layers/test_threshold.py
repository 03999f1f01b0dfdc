"""Threshold: forward 1{x > t} (strict); no gradient: a clear error when one is asked for."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, make_layer


@pytest.mark.parametrize("t", [None, 0.5, -1.0])
def test_forward_formula(t, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    x[0, 0, 0, 0] = 0.0 if t is None else t  # exactly at the threshold -> 0
    text = "type: 'Threshold'" + (f" threshold_param {{ threshold: {t} }}" if t is not None
                                  else "")
    layer = make_layer(text)
    bottom, top = blob_from(x), Blob(dtype=np.float64)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    expected = (x > (0.0 if t is None else np.float32(t))).astype(np.float64)
    np.testing.assert_array_equal(top.data, expected)
    assert top.data[0, 0, 0, 0] == 0.0


def test_in_place(rng):
    x = rng.normal(size=(4, 5))
    layer = make_layer("type: 'Threshold' threshold_param { threshold: 0.2 }")
    blob = blob_from(x)
    layer.setup([blob], [blob])
    layer.forward([blob], [blob])
    np.testing.assert_array_equal(blob.data, (x > np.float32(0.2)).astype(np.float64))


def test_backward_is_refused_only_when_needed():
    layer = make_layer("type: 'Threshold'")
    bottom, top = blob_from(np.ones(3)), Blob(dtype=np.float64)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    layer.backward([top], [False], [bottom])  # nothing asked: no error
    with pytest.raises(NetError, match=r"layer 'test' \(Threshold\).*no gradient"):
        layer.backward([top], [True], [bottom])
