"""Convolution, Deconvolution, Im2col, Pooling and SPP as ONNX operators, with Caffe's sizes.

Pooling is built so that Caffe's rules hold whatever ONNX's defaults are: the net already
knows each output size (the ceil rule and the last-window clip), so the input is padded
explicitly (−FLT_MAX for MAX, 0 for AVE) or cut to exactly the cells those windows read, then
pooled without padding. AVE then scales each output by k_h·k_w / Caffe's divisor (the window
clipped to the padded input, before clipping to the image), a constant (oh, ow) tensor.
"""
import numpy as np

from ..proto import caffelite_pb2 as pb
from .onnx_graph import FLT_MAX, converts

P = pb.PoolingParameter


def _conv_attrs(layer):
    return dict(kernel_shape=list(layer.kernel), strides=list(layer.stride),
                pads=list(layer.pad) * 2, dilations=list(layer.dilation),
                group=getattr(layer, "group", 1))  # (Im2col has no group)


def _conv(g, layer, xs, op):
    if layer.channel_axis != 1:
        raise g.error(f"convolution_param.axis {layer.channel_axis}: ONNX convolves with the "
                      "channels on axis 1 only")
    weights = [g.const(layer.blobs[0].data, "weight")]
    if layer.bias_term:
        weights.append(g.const(layer.blobs[1].data, "bias"))
    return [g.node(op, [x] + weights, g.top(i), **_conv_attrs(layer)) for i, x in enumerate(xs)]


@converts("Convolution")
def convolution(g, layer, xs):
    """Conv: the same weight layout (num_output, C/group, k...), pads on both sides."""
    return _conv(g, layer, xs, "Conv")


@converts("Deconvolution")
def deconvolution(g, layer, xs):
    """ConvTranspose: Caffe's weight (C, num_output/group, k...) is ONNX's layout; the size
    s·(in−1) + d·(k−1) + 1 − 2·pad is ONNX's with no output_padding."""
    return _conv(g, layer, xs, "ConvTranspose")


@converts("Im2col")
def im2col(g, layer, xs):
    """A grouped Conv (one group per channel) whose kernels pick one window cell each: output
    channel c·K + i is input channel c at kernel offset i, Caffe's column order."""
    if layer.channel_axis != 1:
        raise g.error("convolution_param.axis must be 1")
    channels = g.shape(g.bottom_blobs[0])[1]
    cells = int(np.prod(layer.kernel))
    weight = np.zeros((channels, cells, cells), np.float32)
    weight[:, np.arange(cells), np.arange(cells)] = 1
    weight = weight.reshape((channels * cells, 1) + tuple(layer.kernel))
    attrs = _conv_attrs(layer)
    attrs["group"] = channels
    return [g.node("Conv", [xs[0], g.const(weight, "one_hot")], g.top(0), **attrs)]


def ave_divisor(size, kernel, pad, stride, out_size):
    """Caffe's AVE divisor per output (oh, ow): each window, starting at i·stride − pad, cut
    at the end of the padded input (size + pad) — before it is clipped to the image."""
    extents = []
    for n, k, p, s, o in zip(size, kernel, pad, stride, out_size):
        start = np.arange(o) * s - p
        extents.append(np.minimum(start + k, n + p) - start)
    return np.outer(extents[0], extents[1]).astype(np.float64)


def pool2d(g, x, size, method, kernel, pad, stride, out_size, output):
    """Caffe's pooling of x (N, C, *size) into (N, C, *out_size), written to `output`."""
    need = [(o - 1) * s + k for o, s, k in zip(out_size, stride, kernel)]
    right = [n - h - p for n, h, p in zip(need, size, pad)]  # < 0: cells no window reads
    if min(right) < 0:
        ends = [h + min(r, 0) for h, r in zip(size, right)]
        x = g.node("Slice", [x, g.ints([0, 0]), g.ints(ends), g.ints([2, 3])])
    pads = [0, 0, *pad, 0, 0, *(max(r, 0) for r in right)]
    if any(pads):
        fill = -FLT_MAX if method == P.MAX else 0.0
        x = g.node("Pad", [x, g.ints(pads, "pads"), g.scalar(fill, "pad_value")])
    attrs = dict(kernel_shape=list(kernel), strides=list(stride))
    if method == P.MAX:
        return g.node("MaxPool", [x], output, **attrs)
    if method == P.STOCHASTIC:  # TEST: Σa² / Σa over the window
        squares = g.node("AveragePool", [g.node("Mul", [x, x])], **attrs)
        return g.node("Div", [squares, g.node("AveragePool", [x], **attrs)], output)
    divisor = ave_divisor(size, kernel, pad, stride, out_size)
    with np.errstate(divide="ignore"):  # a window wholly past the image: 0/0, as Caffe
        factor = (kernel[0] * kernel[1] / divisor).astype(np.float32)
    if np.all(factor == 1):
        return g.node("AveragePool", [x], output, **attrs)
    mean = g.node("AveragePool", [x], **attrs)
    return g.node("Mul", [mean, g.const(factor, "ave_divisor")], output)


@converts("Pooling")
def pooling(g, layer, xs):
    if len(layer.layer_param.top) > 1:
        raise g.error("the second top (MAX pooling's argmax mask) has no ONNX equivalent")
    if layer.method == P.STOCHASTIC and layer.phase == pb.TRAIN:
        raise g.error("STOCHASTIC pooling samples at random in TRAIN; export the TEST phase")
    shape = g.shape(g.bottom_blobs[0])
    if layer.global_pooling:
        op = "GlobalMaxPool" if layer.method == P.MAX else "GlobalAveragePool"
        if layer.method == P.STOCHASTIC:
            return [pool2d(g, xs[0], shape[2:], layer.method, shape[2:], (0, 0), (1, 1),
                           (1, 1), g.top(0))]
        return [g.node(op, xs, g.top(0))]
    return [pool2d(g, xs[0], shape[2:], layer.method, layer.kernel, layer.pad, layer.stride,
                   layer.out_size, g.top(0))]


@converts("SPP")
def spp(g, layer, xs):
    """Each pyramid level pooled with Pooling's rules, flattened, concatenated on axis 1."""
    if layer.method == pb.SPPParameter.STOCHASTIC and layer.phase == pb.TRAIN:
        raise g.error("STOCHASTIC pooling samples at random in TRAIN; export the TEST phase")
    size = g.shape(g.bottom_blobs[0])[2:]
    if len(layer.levels) == 1:
        kernel, pad, stride, out = layer.levels[0]
        return [pool2d(g, xs[0], size, layer.method, kernel, pad, stride, out, g.top(0))]
    parts = []
    for kernel, pad, stride, out in layer.levels:
        pooled = pool2d(g, xs[0], size, layer.method, kernel, pad, stride, out, None)
        parts.append(g.node("Flatten", [pooled], axis=1))
    return [g.node("Concat", parts, g.top(0), axis=1)]
