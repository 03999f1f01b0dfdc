"""Convolution through the DFT (dft_conv.py): against the naive loop, PyTorch and the im2col
route, gradient checks, and which layers take it."""
import numpy as np
import pytest

import caffelite.layers.convolution as convolution
from caffelite import runtime
from caffelite.blob import Blob
from caffelite.kernels import conv_route_dft
from caffelite.kernels.dft_conv import DftPlan, right_product
from tests.gradient_check import blob_from, check_gradient, make_layer
from tests.layers.test_convolution import conv_layer, run
from tests.reference.conv_naive import conv_naive, deconv_naive

F64 = np.float64

CASES = [  # N, C, H, W, M, kernel, pad
    (2, 3, 6, 5, 4, (3, 3), (0, 0)),
    (3, 4, 7, 9, 5, (5, 5), (2, 2)),
    (2, 2, 8, 6, 3, (5, 3), (2, 1)),
    (1, 3, 5, 5, 2, (1, 1), (0, 0)),
    (2, 2, 4, 4, 3, (4, 4), (0, 0)),  # kernel = input: one output per image
    (2, 1, 6, 7, 2, (2, 3), (1, 0)),  # even transform lengths along both axes
]


def test_right_product_is_the_real_form_of_the_complex_product():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 4, 5)) + 1j * rng.standard_normal((3, 4, 5))
    z = rng.standard_normal((3, 2, 4)) + 1j * rng.standard_normal((3, 2, 4))
    real = right_product(a)
    assert real.shape == (3, 8, 10)
    interleaved = z.view(F64)  # (re, im) pairs along the last axis
    np.testing.assert_allclose((interleaved @ real).view(complex), z @ a, rtol=1e-12)
    w = rng.standard_normal((3, 2, 5)) + 1j * rng.standard_normal((3, 2, 5))
    np.testing.assert_allclose((w.view(F64) @ real.transpose(0, 2, 1)).view(complex),
                               w @ a.conj().transpose(0, 2, 1), rtol=1e-12)


@pytest.fixture
def dft_always(monkeypatch):
    """Every convolution that the DFT route can take takes it."""
    monkeypatch.setattr(conv_route_dft, "DFT_BELOW", float("inf"))


def test_layers_take_the_route_that_needs_fewer_multiply_adds():
    shapes = {  # bottom shape, M, kernel, pad -> DFT route
        ((100, 32, 16, 16), 32, 5, 2): True,  # CIFAR-10 quick conv2
        ((100, 32, 8, 8), 64, 5, 2): True,  # conv3
        ((64, 20, 12, 12), 50, 5, 0): True,  # LeNet conv2
        ((100, 3, 32, 32), 32, 5, 2): False,  # few input channels: the transforms dominate
        ((8, 64, 32, 32), 64, 1, 0): False,  # 1x1
    }
    for (shape, m, k, p), dft in shapes.items():
        layer = conv_layer(m, (k, k), pad=(p, p))
        layer.setup([Blob(shape, np.float32)], [Blob()])
        assert (layer.dft is not None) == dft, shape


