"""Weight fillers (Caffe's filler.hpp): blob.data <- a draw of the FillerParameter's law."""
import math

import numpy as np

from .errors import NetError
from .proto import caffelite_pb2 as pb
from .registry import FILLERS
from .runtime import get_array_module


def fill(blob, filler_param, rng, where=None):
    """Fill `blob.data` in place as Caffe's filler `filler_param.type` would.

    filler_param: a pb.FillerParameter (None = Caffe's default, constant 0). rng: the numpy
    Generator of the owning net/layer. where: optional text naming the owner for error messages
    ("layer 'ip1' (InnerProduct) weight_filler").
    """
    if filler_param is None:
        filler_param = pb.FillerParameter()
    filler = get_filler(filler_param, where)
    values = filler(blob.shape, filler_param, rng, where)
    xp = get_array_module(blob.data)
    blob.data[...] = xp.asarray(values, dtype=blob.dtype)


def get_filler(filler_param, where=None):
    """The filler function for filler_param.type, after Caffe's CHECKs (for setup-time checks)."""
    try:
        filler = FILLERS.get(filler_param.type)
    except KeyError as exc:
        raise _error(where, exc.args[0]) from None
    if filler_param.sparse != -1 and filler_param.type != "gaussian":
        raise _error(where, f"filler '{filler_param.type}' does not support sparse "
                            f"(sparse: {filler_param.sparse}); only 'gaussian' does")
    check_filler_numbers(filler_param, where)
    return filler


def check_filler_numbers(filler_param, where=None):
    """Caffe's CHECKs on a filler's numbers (its RNG wants sigma > 0 and a <= b), here before
    any draw: every number finite (a NaN std fills silently with NaN, an infinite bound
    overflows), std >= 0 (0 gives the constant mean), min <= max."""
    for field in ("value", "min", "max", "mean", "std"):
        value = getattr(filler_param, field)
        if not math.isfinite(value):
            raise _error(where, f"{filler_param.type} filler: {field} is {value}; give a finite "
                                "number")
    if filler_param.type == "gaussian" and filler_param.std < 0:
        raise _error(where, f"gaussian filler: std must not be negative, got "
                            f"{filler_param.std:g}")
    if filler_param.type == "uniform" and filler_param.max < filler_param.min:
        raise _error(where, f"uniform filler needs min <= max (min {filler_param.min:g}, max "
                            f"{filler_param.max:g})")


def fan_in_out(shape):
    """Caffe's fans: fan_in = count/shape[0], fan_out = count/shape[1] (count for 1-D)."""
    count = int(np.prod(shape, dtype=np.int64))
    if not shape or shape[0] == 0:
        return count, count
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    return fan_in, fan_out


def _scale_n(shape, param):
    """The n of xavier/msra from variance_norm (FAN_IN default, FAN_OUT, AVERAGE)."""
    fan_in, fan_out = fan_in_out(shape)
    norm = param.variance_norm
    if norm == pb.FillerParameter.FAN_OUT:
        return float(fan_out)
    if norm == pb.FillerParameter.AVERAGE:
        return (fan_in + fan_out) / 2.0
    return float(fan_in)


def _error(where, message):
    return NetError(f"{where}: {message}" if where else message)


@FILLERS.register("constant")
def constant_filler(shape, param, rng, where=None):
    return np.full(shape, param.value, dtype=np.float64)


@FILLERS.register("uniform")
def uniform_filler(shape, param, rng, where=None):
    return rng.uniform(param.min, param.max, size=shape)


@FILLERS.register("gaussian")
def gaussian_filler(shape, param, rng, where=None):
    values = rng.normal(param.mean, param.std, size=shape)
    if param.sparse >= 0:
        # Caffe: keep each weight with probability sparse / num_outputs (shape[0]), so that on
        # average `sparse` outputs connect to each input.
        if len(shape) < 1:
            raise _error(where, "sparse gaussian filler needs a blob with at least 1 axis")
        keep = min(param.sparse / shape[0], 1.0) if shape[0] else 0.0
        values *= rng.random(size=shape) < keep
    return values


@FILLERS.register("positive_unitball")
def positive_unitball_filler(shape, param, rng, where=None):
    values = rng.uniform(0.0, 1.0, size=shape)
    if values.size:
        rows = values.reshape(shape[0] if shape else 1, -1)  # (num, count/num)
        rows /= rows.sum(axis=1, keepdims=True)
    return values


@FILLERS.register("xavier")
def xavier_filler(shape, param, rng, where=None):
    scale = math.sqrt(3.0 / _scale_n(shape, param)) if np.prod(shape) else 0.0
    return rng.uniform(-scale, scale, size=shape)


@FILLERS.register("msra")
def msra_filler(shape, param, rng, where=None):
    std = math.sqrt(2.0 / _scale_n(shape, param)) if np.prod(shape) else 0.0
    return rng.normal(0.0, std, size=shape)


@FILLERS.register("bilinear")
def bilinear_filler(shape, param, rng, where=None):
    """Upsampling kernel for Deconvolution: w(x, y) = (1 - |x/f - c|)(1 - |y/f - c|)."""
    if len(shape) != 4:
        raise _error(where, f"bilinear filler needs a 4-D blob, got shape {tuple(shape)}")
    if shape[2] != shape[3]:
        raise _error(where, f"bilinear filler needs a square kernel, got {shape[2]}x{shape[3]}")
    k = shape[3]
    f = math.ceil(k / 2.0)
    c = (k - 1) / (2.0 * f)
    ramp = 1.0 - np.abs(np.arange(k) / f - c)  # (k,)
    kernel = ramp[:, None] * ramp[None, :]  # (k_y, k_x)
    return np.broadcast_to(kernel, shape).copy()
