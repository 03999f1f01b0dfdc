"""AbsVal: forward vs np.abs and torch.abs; gradient with the kink at 0; in place refused."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer


def test_forward_and_backward_formula(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    x[0, 0, 0, :2] = 0.0
    layer = make_layer("type: 'AbsVal'")
    bottom, top = blob_from(x), Blob(dtype=np.float64)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data, np.where(x < 0, -x, x))
    dy = rng.normal(size=x.shape)
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    expected = np.where(x > 0, dy, np.where(x < 0, -dy, 0.0))  # 0 at x == 0, as caffe_sign
    np.testing.assert_array_equal(bottom.diff, expected)


def test_forward_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(5, 6)).astype(np.float32)
    layer = make_layer("type: 'AbsVal'", dtype=np.float32)
    bottom, top = blob_from(x, dtype=np.float32), Blob(dtype=np.float32)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data, torch.abs(torch.from_numpy(x)).numpy())


def test_gradient(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer("type: 'AbsVal'"), [blob_from(x)], [Blob(dtype=np.float64)],
                   kink=0.0, kink_range=0.01)


def test_in_place_is_refused():
    blob = blob_from(np.ones((2, 2)))
    with pytest.raises(NetError, match=r"layer 'test' \(AbsVal\).*in-place"):
        make_layer("type: 'AbsVal'").setup([blob], [blob])
