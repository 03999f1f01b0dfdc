"""Deconvolution: naive scatter loop and PyTorch conv_transpose (forward and autograd)."""
import numpy as np
import pytest

import caffelite.layers.convolution as convolution
from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer
from tests.reference.conv_naive import conv_naive, deconv_naive

F64 = np.float64
pytestmark = pytest.mark.usefixtures("conv_route")  # every test on each im2col route


def deconv_layer(num_output, kernel, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1,
                 bias=True):
    return make_layer(
        f"type: 'Deconvolution' convolution_param {{ num_output: {num_output} group: {group} "
        f"bias_term: {str(bias).lower()} "
        + " ".join(f"kernel_size: {k}" for k in kernel)
        + " ".join(f" stride: {s}" for s in stride) + " ".join(f" pad: {p}" for p in pad)
        + " ".join(f" dilation: {d}" for d in dilation)
        + " weight_filler { type: 'gaussian' } bias_filler { type: 'gaussian' } }")


def run(layer, x):
    bottom, top = [blob_from(x)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return bottom, top


SWEEP = [  # N, C, H, W, M, kernel, stride, pad, dilation, group
    (2, 3, 4, 5, 2, (3, 3), (1, 1), (0, 0), (1, 1), 1),
    (2, 4, 7, 9, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2),
    (1, 6, 4, 4, 6, (4, 4), (2, 2), (1, 1), (1, 1), 3),
    (3, 3, 5, 5, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (2, 2, 3, 4, 3, (2, 3), (3, 2), (0, 1), (2, 1), 1),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", SWEEP)
def test_forward_and_backward_match_pytorch(case, bias, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    n, c, h, w, m, kernel, stride, pad, dilation, group = case
    x = rng.normal(size=(n, c, h, w))
    layer = deconv_layer(m, kernel, stride, pad, dilation, group, bias)
    bottom, top = run(layer, x)
    assert layer.blobs[0].shape == (c, m // group) + kernel
    out = tuple(s * (i - 1) + d * (k - 1) + 1 - 2 * p
                for i, k, s, p, d in zip((h, w), kernel, stride, pad, dilation))
    assert top[0].shape == (n, m) + out
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.blobs[0].data.copy(), requires_grad=True)
    bt = torch.tensor(layer.blobs[1].data.copy(), requires_grad=True) if bias else None
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride, pad, 0, group, dilation)
    np.testing.assert_allclose(top[0].data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = rng.normal(size=top[0].shape)
    yt.backward(torch.tensor(dy))
    top[0].diff[...] = dy
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].diff, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.blobs[1].diff, bt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", SWEEP)
def test_forward_matches_naive_scatter(case, rng):
    n, c, h, w, m, kernel, stride, pad, dilation, group = case
    x = rng.normal(size=(n, c, h, w))
    layer = deconv_layer(m, kernel, stride, pad, dilation, group)
    _, top = run(layer, x)
    ref = deconv_naive(x, layer.blobs[0].data, layer.blobs[1].data, stride, pad, dilation, group)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-12, atol=1e-12)


def test_is_the_transpose_of_convolution(rng):
    """<conv(x), y> == <x, deconv(y)> with the same weights and no bias (Caffe's design)."""
    conv = make_layer("type: 'Convolution' convolution_param { num_output: 4 kernel_size: 3 "
                      "stride: 2 pad: 1 group: 2 bias_term: false weight_filler "
                      "{ type: 'gaussian' } }")
    deconv = make_layer("type: 'Deconvolution' convolution_param { num_output: 6 kernel_size: 3"
                        " stride: 2 pad: 1 group: 2 bias_term: false }")
    x = rng.normal(size=(2, 6, 7, 7))
    _, cy = run(conv, x)
    y = rng.normal(size=cy[0].shape)
    deconv.setup([blob_from(y)], [Blob(dtype=F64)])
    deconv.blobs[0].data[...] = conv.blobs[0].data  # (4, 3, 3, 3): conv's (M, C/G) = deconv's
    _, dy = run(deconv, y)
    assert dy[0].shape == x.shape
    np.testing.assert_allclose((cy[0].data * y).sum(), (x * dy[0].data).sum(), rtol=1e-12)


def test_three_d(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(2, 2, 3, 2, 4))
    layer = make_layer("type: 'Deconvolution' convolution_param { num_output: 3 kernel_size: 2 "
                       "kernel_size: 3 kernel_size: 2 stride: 2 pad: 1 pad: 0 pad: 0 "
                       "weight_filler { type: 'gaussian' } bias_filler { type: 'gaussian' } }")
    _, top = run(layer, x)
    ref = torch.nn.functional.conv_transpose3d(
        torch.tensor(x), torch.tensor(layer.blobs[0].data), torch.tensor(layer.blobs[1].data),
        2, (1, 0, 0)).numpy()
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-10, atol=1e-12)
    check_gradient(layer, [blob_from(x)], [Blob(dtype=F64)])


@pytest.mark.parametrize("text", [
    "num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2",
    "num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 dilation: 2",
    "num_output: 2 kernel_size: 2 bias_term: false",
])
def test_gradient(text, rng):
    layer = make_layer("type: 'Deconvolution' convolution_param { " + text + " weight_filler "
                       "{ type: 'gaussian' } bias_filler { type: 'gaussian' } }")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 4, 3, 4)))], [Blob(dtype=F64)])


def test_two_bottoms_and_batch_chunks(rng, monkeypatch):
    layer = deconv_layer(2, (3, 3), (2, 2), (1, 1))
    xs = rng.normal(size=(2, 5, 2, 3, 3))
    bottom = [blob_from(x) for x in xs]
    top = [Blob(dtype=F64), Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    for x, t in zip(xs, top):
        ref = deconv_naive(x, layer.blobs[0].data, layer.blobs[1].data, (2, 2), (1, 1), (1, 1))
        np.testing.assert_allclose(t.data, ref, rtol=1e-12, atol=1e-12)
    for t in top:
        t.diff[...] = rng.normal(size=t.shape)
    layer.backward(top, [True, True], bottom)
    expected = [bottom[0].diff.copy(), bottom[1].diff.copy(), layer.blobs[0].diff.copy()]
    monkeypatch.setattr(convolution, "COL_BUFFER_ELEMENTS", 2 * 18 * 9)  # 2 images a chunk
    layer.forward(bottom, top)
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [True, True], bottom)
    for got, want in zip((bottom[0].diff, bottom[1].diff, layer.blobs[0].diff), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the input gradient of a deconvolution is a convolution with the same weights
    ref = conv_naive(top[0].diff, layer.blobs[0].data, None, (2, 2), (1, 1), (1, 1))
    np.testing.assert_allclose(bottom[0].diff, ref, rtol=1e-12, atol=1e-12)


def test_errors_name_the_layer():
    layer = make_layer("name: 'up' type: 'Deconvolution' convolution_param { num_output: 2 "
                       "kernel_size: 2 pad: 1 }")
    with pytest.raises(NetError, match="layer 'up' \\(Deconvolution\\): output size"):
        layer.setup([Blob((1, 1, 1, 1), F64)], [Blob(dtype=F64)])
    layer = make_layer("name: 'up' type: 'Deconvolution' convolution_param { num_output: 3 "
                       "kernel_size: 2 group: 2 }")
    with pytest.raises(NetError, match="group 2 must divide"):
        layer.setup([Blob((1, 2, 3, 3), F64)], [Blob(dtype=F64)])
