"""LRN: across channels vs torch local_response_norm, within channel vs a naive loop, gradients."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer


def f32(value):
    """value rounded as the proto's float32 field stores it, as a Python float."""
    return float(np.float32(value))


def run(x, params):
    layer = make_layer(f"type: 'LRN' {params}")
    bottom, top = [blob_from(x)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def naive_across(x, n, alpha, beta, k):
    out = np.empty_like(x)
    N, C, H, W = x.shape
    for i in range(N):
        for c in range(C):
            lo, hi = max(0, c - n // 2), min(C, c + n // 2 + 1)
            s = k + alpha / n * (x[i, lo:hi] ** 2).sum(axis=0)
            out[i, c] = x[i, c] * s ** -beta
    return out


def naive_within(x, n, alpha, beta):
    """Caffe's composition: square, AVE pool n x n (pad (n-1)/2, divisor n²), power, product."""
    out = np.empty_like(x)
    N, C, H, W = x.shape
    p = n // 2
    for i in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    win = x[i, c, max(0, h - p):h + p + 1, max(0, w - p):w + p + 1]
                    avg = (win ** 2).sum() / n ** 2
                    out[i, c, h, w] = x[i, c, h, w] * (1 + alpha * avg) ** -beta
    return out


@pytest.fixture
def x(rng):
    return rng.normal(size=(2, 7, 3, 4))


def test_across_channels_defaults_match_torch(x):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    _, _, top = run(x, "")
    # torch also divides alpha by n (an average over the padded window), so it computes the same.
    expected = torch.nn.functional.local_response_norm(torch.from_numpy(x), 5, 1.0, 0.75, 1.0)
    np.testing.assert_allclose(top[0].data, expected.numpy(), rtol=1e-12)


def test_across_channels_params_match_torch_and_loop(x):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    alpha, beta, k = f32(0.3), f32(0.6), f32(2.5)
    _, _, top = run(x, f"lrn_param {{ local_size: 3 alpha: {alpha} beta: {beta} k: {k} }}")
    tx = torch.from_numpy(x).requires_grad_()
    expected = torch.nn.functional.local_response_norm(tx, 3, alpha, beta, k)
    np.testing.assert_allclose(top[0].data, expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(top[0].data, naive_across(x, 3, alpha, beta, k), rtol=1e-12)


def test_across_channels_backward_matches_torch(x, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    layer, bottom, top = run(x, "lrn_param { local_size: 5 alpha: 2 beta: 0.75 k: 1 }")
    tx = torch.from_numpy(x).requires_grad_()
    dy = rng.normal(size=x.shape)
    torch.nn.functional.local_response_norm(tx, 5, 2.0, 0.75, 1.0).backward(torch.from_numpy(dy))
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_within_channel_matches_naive_loop(n, x):
    alpha, beta = f32(0.7), f32(0.75)
    # k is ignored in WITHIN_CHANNEL (Caffe's power layer uses shift 1).
    _, _, top = run(x, f"lrn_param {{ norm_region: WITHIN_CHANNEL local_size: {n} "
                       f"alpha: {alpha} beta: {beta} k: 7 }}")
    np.testing.assert_allclose(top[0].data, naive_within(x, n, alpha, beta), rtol=1e-12)


def test_within_channel_hand_computed():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 2.0
    x[0, 0, 0, 0] = 1.0
    _, _, top = run(x, "lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 9 beta: 1 }")
    # centre: window holds both values, avg = (4 + 1)/9, s = 1 + 9·5/9 = 6 -> 2/6.
    # corner: window holds both too (the padded cells count in the divisor) -> 1/6.
    assert top[0].data[0, 0, 1, 1] == pytest.approx(2 / 6)
    assert top[0].data[0, 0, 0, 0] == pytest.approx(1 / 6)


@pytest.mark.parametrize("params", [
    "", "lrn_param { local_size: 3 alpha: 1.5 beta: 0.6 k: 2 }",
    "lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 1.5 }",
])
def test_gradient(params, rng):
    layer = make_layer(f"type: 'LRN' {params}")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 6, 3, 3)))], [Blob(dtype=np.float64)],
                   threshold=1e-2)


def test_in_place(x, rng):
    layer, bottom, top = run(x, "")
    dy = rng.normal(size=x.shape)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    layer2 = make_layer("type: 'LRN'")
    blob = blob_from(x)
    layer2.setup([blob], [blob])
    layer2.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, top[0].data, rtol=1e-14)
    blob.diff[...] = dy
    layer2.backward([blob], [True], [blob])
    np.testing.assert_allclose(blob.diff, bottom[0].diff, rtol=1e-14)


def test_even_local_size_is_an_error(x):
    with pytest.raises(NetError, match=r"layer 'norm1' \(LRN\).*local_size must be odd.*4"):
        run(x, "name: 'norm1' lrn_param { local_size: 4 }")


def test_needs_four_axes():
    with pytest.raises(NetError, match="4 axes"):
        run(np.ones((2, 3)), "")
