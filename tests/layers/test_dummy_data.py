"""DummyData: shapes (new and legacy), fillers per top, constant tops filled once, errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import make_layer


def setup(params, num_top):
    layer = make_layer(f"type: 'DummyData' dummy_data_param {{ {params} }}")
    top = [Blob(dtype=np.float64) for _ in range(num_top)]
    layer.setup([], top)
    return layer, top


def test_one_top_constant_legacy_dims():
    layer, top = setup("num: 5 channels: 3 height: 2 width: 4", 1)
    assert top[0].shape == (5, 3, 2, 4)
    assert np.all(top[0].data == 0)
    layer.forward([], top)
    assert np.all(top[0].data == 0)


def test_two_tops_legacy_dims_one_or_per_top():
    _, top = setup("num: 5 num: 2 channels: 3 height: 2 width: 4 width: 1", 2)
    assert [t.shape for t in top] == [(5, 3, 2, 4), (2, 3, 2, 1)]


def test_three_tops_constant_gaussian_constant():
    layer, top = setup(
        "shape { dim: 5 dim: 3 } shape { dim: 2000 } shape { dim: 4 } "
        "data_filler { type: 'constant' value: 7 } data_filler { type: 'gaussian' std: 2 } "
        "data_filler { type: 'constant' value: -1 }", 3)
    assert np.all(top[0].data == 7) and np.all(top[2].data == -1)
    assert np.all(top[1].data == 0)  # non-constant tops are filled by forward, not setup
    layer.forward([], top)
    first = top[1].data.copy()
    assert abs(first.std() - 2) < 0.15 and abs(first.mean()) < 0.15
    top[0].data[...] = 3  # constant tops are not refilled
    layer.forward([], top)
    assert np.all(top[0].data == 3) and np.all(top[2].data == -1)
    assert not np.array_equal(top[1].data, first)  # a fresh draw every forward


def test_single_filler_applies_to_all_tops():
    layer, top = setup("shape { dim: 500 } data_filler { type: 'uniform' min: 1 max: 2 }", 2)
    layer.forward([], top)
    for t in top:
        assert t.data.min() >= 1 and t.data.max() <= 2 and t.data.std() > 0.2
    assert not np.array_equal(top[0].data, top[1].data)


def test_errors():
    with pytest.raises(CaffeliteError, match="both shape and legacy"):
        setup("shape { dim: 1 } num: 1 channels: 1 height: 1 width: 1", 1)
    with pytest.raises(CaffeliteError, match="one shape or one per top"):
        setup("shape { dim: 1 } shape { dim: 2 }", 3)
    with pytest.raises(CaffeliteError, match="one shape or one per top"):
        setup("", 1)
    with pytest.raises(CaffeliteError, match="channels"):
        setup("num: 1 height: 1 width: 1", 1)
    with pytest.raises(CaffeliteError, match="data_fillers for 3 tops"):
        setup("shape { dim: 1 } data_filler { } data_filler { }", 3)
    with pytest.raises(CaffeliteError, match="did you mean 'gaussian'"):
        setup("shape { dim: 3 } data_filler { type: 'gausian' }", 1)
