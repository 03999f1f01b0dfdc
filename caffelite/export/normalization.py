"""LRN, BatchNorm, MVN, Scale and Bias as ONNX operators."""
import numpy as np

from .onnx_graph import converts


@converts("LRN")
def lrn(g, layer, xs):
    """ACROSS_CHANNELS is ONNX LRN (alpha written out: ONNX's default is 1e-4, Caffe's 1).
    WITHIN_CHANNEL has no operator: x·(1 + alpha·mean_{n×n}(x²))^(−beta), the mean over a
    window padded by (n−1)/2 with zeros and always divided by n² (k is unused, as in Caffe)."""
    if not layer.within:
        return [g.node("LRN", xs, g.top(0), size=layer.size, alpha=layer.alpha,
                       beta=layer.beta, bias=layer.k)]
    n, pad = layer.size, (layer.size - 1) // 2
    mean = g.node("AveragePool", [g.node("Mul", [xs[0], xs[0]])], kernel_shape=[n, n],
                  strides=[1, 1], pads=[pad] * 4, count_include_pad=1)
    scale = g.node("Add", [g.node("Mul", [mean, g.scalar(layer.alpha, "alpha")]),
                           g.scalar(1.0, "one")])
    factor = g.node("Pow", [scale, g.scalar(-layer.beta, "minus_beta")])
    return [g.node("Mul", [xs[0], factor], g.top(0))]


@converts("BatchNorm")
def batch_norm(g, layer, xs):
    """Global statistics: mean = b0/s, var = b1/s (0 when the factor s is 0), ONNX
    BatchNormalization with scale 1 and bias 0 (the affine part is Caffe's next Scale layer).
    Batch statistics (use_global_stats false): the mean and biased variance of the input over
    every axis but the channels, written out."""
    rank = len(g.shape(g.bottom_blobs[0]))
    if not layer.use_global_stats:
        axes = [0] + list(range(2, rank))
        mean = g.reduce("ReduceMean", xs[0], axes, keepdims=1)
        centred = g.node("Sub", [xs[0], mean])
        var = g.reduce("ReduceMean", g.node("Mul", [centred, centred]), axes, keepdims=1)
        std = g.node("Sqrt", [g.node("Add", [var, g.scalar(layer.eps, "eps")])])
        return [g.node("Div", [centred, std], g.top(0))]
    s = float(layer.blobs[2].data.reshape(-1)[0])
    factor = 0.0 if s == 0 else 1.0 / s
    mean = (layer.blobs[0].data * factor).astype(np.float32)
    var = (layer.blobs[1].data * factor).astype(np.float32)
    if rank >= 2:
        ones, zeros = np.ones_like(mean), np.zeros_like(mean)
        inputs = [xs[0], g.const(ones, "scale"), g.const(zeros, "bias"), g.const(mean, "mean"),
                  g.const(var, "var")]
        return [g.node("BatchNormalization", inputs, g.top(0), epsilon=layer.eps)]
    std = np.sqrt(var + np.float32(layer.eps))
    centred = g.node("Sub", [xs[0], g.const(mean.reshape(()), "mean")])
    return [g.node("Div", [centred, g.const(std.reshape(()), "std")], g.top(0))]


def _broadcast(g, operand, operand_shape, x_blob, axis_field):
    """`operand` (a tensor name, or an array) shaped to broadcast over the input's axes
    [axis, axis + operand.ndim): trailing 1s added; a 0-axis operand is a scalar."""
    rank = len(g.shape(x_blob))
    ndim = len(operand_shape)
    axis = 0 if ndim == 0 else (axis_field if axis_field >= 0 else rank + axis_field)
    trailing = rank - axis - ndim
    if isinstance(operand, np.ndarray):
        return g.const(operand.reshape(tuple(operand_shape) + (1,) * trailing), "operand")
    if trailing == 0:
        return operand
    return g.node("Unsqueeze", [operand, g.ints(range(ndim, ndim + trailing), "axes")])


def _operand(g, layer, xs, axis, index):
    """The scale (or bias) tensor: bottom[1] when given, else the learned blob `index`."""
    if len(xs) > 1:
        blob = g.bottom_blobs[1]
        return _broadcast(g, xs[1], g.shape(blob), g.bottom_blobs[0], axis)
    data = layer.blobs[index].data
    return _broadcast(g, np.asarray(data, np.float32), data.shape, g.bottom_blobs[0], axis)


@converts("Scale")
def scale(g, layer, xs):
    axis = layer.layer_param.scale_param.axis
    y = g.node("Mul", [xs[0], _operand(g, layer, xs, axis, 0)],
               None if layer.bias_term else g.top(0))
    if not layer.bias_term:
        return [y]
    bias = layer.blobs[-1].data
    bias = _broadcast(g, np.asarray(bias, np.float32), bias.shape, g.bottom_blobs[0], axis)
    return [g.node("Add", [y, bias], g.top(0))]


@converts("Bias")
def bias(g, layer, xs):
    axis = layer.layer_param.bias_param.axis
    return [g.node("Add", [xs[0], _operand(g, layer, xs, axis, 0)], g.top(0))]


@converts("MVN")
def mvn(g, layer, xs):
    """Subtract the mean over axes 2.. (1.. across channels); with normalize_variance divide
    by sqrt(var) + eps (eps after the root, as Caffe)."""
    rank = len(g.shape(g.bottom_blobs[0]))
    axes = list(range(1 if layer.across_channels else 2, rank))
    if not axes:  # one value per group: it is its own mean
        return [g.node("Sub", [xs[0], xs[0]], g.top(0))]
    mean = g.reduce("ReduceMean", xs[0], axes, keepdims=1)
    centred = g.node("Sub", [xs[0], mean], None if layer.normalize_variance else g.top(0))
    if not layer.normalize_variance:
        return [centred]
    var = g.reduce("ReduceMean", g.node("Mul", [centred, centred]), axes, keepdims=1)
    sigma = g.node("Add", [g.node("Sqrt", [var]), g.scalar(layer.eps, "eps")])
    return [g.node("Div", [centred, sigma], g.top(0))]