def test_strided_dilated_and_grouped_layers_keep_im2col(dft_always):
    for kwargs in (dict(stride=(2, 2)), dict(dilation=(2, 2)), dict(group=2)):
        layer = conv_layer(4, (3, 3), **kwargs)
        layer.setup([Blob((2, 4, 9, 9), F64)], [Blob(dtype=F64)])
        assert layer.dft is None, kwargs


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_naive_loop(case, rng, dft_always):
    n, c, h, w, m, kernel, pad = case
    x = rng.normal(size=(n, c, h, w))
    layer = conv_layer(m, kernel, pad=pad)
    _, top = run(layer, x)
    assert layer.dft is not None
    ref = conv_naive(x, layer.blobs[0].data, layer.blobs[1].data, (1, 1), pad, (1, 1))
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_forward_and_backward_match_pytorch(case, rng, dft_always):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    n, c, h, w, m, kernel, pad = case
    x = rng.normal(size=(n, c, h, w))
    layer = conv_layer(m, kernel, pad=pad)
    bottom, top = run(layer, x)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.blobs[0].data.copy(), requires_grad=True)
    bt = torch.tensor(layer.blobs[1].data.copy(), requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, 1, pad)
    dy = rng.normal(size=top[0].shape)
    yt.backward(torch.tensor(dy))
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    for got, want in ((top[0].data, yt), (bottom[0].diff, xt.grad), (layer.blobs[0].diff,
                      wt.grad), (layer.blobs[1].diff, bt.grad)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("case", CASES[:3])
def test_gradient(case, rng, dft_always):
    n, c, h, w, m, kernel, pad = case
    layer = conv_layer(m, kernel, pad=pad)
    check_gradient(layer, [blob_from(rng.normal(size=(n, c, h, w)))], [Blob(dtype=F64)])


def test_gradient_two_bottoms_share_weights(rng, dft_always):
    layer = conv_layer(3, (3, 3), pad=(1, 1))
    bottom = [blob_from(rng.normal(size=(2, 2, 4, 5))) for _ in range(2)]
    check_gradient(layer, bottom, [Blob(dtype=F64), Blob(dtype=F64)])


def test_backward_uses_weights_changed_after_forward(rng, dft_always):
    """The weight transform is kept from forward only while the weights stay the same."""
    x = rng.normal(size=(2, 3, 6, 6))
    layer = conv_layer(4, (3, 3), pad=(1, 1))
    bottom, top = run(layer, x)
    layer.blobs[0].data[...] = rng.normal(size=layer.blobs[0].shape)
    top[0].diff[...] = rng.normal(size=top[0].shape)
    layer.backward(top, [True], bottom)
    dx = bottom[0].diff.copy()
    bottom[0].diff[...] = 0
    layer.forward(bottom, top)  # forward with the new weights: the same input gradient
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(dx, bottom[0].diff, rtol=1e-12, atol=1e-12)


def test_input_gradient_follows_every_weight_update(rng, dft_always):
    """The transposed weight transform of backward is made again after the weights change
    (training changes them between a backward and the next forward)."""
    layer = conv_layer(4, (3, 3), pad=(1, 1))
    bottom, top = run(layer, rng.normal(size=(2, 3, 6, 6)))
    for _ in range(3):
        layer.blobs[0].data[...] = rng.normal(size=layer.blobs[0].shape)
        layer.forward(bottom, top)
        top[0].diff[...] = rng.normal(size=top[0].shape)
        layer.backward(top, [True], bottom)
        w = layer.blobs[0].data  # the input gradient is the transposed convolution of dy
        ref = deconv_naive(top[0].diff, w, np.zeros(w.shape[1]), (1, 1), (1, 1), (1, 1))
        np.testing.assert_allclose(bottom[0].diff, ref, rtol=1e-11, atol=1e-12)


def test_a_new_input_size_gets_its_own_plan(rng, dft_always):
    layer = conv_layer(3, (3, 3), pad=(1, 1))
    for shape in ((2, 2, 6, 6), (1, 2, 9, 5), (2, 2, 6, 6)):
        x = rng.normal(size=shape)
        _, top = run(layer, x)
        ref = conv_naive(x, layer.blobs[0].data, layer.blobs[1].data, (1, 1), (1, 1), (1, 1))
        np.testing.assert_allclose(top[0].data, ref, rtol=1e-11, atol=1e-12)


def test_float32_cifar_layer_matches_im2col_within_rounding(rng, monkeypatch):
    """The CIFAR-10 conv2 geometry in float32: both routes agree to float32 rounding."""
    x = rng.normal(size=(6, 32, 16, 16)).astype(np.float32)
    dy = rng.normal(size=(6, 32, 16, 16)).astype(np.float32)
    results = []
    for below in (float("inf"), 0.0):
        monkeypatch.setattr(conv_route_dft, "DFT_BELOW", below)
        layer = make_layer("type: 'Convolution' convolution_param { num_output: 32 "
                           "kernel_size: 5 pad: 2 weight_filler { type: 'gaussian' std: 0.05 } "
                           "}", dtype=np.float32)
        bottom, top = [blob_from(x, np.float32)], [Blob()]
        layer.setup(bottom, top)
        assert (layer.dft is not None) == (below > 0)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        results.append([layer.blobs[0].data.copy(), top[0].data.copy(), bottom[0].diff.copy(),
                        layer.blobs[0].diff.copy()])
    for dft, direct in zip(*results):
        scale = np.abs(direct).max()
        np.testing.assert_allclose(dft, direct, rtol=0, atol=2e-6 * scale)


# With 16 -> 32 channels the weight transforms and their adjoint are split among the threads too.
@pytest.mark.parametrize("channels, num_output", [(3, 4), (16, 32)])
def test_batch_split_among_threads_gives_the_same_results(channels, num_output, rng, dft_always,
                                                          monkeypatch):
    monkeypatch.setattr(convolution, "PARALLEL_MIN_WORK", 1)  # split even this small batch
    x = rng.normal(size=(8, channels, 6, 6))
    dy = rng.normal(size=(8, num_output, 6, 6))  # each output channel its own weight gradient
    results, saved = [], runtime.num_threads()
    for threads in (1, 2):
        runtime.set_num_threads(threads)
        try:
            layer = conv_layer(num_output, (3, 3), pad=(1, 1))
            layer.rng = np.random.default_rng(3)
            bottom, top = [blob_from(x)], [Blob(dtype=F64)]
            layer.setup(bottom, top)
            layer.forward(bottom, top)
            top[0].diff[...] = dy
            layer.backward(top, [True], bottom)
            results.append([top[0].data.copy(), bottom[0].diff.copy(),
                            layer.blobs[0].diff.copy(), layer.blobs[1].diff.copy()])
        finally:
            runtime.set_num_threads(saved)
    for one, two in zip(*results):
        np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-12)


def test_plan_counts_fewer_multiply_adds_than_im2col_for_cifar_conv2():
    plan = DftPlan(32, 32, (16, 16), (5, 5), (2, 2))
    assert plan.out == (16, 16) and plan.bins == 20 * 11
    direct = 32 * 32 * 25 * 256
    assert plan.multiply_adds() < direct / 2
