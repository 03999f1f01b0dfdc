"""Convolution: naive loop and PyTorch references (forward, autograd), gradient checks, errors."""
import numpy as np
import pytest

import caffelite.layers.convolution as convolution
from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.kernels import conv_route_per_image
from caffelite.kernels.im2col_compiled import im2col_images
from caffelite.layer import TEST, TRAIN
from tests.gradient_check import blob_from, check_gradient, make_layer
from tests.reference.conv_naive import conv_naive

F64 = np.float64
pytestmark = pytest.mark.usefixtures("conv_route")  # every test on each im2col route


def conv_layer(num_output, kernel, stride=None, pad=None, dilation=None, group=1, bias=True,
               extra=""):
    """A Convolution layer with gaussian weights and bias; per-axis values as repeated fields."""
    fields = [f"num_output: {num_output}", f"group: {group}", f"bias_term: {str(bias).lower()}",
              "weight_filler { type: 'gaussian' std: 0.5 }",
              "bias_filler { type: 'gaussian' std: 0.5 }", extra]
    for name, values in (("kernel_size", kernel), ("stride", stride), ("pad", pad),
                         ("dilation", dilation)):
        fields += [f"{name}: {v}" for v in (values or ())]
    return make_layer("type: 'Convolution' convolution_param { " + " ".join(fields) + " }")


def run(layer, *xs):
    bottom = [blob_from(x) for x in xs]
    top = [Blob(dtype=F64) for _ in xs]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return bottom, top


SWEEP = [  # N, C, H, W, M, kernel, stride, pad, dilation, group
    (2, 3, 6, 5, 4, (3, 3), (1, 1), (0, 0), (1, 1), 1),
    (2, 4, 7, 9, 6, (3, 2), (2, 1), (1, 2), (1, 2), 2),
    (1, 6, 8, 8, 6, (3, 3), (2, 3), (0, 1), (2, 1), 3),
    (3, 3, 5, 5, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (2, 2, 5, 6, 3, (5, 4), (1, 2), (2, 2), (1, 1), 1),
    (1, 4, 9, 7, 8, (3, 3), (3, 3), (1, 1), (2, 2), 4),
    (2, 1, 4, 4, 2, (4, 4), (1, 1), (0, 0), (1, 1), 1),  # kernel = input: 1x1 output
]


def test_route_runs_the_compiled_kernel(conv_route, monkeypatch, rng):
    """Each route's tests run the code they name: the compiled im2col runs exactly on its route
    (forward and, with the columns not kept, backward)."""
    calls = []
    monkeypatch.setattr(conv_route_per_image, "im2col_images", lambda *args: (
        calls.append(args[-1].shape), im2col_images(*args))[1])
    monkeypatch.setattr(convolution, "COL_BUFFER_ELEMENTS", 2 * 28 * 25)  # 2 images a chunk
    layer = conv_layer(4, (3, 3), pad=(1, 1))
    bottom, top = run(layer, rng.normal(size=(5, 3, 5, 5)))
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    expected = {"batch_last": 0, "per_image": 0, "per_image_compiled": 3 + 3}[conv_route]
    assert len(calls) == expected and all(s[1:] == (28, 25) for s in calls)


@pytest.mark.parametrize("case", SWEEP)
def test_forward_matches_naive_loop(case, rng):
    n, c, h, w, m, kernel, stride, pad, dilation, group = case
    x = rng.normal(size=(n, c, h, w))
    layer = conv_layer(m, kernel, stride, pad, dilation, group)
    _, top = run(layer, x)
    w_, b_ = layer.blobs[0].data, layer.blobs[1].data
    assert w_.shape == (m, c // group) + kernel and b_.shape == (m,)
    ref = conv_naive(x, w_, b_, stride, pad, dilation, group)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", SWEEP)
def test_forward_and_backward_match_pytorch(case, bias, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    n, c, h, w, m, kernel, stride, pad, dilation, group = case
    x = rng.normal(size=(n, c, h, w))
    layer = conv_layer(m, kernel, stride, pad, dilation, group, bias)
    bottom, top = run(layer, x)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.blobs[0].data.copy(), requires_grad=True)
    bt = torch.tensor(layer.blobs[1].data.copy(), requires_grad=True) if bias else None
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride, pad, dilation, group)
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


def test_three_d_convolution_matches_pytorch_and_naive(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(2, 4, 5, 6, 4))
    layer = conv_layer(4, (3, 2, 2), (1, 2, 1), (1, 0, 1), (1, 1, 2), group=2)
    bottom, top = run(layer, x)
    w_, b_ = layer.blobs[0].data, layer.blobs[1].data
    assert w_.shape == (4, 2, 3, 2, 2)
    np.testing.assert_allclose(top[0].data, conv_naive(x, w_, b_, (1, 2, 1), (1, 0, 1),
                                                       (1, 1, 2), 2), rtol=1e-12, atol=1e-12)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w_.copy(), requires_grad=True)
    yt = torch.nn.functional.conv3d(xt, wt, torch.tensor(b_), (1, 2, 1), (1, 0, 1), (1, 1, 2), 2)
    dy = rng.normal(size=top[0].shape)
    yt.backward(torch.tensor(dy))
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].diff, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("text", [
    "num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2",
    "num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 dilation: 2",
    "num_output: 2 kernel_size: 2 bias_term: false",
])
def test_gradient(text, rng):
    layer = make_layer("type: 'Convolution' convolution_param { " + text + " weight_filler "
                       "{ type: 'gaussian' } bias_filler { type: 'gaussian' } }")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 4, 5, 4)))], [Blob(dtype=F64)])


