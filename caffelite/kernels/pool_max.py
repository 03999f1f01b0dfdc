"""MAX pooling in NumPy: by phase planes (kernels/pool_phases.py) where the windows allow,
else over a window view; Caffe's argmax mask h·W + w; and the window helpers the other
pooling routes share."""
import numpy as np

from ..runtime import get_array_module
from .im2col import FLT_MAX, Workspace, window_view
from .pool_phases import PhaseGeometry, phase_mask, window_max, window_max_backward


def planes(array):
    """(N, C, H, W) as (N·C, H, W), the kernels' layout (a view of a contiguous blob)."""
    return array.reshape((-1,) + array.shape[2:])


def image_index(offset, x_shape, kernel, pad, stride):
    """Caffe's mask h·W + w of window offset k = i·kw + j; −1 where no input cell was chosen.

    A small table (oh, ow, 1 + kh·kw) of every window cell's index is gathered by offset.
    """
    xp = get_array_module(offset)
    (height, width), (oh, ow) = x_shape[2:], offset.shape[2:]
    h = (xp.arange(oh) * stride[0] - pad[0])[:, None] + xp.arange(kernel[0])  # (oh, kh)
    w = (xp.arange(ow) * stride[1] - pad[1])[:, None] + xp.arange(kernel[1])  # (ow, kw)
    inside = (((h >= 0) & (h < height))[:, None, :, None]
              & ((w >= 0) & (w < width))[None, :, None, :])
    table = xp.full((oh, ow, 1 + kernel[0] * kernel[1]), -1, xp.int32)
    table[:, :, 1:] = xp.where(inside, h[:, None, :, None] * width + w[None, :, None, :],
                               -1).reshape(oh, ow, -1)
    base = xp.arange(1, table.size, table.shape[2], dtype=xp.int32).reshape(oh, ow)
    return table.ravel()[base + offset]  # offset −1 reads the leading −1


def phased(kernel, out_size):
    """Whether pooling runs on stride-phase planes (pool_phases.py); a large window over few
    outputs (global pooling) reduces whole windows instead."""
    return kernel[0] * kernel[1] <= out_size[0] * out_size[1] and max(kernel) < 255


def phase_geometry(x_shape, kernel, pad, stride, out_size):
    return PhaseGeometry(x_shape[0] * x_shape[1], tuple(x_shape[2:]), tuple(kernel),
                         tuple(pad), tuple(stride), tuple(out_size))


def max_pool_tracked(x, kernel, pad, stride, out_size, ws, track=True, out=None):
    """(top, track) of MAX pooling on phase planes; track (the winners) feeds backward."""
    return window_max(x, phase_geometry(x.shape, kernel, pad, stride, out_size), ws, track, out)


def max_pool_backward(dtop, track, x_shape, kernel, pad, stride, ws, out=None):
    """∂x of max_pool_tracked: each top diff routed to its window's winner."""
    xp = get_array_module(dtop)
    dx = xp.empty(x_shape, dtop.dtype) if out is None else out
    return window_max_backward(dtop, track, phase_geometry(x_shape, kernel, pad, stride,
                                                      dtop.shape[2:]), ws, dx)


def caffe_mask(track, x_shape, kernel, pad, stride, out_size):
    """Caffe's MAX mask (input cell h·W + w of each maximum, −1 if none) from a track."""
    geo = phase_geometry(x_shape, kernel, pad, stride, out_size)
    return phase_mask(track, geo, x_shape[3]).reshape(x_shape[:2] + tuple(out_size))


def max_pool(x, kernel, pad, stride, out_size, ws=None):
    """(top, mask) of MAX pooling x (N, C, H, W).

    Strict >, so the first maximum in h-then-w order wins. Windows are clipped to the image
    (padding never wins); one holding no input gives −FLT_MAX and mask −1, as in Caffe.
    """
    xp = get_array_module(x)
    if phased(kernel, out_size):
        top, track = max_pool_tracked(x, kernel, pad, stride, out_size, ws or Workspace())
        return top, caffe_mask(track, x.shape, kernel, pad, stride, out_size)
    view = window_view(x, kernel, pad, stride, 1, out_size, -np.inf, ws)
    lowest = x.dtype.type(-FLT_MAX)
    windows = view.reshape(view.shape[:4] + (-1,))
    best = xp.fmax.reduce(windows, axis=-1)  # NaN never wins, as with Caffe's strict >
    offset = (windows == best[..., None]).argmax(axis=-1).astype(xp.int32)  # the first
    top = xp.take_along_axis(windows, offset[..., None], axis=-1)[..., 0]
    empty = ~(top > lowest)
    top[empty], offset[empty] = lowest, -1
    return top, image_index(offset, x.shape, kernel, pad, stride)


def scatter_to_mask(dtop, mask, x_shape):
    """∂x: each top diff added to the input cell its mask names (MAX, STOCHASTIC TRAIN)."""
    xp = get_array_module(dtop)
    num, channels, height, width = x_shape
    size = num * channels * height * width
    base = (xp.arange(num * channels) * (height * width)).reshape(num, channels, 1, 1)
    flat = xp.where(mask >= 0, mask + base, size)  # −1 goes to a spare bin that is dropped
    dx = xp.bincount(flat.ravel(), weights=dtop.ravel(), minlength=size + 1)[:size]
    return dx.reshape(x_shape)
