"""Embed: forward vs torch embedding (+bias) and NumPy rows; parameter gradients; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64
TEXT = ("type: 'Embed' embed_param { num_output: 4 input_dim: 7 "
        "weight_filler { type: 'uniform' min: -1 max: 1 } "
        "bias_filler { type: 'uniform' min: -1 max: 1 } }")


def run(indices, text=TEXT, dtype=F64):
    layer = make_layer(text, dtype=dtype)
    bottom = [blob_from(indices, dtype=dtype)]
    top = [Blob(dtype=dtype)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def test_blobs_and_forward_rows(rng):
    idx = rng.integers(0, 7, size=(3, 5)).astype(F64)
    layer, _, top = run(idx)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    assert w.shape == (7, 4) and b.shape == (4,)
    assert np.all(np.abs(w) <= 1) and np.unique(w).size == 28  # the uniform filler was used
    assert top[0].shape == (3, 5, 4)
    for i in range(3):
        for j in range(5):
            np.testing.assert_array_equal(top[0].data[i, j], w[int(idx[i, j])] + b)


def test_forward_matches_torch_embedding(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    idx = rng.integers(0, 7, size=(6,)).astype(np.float32)
    layer, _, top = run(idx, dtype=np.float32)
    expected = torch.nn.functional.embedding(torch.from_numpy(idx.astype(np.int64)),
                                             torch.from_numpy(layer.blobs[0].data))
    np.testing.assert_allclose(top[0].data, expected.numpy() + layer.blobs[1].data, rtol=1e-6)


def test_no_bias_and_default_filler():
    layer, _, top = run(np.array([0.0, 2.0]),
                        "type: 'Embed' embed_param { num_output: 3 input_dim: 4 "
                        "bias_term: false }")
    assert len(layer.blobs) == 1
    np.testing.assert_array_equal(layer.blobs[0].data, 0)  # Caffe's default: constant 0
    assert top[0].shape == (2, 3)


def test_gradient(rng):
    idx = rng.integers(0, 7, size=(4, 3)).astype(F64)
    check_gradient(make_layer(TEXT), [blob_from(idx)], [Blob(dtype=F64)], check_bottom=[])


def test_repeated_indices_accumulate(rng):
    idx = np.array([1.0, 3.0, 1.0, 1.0])
    layer, bottom, top = run(idx)
    dy = rng.normal(size=top[0].shape)
    top[0].diff[...] = dy
    for _ in range(2):  # parameter diffs accumulate across backward passes
        layer.backward(top, [False], bottom)
    expected = np.zeros((7, 4))
    expected[1] = 2 * (dy[0] + dy[2] + dy[3])
    expected[3] = 2 * dy[1]
    np.testing.assert_allclose(layer.blobs[0].diff, expected, rtol=1e-14)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * dy.sum(axis=0), rtol=1e-14)


@pytest.mark.parametrize("value", [7.0, -1.0, 2.5])
def test_bad_indices(value):
    with pytest.raises(NetError, match=r"layer 'test' \(Embed\).*index .* \[0, 7\)"):
        run(np.array([0.0, value]))


def test_no_gradient_to_indices_and_bad_sizes():
    layer, bottom, top = run(np.array([1.0]))
    assert not layer.allow_force_backward(0)
    with pytest.raises(NetError, match=r"\(Embed\).*cannot backpropagate"):
        layer.backward(top, [True], bottom)
    with pytest.raises(NetError, match=r"\(Embed\).*num_output > 0 and input_dim > 0"):
        run(np.array([0.0]), "type: 'Embed' embed_param { num_output: 3 }")