def test_gradient_three_d(rng):
    layer = make_layer("type: 'Convolution' convolution_param { num_output: 2 kernel_size: 2 "
                       "pad: 1 stride: 2 weight_filler { type: 'gaussian' } bias_filler "
                       "{ type: 'gaussian' } }")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 2, 3, 3, 2)))], [Blob(dtype=F64)])


def test_gradient_two_bottoms_share_weights(rng):
    layer = conv_layer(3, (2, 2), pad=(1, 1))
    bottom = [blob_from(rng.normal(size=(2, 2, 3, 3))) for _ in range(2)]
    check_gradient(layer, bottom, [Blob(dtype=F64), Blob(dtype=F64)])


def test_several_bottoms_use_the_same_weights_and_accumulate(rng):
    x0, x1 = rng.normal(size=(2, 2, 2, 5, 4))
    layer = conv_layer(3, (3, 2), pad=(1, 0))
    bottom, top = run(layer, x0, x1)
    w_, b_ = layer.blobs[0].data, layer.blobs[1].data
    for x, t in zip((x0, x1), top):
        np.testing.assert_allclose(t.data, conv_naive(x, w_, b_, (1, 1), (1, 0), (1, 1)),
                                   rtol=1e-12, atol=1e-12)
    d0, d1 = rng.normal(size=(2,) + top[0].shape)
    grads = []
    for diffs in ((d0, 0 * d1), (0 * d0, d1), (d0, d1)):
        for t, d in zip(top, diffs):
            t.diff[...] = d
        for blob in layer.blobs:
            blob.diff[...] = 0
        layer.backward(top, [True, True], bottom)
        grads.append([blob.diff.copy() for blob in layer.blobs])
    for single0, single1, both in zip(*grads):
        np.testing.assert_allclose(both, single0 + single1, rtol=1e-12, atol=1e-12)
    layer.backward(top, [True, True], bottom)  # a second pass adds on (iter_size)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * grads[2][0], rtol=1e-12)


def test_channel_axis_other_than_one(rng):
    """axis: 2 treats the leading axes as the batch: (2, 3, C, H, W) = 6 images."""
    x = rng.normal(size=(2, 3, 2, 4, 5))
    layer = conv_layer(4, (3, 3), pad=(1, 1), extra="axis: 2")
    _, top = run(layer, x)
    assert top[0].shape == (2, 3, 4, 4, 5)
    ref = conv_naive(x.reshape(6, 2, 4, 5), layer.blobs[0].data, layer.blobs[1].data,
                     (1, 1), (1, 1), (1, 1))
    np.testing.assert_allclose(top[0].data.reshape(ref.shape), ref, rtol=1e-12, atol=1e-12)


