"""ArgMax: indices/values vs torch.topk and NumPy, Caffe's layouts and tie rule; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, make_layer

F64 = np.float64


def run(x, param=""):
    layer = make_layer(f"type: 'ArgMax' argmax_param {{ {param} }}")
    bottom, top = [blob_from(x)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def distinct(rng, shape):
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.5 - 7.0


def test_default_is_argmax_per_item(rng):
    x = distinct(rng, (4, 3, 2, 5))
    _, _, top = run(x)
    assert top[0].shape == (4, 1, 1, 1)
    np.testing.assert_array_equal(top[0].data.reshape(4), x.reshape(4, -1).argmax(axis=1))


def test_top_k_and_out_max_val_match_torch_topk(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = distinct(rng, (3, 10))
    values, index = torch.topk(torch.from_numpy(x), 4, dim=1)
    _, _, top = run(x, "top_k: 4")
    assert top[0].shape == (3, 1, 4)  # padded to 3 axes, as Caffe
    np.testing.assert_array_equal(top[0].data[:, 0], index.numpy())
    _, _, top = run(x, "top_k: 4 out_max_val: true")
    assert top[0].shape == (3, 2, 4)
    np.testing.assert_array_equal(top[0].data[:, 0], index.numpy())
    np.testing.assert_array_equal(top[0].data[:, 1], values.numpy())


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("out_max_val", [False, True])
def test_axis(axis, out_max_val, rng):
    x = distinct(rng, (4, 5, 6))
    _, _, top = run(x, f"axis: {axis} top_k: 3 out_max_val: {str(out_max_val).lower()}")
    order = np.flip(np.argsort(x, axis=axis), axis=axis)
    index = np.take(order, [0, 1, 2], axis=axis)
    expected = np.take_along_axis(x, index, axis=axis) if out_max_val else index
    assert top[0].shape == expected.shape
    np.testing.assert_array_equal(top[0].data, expected)


def test_ties_rank_the_larger_index_first():
    x = np.array([[1.0, 3.0, 2.0, 3.0, 3.0]])
    _, _, top = run(x, "top_k: 4")
    np.testing.assert_array_equal(top[0].data.reshape(-1), [4, 3, 1, 2])
    _, _, top = run(x, "axis: 1 top_k: 2")
    np.testing.assert_array_equal(top[0].data, [[4, 3]])


def test_errors():
    with pytest.raises(NetError, match=r"layer 'test' \(ArgMax\).*top_k \(6\) exceeds the 5"):
        run(np.ones((2, 5)), "top_k: 6")
    with pytest.raises(NetError, match=r"\(ArgMax\).*top_k \(3\) exceeds the 2"):
        run(np.ones((2, 5)), "axis: 0 top_k: 3")
    layer, bottom, top = run(np.ones((2, 5)))
    layer.backward(top, [False], bottom)
    with pytest.raises(NetError, match=r"\(ArgMax\).*no gradient"):
        layer.backward(top, [True], bottom)
