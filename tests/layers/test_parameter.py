"""Parameter: blob of parameter_param.shape; the top shares its data and diff."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import make_layer

TEXT = "type: 'Parameter' parameter_param { shape { dim: 2 dim: 3 dim: 4 } }"


def test_blob_shape_and_sharing(rng):
    layer = make_layer(TEXT)
    top = [Blob(dtype=np.float64)]
    layer.setup([], top)
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (2, 3, 4)
    assert top[0].shape == (2, 3, 4)
    np.testing.assert_array_equal(layer.blobs[0].data, 0)  # no filler, as Caffe
    values = rng.normal(size=(2, 3, 4))
    layer.blobs[0].data[...] = values  # e.g. weights copied from a caffemodel
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, values)
    top[0].diff[...] = 2.5  # what the layer above writes is the parameter's gradient
    np.testing.assert_array_equal(layer.blobs[0].diff, 2.5)
    layer.backward(top, [], [])


def test_replaced_blob_is_followed(rng):
    # Weight sharing or loading may put a new Blob in layer.blobs; forward re-shares it.
    layer = make_layer(TEXT)
    top = [Blob(dtype=np.float64)]
    layer.setup([], top)
    other = Blob((2, 3, 4), dtype=np.float64)
    other.data[...] = rng.normal(size=(2, 3, 4))
    layer.blobs[0] = other
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, other.data)


def test_blob_counts():
    with pytest.raises(NetError, match=r"layer 'test' \(Parameter\).*takes 0 bottom"):
        make_layer(TEXT).setup([Blob()], [Blob()])