def test_batch_chunks_give_the_same_results(rng, monkeypatch):
    x = rng.normal(size=(5, 3, 6, 6))
    layer = conv_layer(4, (3, 3), (2, 2), (1, 1), group=1)
    bottom, top = run(layer, x)
    top[0].diff[...] = rng.normal(size=top[0].shape)
    layer.backward(top, [True], bottom)
    expected = [top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy()]
    monkeypatch.setattr(convolution, "COL_BUFFER_ELEMENTS", 2 * 27 * 9)  # 2 images a chunk
    layer.forward(bottom, top)
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [True], bottom)
    for got, want in zip((top[0].data, bottom[0].diff, layer.blobs[0].diff), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("group_bytes", [1, 1 << 30])  # one image a group; one group
def test_test_phase_matches_train_phase(group_bytes, rng, monkeypatch):
    """A TEST net's layer may keep no columns (the compiled route reuses one group's buffer);
    forward gives the same top, and a backward still gives the same gradients."""
    monkeypatch.setattr(conv_route_per_image, "GROUP_BYTES", group_bytes)
    text = ("type: 'Convolution' convolution_param { num_output: 4 kernel_size: 3 pad: 1 "
            "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' } }")
    x, dy = rng.normal(size=(5, 3, 6, 6)), rng.normal(size=(5, 4, 6, 6))
    results = []
    for phase in (TRAIN, TEST):
        layer = make_layer(text, phase=phase)
        bottom, top = [blob_from(x)], [Blob(dtype=F64)]
        layer.setup(bottom, top)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        results.append([top[0].data, bottom[0].diff] + [b.diff for b in layer.blobs])
    for train, test in zip(*results):
        np.testing.assert_allclose(test, train, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[1][0], conv_naive(x, layer.blobs[0].data,
                                                         layer.blobs[1].data, (1, 1), (1, 1),
                                                         (1, 1)), rtol=1e-12, atol=1e-12)


def test_fillers_and_default_blobs():
    layer = make_layer("type: 'Convolution' convolution_param { num_output: 3 kernel_size: 2 "
                       "weight_filler { type: 'constant' value: 2 } }")
    layer.setup([Blob((1, 2, 4, 4), F64)], [Blob(dtype=F64)])
    assert [b.shape for b in layer.blobs] == [(3, 2, 2, 2), (3,)]
    assert np.all(layer.blobs[0].data == 2) and np.all(layer.blobs[1].data == 0)


def test_float32_forward(rng):
    x = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    layer = make_layer("type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 "
                       "pad: 1 weight_filler { type: 'gaussian' } }", dtype=np.float32)
    bottom, top = [blob_from(x, np.float32)], [Blob()]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32
    ref = conv_naive(x, layer.blobs[0].data, layer.blobs[1].data, (1, 1), (1, 1), (1, 1))
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text, shape, message", [
    ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "group 2 must divide"),
    ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "group 2 must divide"),
    ("num_output: 2 kernel_size: 7", (1, 1, 5, 5), "exceeds the padded input"),
    ("num_output: 2 kernel_size: 3 dilation: 3", (1, 1, 6, 9), "kernel extent 7"),
    ("num_output: 2 kernel_h: 3 kernel_w: 3", (1, 1, 4, 4, 4), "2-D convolution only"),
    ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 1, 5, 5), "not both"),
    ("num_output: 2 kernel_h: 3", (1, 1, 5, 5), "given together"),
    ("num_output: 2 kernel_size: 3 stride_h: 2", (1, 1, 5, 5), "given together"),
    ("num_output: 2", (1, 1, 5, 5), "needs kernel_size"),
    ("num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3", (1, 1, 5, 5),
     "once or once per spatial axis"),
    ("num_output: 2 kernel_size: 0", (1, 1, 5, 5), "nonzero"),
    ("num_output: 2 kernel_size: 3 stride: 0", (1, 1, 5, 5), "nonzero"),
    ("kernel_size: 3", (1, 1, 5, 5), "num_output must be set"),
    ("num_output: 2 kernel_size: 1 axis: 3", (1, 1, 5, 5), "no spatial axis"),
])
def test_errors_name_the_layer(text, shape, message):
    layer = make_layer("name: 'conv9' type: 'Convolution' convolution_param { " + text + " }")
    with pytest.raises(NetError, match=message) as info:
        layer.setup([Blob(shape, F64)], [Blob(dtype=F64)])
    assert "layer 'conv9' (Convolution)" in str(info.value)


def test_reshape_errors():
    layer = conv_layer(2, (3, 3))
    bottom, top = [Blob((1, 2, 5, 5), F64)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    with pytest.raises(NetError, match="3 channels"):
        layer.reshape([Blob((1, 3, 5, 5), F64)], top)
    with pytest.raises(NetError, match="num_axes may not change"):
        layer.reshape([Blob((1, 2, 5, 5, 5), F64)], top)
    layer2 = conv_layer(2, (3, 3))
    with pytest.raises(NetError, match="share one shape"):
        layer2.setup([Blob((1, 2, 5, 5), F64), Blob((1, 2, 6, 5), F64)],
                     [Blob(dtype=F64), Blob(dtype=F64)])


def test_lenet_bvlc_weights_match_opencv():
    """BVLC's trained LeNet: conv1, pool1, conv2, pool2 against OpenCV's Caffe importer."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV oracle not installed")
    from caffelite.net import Net
    from tests.conftest import LENET_BVLC, MNIST10K, need_shared

    prototxt = need_shared(LENET_BVLC / "lenet.prototxt")
    weights = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    images = np.load(need_shared(MNIST10K))["images"][:8]
    x = (images.astype(np.float32) * 0.00390625).reshape(8, 1, 28, 28)
    net = Net(str(prototxt), weights=str(weights))
    net.blobs["data"].reshape(8, 1, 28, 28)
    net.reshape()
    net.forward(data=x)
    ref = cv2.dnn.readNetFromCaffe(str(prototxt), str(weights))
    ref.setInput(x)
    names = ["conv1", "pool1", "conv2", "pool2"]
    for name, want in zip(names, ref.forward(names)):
        np.testing.assert_allclose(net.blobs[name].data, want, rtol=1e-4, atol=1e-4)
