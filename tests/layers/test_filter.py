"""Filter: forward vs boolean masking; setup keeps N; backward scatters; gradient; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64


def setup(arrays, selector):
    layer = make_layer("type: 'Filter'")
    bottom = [blob_from(a) for a in arrays] + [blob_from(selector)]
    top = [Blob(dtype=F64) for _ in arrays]
    layer.setup(bottom, top)
    return layer, bottom, top


def test_setup_keeps_all_items_then_forward_filters(rng):
    x = rng.normal(size=(6, 3, 2))
    label = rng.normal(size=(6,))
    selector = np.array([1.0, 0.0, 0.0, 2.0, -1.0, 0.0]).reshape(6, 1)
    layer, bottom, top = setup([x, label], selector)
    assert top[0].shape == (6, 3, 2) and top[1].shape == (6,)  # Caffe's first reshape
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    keep = selector[:, 0] != 0
    np.testing.assert_array_equal(top[0].data, x[keep])
    np.testing.assert_array_equal(top[1].data, label[keep])


def test_backward_scatters_into_kept_rows(rng):
    x = rng.normal(size=(5, 2))
    selector = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    layer, bottom, top = setup([x], selector)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    dy = rng.normal(size=(3, 2))
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7.0
    layer.backward(top, [True, False], bottom)
    expected = np.zeros((5, 2))
    expected[[1, 3, 4]] = dy
    np.testing.assert_array_equal(bottom[0].diff, expected)


def test_nothing_selected(rng):
    layer, bottom, top = setup([rng.normal(size=(3, 2))], np.zeros(3))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (0, 2)


def test_gradient(rng):
    x = rng.normal(size=(6, 3, 2))
    y = rng.normal(size=(6, 4))
    selector = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    layer = make_layer("type: 'Filter'")
    check_gradient(layer, [blob_from(x), blob_from(y), blob_from(selector)],
                   [Blob(dtype=F64), Blob(dtype=F64)], check_bottom=[0, 1])


def test_errors(rng):
    with pytest.raises(NetError, match=r"layer 'test' \(Filter\).*one top per filtered bottom"):
        layer = make_layer("type: 'Filter'")
        layer.setup([blob_from(np.ones((2, 1))), blob_from(np.ones(2))],
                    [Blob(dtype=F64), Blob(dtype=F64)])
    with pytest.raises(NetError, match=r"\(Filter\).*selector .* got \(4, 2\)"):
        setup([np.ones((4, 3))], np.ones((4, 2)))
    with pytest.raises(NetError, match=r"\(Filter\).*bottom\[0\] has shape \(3, 3\).*\(4\)"):
        setup([np.ones((3, 3))], np.ones(4))
    layer, bottom, top = setup([np.ones((2, 3))], np.ones(2))
    layer.forward(bottom, top)
    with pytest.raises(NetError, match=r"\(Filter\).*selector"):
        layer.backward(top, [True, True], bottom)
