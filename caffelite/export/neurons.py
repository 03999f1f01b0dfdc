"""Elementwise layers (activations) and the layers that are the identity at inference."""
import numpy as np

from ..proto import caffelite_pb2 as pb
from .onnx_graph import converts


@converts("Dropout")
def dropout(g, layer, xs):
    """Inverted dropout (Caffe's) is the identity outside TRAIN."""
    if layer.phase == pb.TRAIN:
        g.notes.append(f"layer '{layer.name}' (Dropout) exported as the identity (its TEST "
                       "behaviour) from a TRAIN net")
    return [xs[0]]


@converts("ReLU")
def relu(g, layer, xs):
    slope = float(layer.layer_param.relu_param.negative_slope)
    if slope:  # max(x, 0) + slope·min(x, 0)
        return [g.node("LeakyRelu", xs, g.top(0), alpha=slope)]
    return [g.node("Relu", xs, g.top(0))]


@converts("PReLU")
def prelu(g, layer, xs):
    """PRelu with the slopes shaped (C, 1, ..., 1) to broadcast over axis 1 (Caffe's channels)."""
    slope = layer.blobs[0].data
    rank = len(g.shape(g.bottom_blobs[0]))
    shape = (1,) if layer.channel_shared else (-1,) + (1,) * (rank - 2)
    return [g.node("PRelu", [xs[0], g.const(slope.reshape(shape), "slope")], g.top(0))]


@converts("ELU")
def elu(g, layer, xs):
    return [g.node("Elu", xs, g.top(0), alpha=float(layer.alpha))]


@converts("Sigmoid")
def sigmoid(g, layer, xs):
    return [g.node("Sigmoid", xs, g.top(0))]


@converts("TanH")
def tanh(g, layer, xs):
    return [g.node("Tanh", xs, g.top(0))]


@converts("AbsVal")
def abs_val(g, layer, xs):
    return [g.node("Abs", xs, g.top(0))]


@converts("BNLL")
def bnll(g, layer, xs):
    """log(1 + exp(x)) as max(x, 0) + log(1 + exp(−|x|)), Caffe's overflow-free form."""
    tail = g.node("Exp", [g.node("Neg", [g.node("Abs", xs)])])
    soft = g.node("Log", [g.node("Add", [tail, g.scalar(1.0, "one")])])
    return [g.node("Add", [g.node("Relu", xs), soft], g.top(0))]


def _affine(g, x, scale, shift):
    if scale != 1:
        x = g.node("Mul", [x, g.scalar(scale, "scale")])
    if shift != 0:
        x = g.node("Add", [x, g.scalar(shift, "shift")])
    return x


@converts("Power")
def power(g, layer, xs):
    """(shift + scale·x)^power; power·scale = 0 gives Caffe's constant (1 or shift^power)."""
    if layer.diff_scale == 0:
        value = 1.0 if layer.power == 0 else layer.shift ** layer.power
        shape = g.node("Shape", xs)
        fill = np.array([value], np.float32)
        return [g.node("ConstantOfShape", [shape], g.top(0),
                       value=_tensor(fill))]
    base = _affine(g, xs[0], layer.scale, layer.shift)
    if layer.power == 1:
        return [g.node("Identity", [base], g.top(0))]
    return [g.node("Pow", [base, g.scalar(layer.power, "power")], g.top(0))]


def _tensor(array):
    from onnx import numpy_helper

    return numpy_helper.from_array(array)


@converts("Exp")
def exp(g, layer, xs):
    """base^(shift + scale·x) = base^shift · exp(ln(base)·scale·x), as Caffe computes it."""
    y = g.node("Exp", [_affine(g, xs[0], layer.inner_scale, 0)])
    if layer.outer_scale != 1:
        return [g.node("Mul", [y, g.scalar(layer.outer_scale, "outer_scale")], g.top(0))]
    return [g.node("Identity", [y], g.top(0))]


@converts("Log")
def log(g, layer, xs):
    y = g.node("Log", [_affine(g, xs[0], layer.scale, layer.shift)])
    if layer.base_scale != 1:
        return [g.node("Mul", [y, g.scalar(layer.base_scale, "base_scale")], g.top(0))]
    return [g.node("Identity", [y], g.top(0))]


@converts("Clip")
def clip(g, layer, xs):
    low, high = g.scalar(layer.min, "min"), g.scalar(layer.max, "max")
    return [g.node("Clip", [xs[0], low, high], g.top(0))]


@converts("Swish")
def swish(g, layer, xs):
    """x · sigmoid(beta·x)."""
    gate = g.node("Sigmoid", [_affine(g, xs[0], layer.beta, 0)])
    return [g.node("Mul", [xs[0], gate], g.top(0))]


@converts("Threshold")
def threshold(g, layer, xs):
    """1 where x > threshold, else 0 (as floats)."""
    above = g.node("Greater", [xs[0], g.scalar(layer.threshold, "threshold")])
    return [g.node("Cast", [above], g.top(0), to=1)]  # 1 = FLOAT

