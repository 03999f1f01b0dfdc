"""Im2col layer: Caffe's im2col_cpu loop and PyTorch's unfold; col2im backward by gradient check."""
import itertools

import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer
from tests.reference.conv_naive import im2col_naive

F64 = np.float64


def im2col_layer(text):
    return make_layer("type: 'Im2col' convolution_param { " + text + " }")


def run(layer, x):
    bottom, top = [blob_from(x)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return bottom, top


CASES = [  # text, kernel, pad, stride, dilation
    ("kernel_size: 3 stride: 2", (3, 3), (0, 0), (2, 2), (1, 1)),
    ("kernel_h: 5 kernel_w: 3 stride: 2", (5, 3), (0, 0), (2, 2), (1, 1)),
    ("kernel_size: 3 pad: 1 dilation: 2", (3, 3), (1, 1), (1, 1), (2, 2)),
    ("kernel_size: 2 kernel_size: 3 pad: 0 pad: 2 stride: 1 stride: 3 dilation: 2 dilation: 1",
     (2, 3), (0, 2), (1, 3), (2, 1)),
]


@pytest.mark.parametrize("text, kernel, pad, stride, dilation", CASES)
def test_forward_matches_caffe_loop_and_unfold(text, kernel, pad, stride, dilation, rng):
    x = rng.normal(size=(2, 3, 6, 5))
    _, top = run(im2col_layer(text), x)
    assert top[0].shape[:2] == (2, 3 * kernel[0] * kernel[1])
    for n in range(2):
        ref = im2col_naive(x[n], kernel, pad, stride, dilation)
        np.testing.assert_array_equal(top[0].data[n].reshape(ref.shape), ref)
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    unfold = torch.nn.functional.unfold(torch.tensor(x), kernel, dilation, pad, stride).numpy()
    np.testing.assert_array_equal(top[0].data.reshape(unfold.shape), unfold)


def test_setup_shapes():
    """Rows C·kh·kw; out = (in + 2·pad − (dilation·(k−1)+1))/stride + 1."""
    for text, shape in (("kernel_size: 3 stride: 2", (2, 27, 4, 4)),
                        ("kernel_size: 3 stride: 2 dilation: 3", (2, 27, 2, 2)),
                        ("kernel_size: 3 stride: 2 dilation: 3 pad: 3", (2, 27, 5, 5)),
                        ("kernel_h: 5 kernel_w: 3 stride_h: 1 stride_w: 3", (2, 45, 6, 3))):
        layer, top = im2col_layer(text), [Blob(dtype=F64)]
        layer.setup([Blob((2, 3, 10, 9), F64)], top)
        assert top[0].shape == shape, text


def test_three_d_and_channel_axis(rng):
    x = rng.normal(size=(2, 2, 4, 3, 5))
    _, top = run(im2col_layer("kernel_size: 2 kernel_size: 2 kernel_size: 3 stride: 2 pad: 1"),
                 x)
    assert top[0].shape == (2, 2 * 12, 3, 2, 3)
    xpad = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1), (1, 1)])
    for c, i, j, k in itertools.product(range(2), range(2), range(2), range(3)):
        row = ((c * 2 + i) * 2 + j) * 3 + k
        for z, y, w in itertools.product(range(3), range(2), range(3)):
            np.testing.assert_array_equal(top[0].data[:, row, z, y, w],
                                          xpad[:, c, 2 * z + i, 2 * y + j, 2 * w + k])
    # axis: 2 makes (2, 2) the batch and 4 the channels of 2-D images
    _, top = run(im2col_layer("kernel_size: 2 axis: 2"), x)
    assert top[0].shape == (2, 2, 16, 2, 4)
    ref = im2col_naive(x[1, 0], (2, 2), (0, 0), (1, 1), (1, 1))
    np.testing.assert_array_equal(top[0].data[1, 0].reshape(ref.shape), ref)


@pytest.mark.parametrize("text", ["kernel_size: 3 stride: 2 pad: 1",
                                  "kernel_h: 2 kernel_w: 3 dilation: 2",
                                  "kernel_size: 2 stride: 1"])
def test_gradient(text, rng):
    check_gradient(im2col_layer(text), [blob_from(rng.normal(size=(2, 2, 5, 5)))],
                   [Blob(dtype=F64)])


def test_gradient_three_d(rng):
    check_gradient(im2col_layer("kernel_size: 2 pad: 1 stride: 2"),
                   [blob_from(rng.normal(size=(1, 2, 3, 2, 3)))], [Blob(dtype=F64)])


def test_errors_name_the_layer():
    layer = make_layer("name: 'cols' type: 'Im2col' convolution_param { kernel_size: 7 }")
    with pytest.raises(NetError, match="layer 'cols' \\(Im2col\\): kernel .* is larger"):
        layer.setup([Blob((1, 1, 5, 5), F64)], [Blob(dtype=F64)])
    layer = make_layer("name: 'cols' type: 'Im2col' convolution_param { stride: 2 }")
    with pytest.raises(NetError, match="needs kernel_size"):
        layer.setup([Blob((1, 1, 5, 5), F64)], [Blob(dtype=F64)])
