"""Concat: forward vs np.concatenate and torch.cat on several axes; gradient; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64


def run(arrays, param="", names=None):
    text = "type: 'Concat' " + param + "".join(f" bottom: '{n}'" for n in (names or []))
    layer = make_layer(text)
    bottom = [blob_from(a) for a in arrays]
    top = [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize("axis,param", [(1, ""), (0, "concat_param { axis: 0 }"),
                                        (3, "concat_param { axis: -1 }"),
                                        (2, "concat_param { concat_dim: 2 }")])
def test_forward_matches_numpy(axis, param, rng):
    shapes = [[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 5]]
    for shape, extra in zip(shapes, (1, 2, 3)):
        shape[axis] = extra
    arrays = [rng.normal(size=s) for s in shapes]
    _, _, top = run(arrays, param)
    np.testing.assert_array_equal(top[0].data, np.concatenate(arrays, axis=axis))


def test_forward_matches_torch_cat(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    arrays = [rng.normal(size=(2, c, 3)) for c in (1, 4, 2)]
    _, _, top = run(arrays)
    expected = torch.cat([torch.from_numpy(a) for a in arrays], dim=1).numpy()
    np.testing.assert_array_equal(top[0].data, expected)


@pytest.mark.parametrize("param", ["", "concat_param { axis: 0 }", "concat_param { axis: 2 }"])
def test_gradient(param, rng):
    arrays = [rng.normal(size=(2, 3, 4, 2)), rng.normal(size=(2, 3, 4, 2))]
    check_gradient(make_layer(f"type: 'Concat' {param}"), [blob_from(a) for a in arrays],
                   [Blob(dtype=F64)])


def test_backward_respects_propagate_down(rng):
    arrays = [rng.normal(size=(2, 2, 3)), rng.normal(size=(2, 5, 3))]
    layer, bottom, top = run(arrays)
    dy = rng.normal(size=top[0].shape)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7.0
    layer.backward(top, [False, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 7.0)
    np.testing.assert_array_equal(bottom[1].diff, dy[:, 2:])


def test_single_bottom_shares_data_and_diff(rng):
    layer, bottom, top = run([rng.normal(size=(2, 3))])
    np.testing.assert_array_equal(top[0].data, bottom[0].data)
    top[0].diff[...] = 5.0
    np.testing.assert_array_equal(bottom[0].diff, 5.0)


def test_mismatched_axes_name_layer_blobs_and_shapes(rng):
    arrays = [rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 6))]
    with pytest.raises(NetError, match=r"layer 'test' \(Concat\): bottom\[1\] 'b' has shape "
                                       r"\(2, 5, 6\) but bottom\[0\] 'a' has \(2, 3, 4\)"):
        run(arrays, names=["a", "b"])
    with pytest.raises(NetError, match=r"\(Concat\).*shape \(2, 3\)"):
        run([np.ones((2, 3, 4)), np.ones((2, 3))])


def test_axis_and_concat_dim_together_and_bad_axis():
    with pytest.raises(NetError, match=r"\(Concat\).*not both"):
        run([np.ones((2, 2))] * 2, "concat_param { axis: 1 concat_dim: 1 }")
    with pytest.raises(NetError, match=r"\(Concat\).*axis 4 is out of range"):
        run([np.ones((2, 2))] * 2, "concat_param { axis: 4 }")
