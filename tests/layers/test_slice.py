"""Slice: forward vs np.split and torch.split; equal parts; gradient; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64


def run(x, n_tops, param=""):
    layer = make_layer(f"type: 'Slice' {param}")
    bottom = [blob_from(x)]
    top = [Blob(dtype=F64) for _ in range(n_tops)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize("axis,points,param", [
    (1, [1, 4], "slice_param { slice_point: 1 slice_point: 4 }"),
    (0, [2], "slice_param { axis: 0 slice_point: 2 }"),
    (3, [1, 2, 5], "slice_param { axis: -1 slice_point: 1 slice_point: 2 slice_point: 5 }"),
    (2, [3], "slice_param { slice_dim: 2 slice_point: 3 }"),
])
def test_forward_matches_numpy(axis, points, param, rng):
    x = rng.normal(size=(4, 6, 5, 7))
    _, _, top = run(x, len(points) + 1, param)
    for blob, expected in zip(top, np.split(x, points, axis=axis)):
        np.testing.assert_array_equal(blob.data, expected)


def test_equal_parts_match_torch_split(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(2, 6, 3))
    _, _, top = run(x, 3)
    for blob, expected in zip(top, torch.split(torch.from_numpy(x), 2, dim=1)):
        np.testing.assert_array_equal(blob.data, expected.numpy())


@pytest.mark.parametrize("n_tops,param", [(3, ""), (2, "slice_param { axis: 0 slice_point: 1 }"),
                                           (3, "slice_param { axis: 2 slice_point: 1 "
                                               "slice_point: 3 }")])
def test_gradient(n_tops, param, rng):
    x = rng.normal(size=(3, 6, 4, 2))
    layer = make_layer(f"type: 'Slice' {param}")
    check_gradient(layer, [blob_from(x)], [Blob(dtype=F64) for _ in range(n_tops)])


def test_backward_concatenates_top_diffs(rng):
    x = rng.normal(size=(2, 5))
    layer, bottom, top = run(x, 2, "slice_param { slice_point: 2 }")
    diffs = [rng.normal(size=b.shape) for b in top]
    for blob, d in zip(top, diffs):
        blob.diff[...] = d
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, np.concatenate(diffs, axis=1))


def test_single_top_shares(rng):
    _, bottom, top = run(rng.normal(size=(2, 3)), 1)
    np.testing.assert_array_equal(top[0].data, bottom[0].data)
    top[0].diff[...] = 3.0
    np.testing.assert_array_equal(bottom[0].diff, 3.0)


@pytest.mark.parametrize("n_tops,param,message", [
    (3, "slice_param { slice_point: 2 }", r"1 slice_point\(s\) make 2 tops.*has 3"),
    (2, "slice_param { slice_point: 6 }", r"slice_point \[6\] must increase strictly.*\(0, 6\)"),
    (2, "slice_param { slice_point: 0 }", r"must increase strictly"),
    (3, "slice_param { slice_point: 3 slice_point: 2 }", r"must increase strictly"),
    (4, "", r"\(6\) does not split into 4 equal parts"),
    (2, "slice_param { axis: 5 }", r"axis 5 is out of range"),
    (2, "slice_param { axis: 1 slice_dim: 1 }", r"not both"),
])
def test_bad_parameters(n_tops, param, message):
    with pytest.raises(NetError, match=r"layer 'test' \(Slice\).*" + message):
        run(np.zeros((2, 6, 3)), n_tops, param)
