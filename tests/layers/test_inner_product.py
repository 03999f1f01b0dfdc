"""InnerProduct: forward vs torch linear and a NumPy formula; fillers; gradients; accumulation."""
import numpy as np
import pytest

import caffelite.layers.inner_product as inner_product
from caffelite import runtime
from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import blob_from, check_gradient, make_layer

GAUSS = "weight_filler { type: 'gaussian' } bias_filler { type: 'gaussian' }"


def ip(params, x, dtype=np.float64):
    layer = make_layer(f"type: 'InnerProduct' inner_product_param {{ {params} }}", dtype=dtype)
    bottom, top = blob_from(x, dtype=dtype), Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


def test_shapes_and_default_fillers(rng):
    layer, _, top = ip("num_output: 10", rng.normal(size=(2, 3, 4, 5)))
    assert [b.shape for b in layer.blobs] == [(10, 60), (10,)]
    assert all(np.all(b.data == 0) for b in layer.blobs)
    assert top.shape == (2, 10)
    layer, _, top = ip("num_output: 10 bias_term: false transpose: true axis: 2",
                       rng.normal(size=(2, 3, 4, 5)))
    assert [b.shape for b in layer.blobs] == [(20, 10)]
    assert top.shape == (2, 3, 10)


# num_output >= 3 × batch goes through W·xᵀ and a transposing copy (TRANSPOSED_TOP_MIN_RATIO)
@pytest.mark.parametrize("batch, num_output", [(4, 5), (2, 7), (1, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_formula(batch, num_output, bias, rng):
    x = rng.normal(size=(batch, 3, 2))
    layer, _, top = ip(f"num_output: {num_output} bias_term: {str(bias).lower()} {GAUSS}", x)
    w = layer.blobs[0].data
    expected = np.einsum("mk,nk->mn", x.reshape(batch, 6), w)
    if bias:
        expected += layer.blobs[1].data
    np.testing.assert_allclose(top.data, expected, rtol=1e-12)


def test_transpose_and_axis_formula(rng):
    x = rng.normal(size=(2, 3, 4))
    layer, _, top = ip(f"num_output: 5 transpose: true axis: -1 {GAUSS}", x)
    w, b = layer.blobs[0].data, layer.blobs[1].data  # (K, N)
    expected = np.einsum("abk,kn->abn", x, w) + b
    np.testing.assert_allclose(top.data, expected, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("num_output", [7, 30])
def test_forward_matches_torch(bias, num_output, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(8, 2, 3, 3)).astype(np.float32)
    layer, _, top = ip(f"num_output: {num_output} bias_term: {str(bias).lower()} {GAUSS}", x,
                       np.float32)
    w = torch.from_numpy(layer.blobs[0].data)
    b = torch.from_numpy(layer.blobs[1].data) if bias else None
    expected = torch.nn.functional.linear(torch.from_numpy(x).reshape(8, -1), w, b).numpy()
    np.testing.assert_allclose(top.data, expected, rtol=1e-5, atol=1e-5)
    assert top.data.dtype == np.float32


def test_xavier_weights_drawn_from_layer_rng():
    a = make_layer("type: 'InnerProduct' inner_product_param { num_output: 50 "
                   "weight_filler { type: 'xavier' } bias_filler { type: 'constant' value: .5 } }")
    a.setup([Blob((4, 200))], [Blob()])
    s = np.sqrt(3 / 200)
    assert np.abs(a.blobs[0].data).max() <= s and a.blobs[0].data.std() > 0.5 * s / np.sqrt(3)
    assert np.all(a.blobs[1].data == 0.5)


@pytest.mark.parametrize("params", ["num_output: 3", "num_output: 3 transpose: true",
                                    "num_output: 3 bias_term: false", "num_output: 3 axis: 2",
                                    "num_output: 7", "num_output: 7 bias_term: false"])
def test_gradient(params, rng):
    layer = make_layer(f"type: 'InnerProduct' inner_product_param {{ {params} {GAUSS} }}")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 3, 2, 2)))], [Blob()])


def test_param_diffs_accumulate_bottom_diff_overwritten(rng):
    layer, bottom, top = ip(f"num_output: 4 {GAUSS}", rng.normal(size=(3, 5)))
    top.diff[...] = rng.normal(size=top.shape)
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.backward([top], [True], [bottom])
    first = [b.diff.copy() for b in layer.blobs] + [bottom.diff.copy()]
    np.testing.assert_allclose(first[0], top.diff.T @ bottom.data, rtol=1e-12)
    np.testing.assert_allclose(first[1], top.diff.sum(0), rtol=1e-12)
    np.testing.assert_allclose(first[2], top.diff @ layer.blobs[0].data, rtol=1e-12)
    layer.backward([top], [True], [bottom])
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * first[0], rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * first[1], rtol=1e-12)
    np.testing.assert_allclose(bottom.diff, first[2], rtol=1e-12)


@pytest.mark.parametrize("m, k, n", [(9, 4, 3), (3, 4, 9), (4, 9, 3)])  # each split way
@pytest.mark.parametrize("transpose", [False, True])
def test_split_among_threads_matches_the_formula(m, k, n, transpose, rng, monkeypatch):
    monkeypatch.setattr(inner_product, "PARALLEL_MIN_WORK", 1)  # split even these sizes
    saved = runtime.num_threads()
    runtime.set_num_threads(2)
    try:
        layer, bottom, top = ip(f"num_output: {n} transpose: {str(transpose).lower()} {GAUSS}",
                                rng.normal(size=(m, k)))
        top.diff[...] = rng.normal(size=top.shape)
        for blob in layer.blobs:
            blob.diff[...] = 0
        layer.backward([top], [True], [bottom])
    finally:
        runtime.set_num_threads(saved)
    w = layer.blobs[0].data.T if transpose else layer.blobs[0].data  # (N, K)
    x, dy = bottom.data, top.diff
    np.testing.assert_allclose(top.data, x @ w.T + layer.blobs[1].data, rtol=1e-12)
    np.testing.assert_allclose(bottom.diff, dy @ w, rtol=1e-12)
    dw = x.T @ dy if transpose else dy.T @ x
    np.testing.assert_allclose(layer.blobs[0].diff, dw, rtol=1e-12)


def test_batch_size_may_change_but_not_k(rng):
    layer, bottom, top = ip("num_output: 2", rng.normal(size=(3, 4)))
    bottom.reshape(7, 4)
    layer.reshape([bottom], [top])
    assert top.shape == (7, 2)
    bottom.reshape(7, 5)
    with pytest.raises(CaffeliteError, match="incompatible"):
        layer.reshape([bottom], [top])


def test_errors():
    with pytest.raises(CaffeliteError, match="num_output"):
        make_layer("type: 'InnerProduct'").setup([Blob((2, 3))], [Blob()])
    with pytest.raises(CaffeliteError, match="did you mean 'gaussian'"):
        make_layer("type: 'InnerProduct' inner_product_param { num_output: 2 "
                   "weight_filler { type: 'gausian' } }").setup([Blob((2, 3))], [Blob()])
