"""Pooling: top[n, c, y, x] = max | mean | sampled a over the window at (y, x)·stride − pad."""
import itertools

import numpy as np

from ..backend import get_array_module
from ..im2col import FLT_MAX, Workspace, col2im_windows, pool_out_size, window_view
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer

P = pb.PoolingParameter
FLT_MIN = float(np.finfo(np.float32).tiny)  # Caffe's StoPoolForwardTest starts its sum here


def _window_sum(view):
    """Σ over the kernel axes of a window view (N, C, oh, ow, kh, kw), in Caffe's h-w order."""
    kh, kw = view.shape[4:]
    if kh * kw > view.shape[2] * view.shape[3]:
        return view.sum(axis=(4, 5))  # few windows, large kernel (global pooling)
    total = view[..., 0, 0].copy()
    for i, j in itertools.product(range(kh), range(kw)):
        if i or j:
            total += view[..., i, j]
    return total


def _image_index(offset, x_shape, kernel, pad, stride):
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


def _spans(size, out, kernel, pad, stride):
    """(k, o0, o1, start) per kernel offset k: outputs [o0, o1) whose window cell k lies
    inside the input; output o reads input start + (o − o0)·stride. Cells in the padding or
    past the input are skipped, so no padded copy is ever made."""
    spans = []
    for k in range(kernel):
        o0 = max(0, -((k - pad) // stride))  # ceil((pad − k) / stride)
        o1 = min(out, (size - 1 + pad - k) // stride + 1) if size - 1 + pad - k >= 0 else 0
        if o1 > o0:
            spans.append((k, o0, o1, o0 * stride - pad + k))
    return spans


def _along(a, start, count, stride):
    """a[:, start::stride] with `count` entries (axis 1 of a 2-D or 3-D array)."""
    return a[:, start:start + (count - 1) * stride + 1:stride]


def separable(kernel, out_size):
    """Whether pooling runs as two 1-D passes (rows, then columns); large windows over few
    outputs (global pooling) reduce whole windows instead."""
    return kernel[0] * kernel[1] <= out_size[0] * out_size[1] and min(out_size) > 1


def _max_pass(src, dst, arg, spans, stride, lowest):
    """dst = max over the offsets' strided views of src along axis 1, starting from Caffe's
    −FLT_MAX; strict > keeps the first maximum and never takes NaN. arg = 1 + winning offset
    (0: nothing beat −FLT_MAX)."""
    xp = get_array_module(src)
    out = dst.shape[1]
    for i, (k, o0, o1, start) in enumerate(spans):
        view, d = _along(src, start, o1 - o0, stride), dst[:, o0:o1]
        if i == 0 and o0 == 0 and o1 == out:  # the first offset covers every output
            if arg is not None and arg.itemsize == 1:
                xp.greater(view, lowest, out=arg.view(bool))
            elif arg is not None:
                arg[...] = view > lowest
            xp.fmax(view, lowest, out=d)
            continue
        if i == 0:
            dst[...] = lowest
            if arg is not None:
                arg[...] = 0
        if arg is not None:
            better = xp.greater(view, d)
            xp.maximum(arg[:, o0:o1], xp.multiply(better, arg.dtype.type(k + 1)),
                       out=arg[:, o0:o1])
        xp.fmax(d, view, out=d)


def _route_pass(dtop, arg, dsrc, spans, stride, disjoint):
    """The adjoint of a tracked _max_pass: each dtop entry goes to its winning offset."""
    xp = get_array_module(dtop)
    dsrc[...] = 0
    for k, o0, o1, start in spans:
        target = _along(dsrc, start, o1 - o0, stride)
        routed = xp.multiply(dtop[:, o0:o1], arg[:, o0:o1] == k + 1,
                             out=target if disjoint else None)
        if not disjoint:
            target += routed


def _sum_pass(src, dst, spans, stride):
    """dst = Σ over the offsets' strided views of src along axis 1 (padding adds 0)."""
    first = spans[0]
    if first[1] == 0 and first[2] == dst.shape[1]:
        dst[...] = _along(src, first[3], first[2], stride)
        spans = spans[1:]
    else:
        dst[...] = 0
    for _k, o0, o1, start in spans:
        dst[:, o0:o1] += _along(src, start, o1 - o0, stride)


def _spread_pass(dtop, dsrc, spans, stride, disjoint):
    """The adjoint of _sum_pass: each dtop entry added to every cell of its window."""
    dsrc[...] = 0
    for _k, o0, o1, start in spans:
        target = _along(dsrc, start, o1 - o0, stride)
        if disjoint:
            target[...] = dtop[:, o0:o1]
        else:
            target += dtop[:, o0:o1]


def _geometry(x_shape, kernel, pad, stride, out_size):
    num, channels, height, width = x_shape
    return (num * channels, height, width, _spans(height, out_size[0], kernel[0], pad[0],
                                                  stride[0]),
            _spans(width, out_size[1], kernel[1], pad[1], stride[1]))


def _scratch(ws, name, shape, dtype, xp):
    return ws.scratch(name, shape, dtype, xp) if ws is not None else xp.empty(shape, dtype)


def max_pool_tracked(x, kernel, pad, stride, out_size, ws=None, track=True, out=None):
    """(top, track) of separable MAX pooling: the max along each row's windows, then along
    the columns. Row pass first keeps Caffe's tie rule (the first maximum in h-then-w order).
    track = (row-pass winners, column-pass winners), or None without `track`."""
    xp = get_array_module(x)
    nc, height, width, spans_h, spans_w = _geometry(x.shape, kernel, pad, stride, out_size)
    oh, ow = out_size
    lowest = x.dtype.type(-FLT_MAX)
    arg_dtype = xp.uint8 if max(kernel) < 255 else xp.uint16
    m1 = _scratch(ws, "m1", (nc * height, ow), x.dtype, xp)
    a1 = _scratch(ws, "a1", (nc * height, ow), arg_dtype, xp) if track else None
    _max_pass(x.reshape(nc * height, width), m1, a1, spans_w, stride[1], lowest)
    top = xp.empty((nc, oh, ow), x.dtype) if out is None else out.reshape(nc, oh, ow)
    a2 = _scratch(ws, "a2", (nc, oh, ow), arg_dtype, xp) if track else None
    _max_pass(m1.reshape(nc, height, ow), top, a2, spans_h, stride[0], lowest)
    return top.reshape(x.shape[:2] + tuple(out_size)), ((a1, a2) if track else None)


def max_pool_backward(dtop, track, x_shape, kernel, pad, stride, ws=None, out=None):
    """∂x of max_pool_tracked: dtop routed to the winning cells (written into `out`)."""
    xp = get_array_module(dtop)
    a1, a2 = track
    nc, height, width, spans_h, spans_w = _geometry(x_shape, kernel, pad, stride,
                                                    dtop.shape[2:])
    oh, ow = dtop.shape[2:]
    dm1 = _scratch(ws, "dm1", (nc, height, ow), dtop.dtype, xp)
    _route_pass(dtop.reshape(nc, oh, ow), a2, dm1, spans_h, stride[0], stride[0] >= kernel[0])
    dx = xp.empty(x_shape, dtop.dtype) if out is None else out
    _route_pass(dm1.reshape(nc * height, ow), a1, dx.reshape(nc * height, width), spans_w,
                stride[1], stride[1] >= kernel[1])
    return dx


def caffe_mask(track, x_shape, kernel, pad, stride):
    """Caffe's MAX mask (the input cell h·W + w of each maximum, −1 if none) from a track."""
    xp = get_array_module(track[1])
    a1, a2 = track
    num, channels, height, width = x_shape
    oh, ow = a2.shape[1:]
    ki = a2.astype(xp.int64) - 1
    row = (xp.arange(oh) * stride[0] - pad[0])[:, None] + ki  # (NC, oh, ow) input row
    found = ki >= 0
    row = xp.where(found, row, 0)
    kj = xp.take_along_axis(a1.reshape(-1, height, ow), row, axis=1).astype(xp.int64) - 1
    col = xp.arange(ow) * stride[1] - pad[1] + kj
    return xp.where(found, row * width + col, -1).reshape(num, channels, oh, ow)


def max_pool(x, kernel, pad, stride, out_size, ws=None):
    """(top, mask) of MAX pooling x (N, C, H, W).

    Strict >, so the first maximum in h-then-w order wins. Windows are clipped to the image
    (padding never wins); one holding no input gives −FLT_MAX and mask −1, as in Caffe.
    """
    xp = get_array_module(x)
    if separable(kernel, out_size):
        top, track = max_pool_tracked(x, kernel, pad, stride, out_size, ws)
        return top, caffe_mask(track, x.shape, kernel, pad, stride)
    view = window_view(x, kernel, pad, stride, 1, out_size, -np.inf, ws)
    lowest = x.dtype.type(-FLT_MAX)
    windows = view.reshape(view.shape[:4] + (-1,))
    offset = windows.argmax(axis=-1).astype(xp.int32)  # argmax returns the first maximum
    top = xp.take_along_axis(windows, offset[..., None], axis=-1)[..., 0]
    empty = ~(top > lowest)
    top[empty], offset[empty] = lowest, -1
    return top, _image_index(offset, x.shape, kernel, pad, stride)


def scatter_to_mask(dtop, mask, x_shape):
    """∂x: each top diff added to the input cell its mask names (MAX, STOCHASTIC TRAIN)."""
    xp = get_array_module(dtop)
    num, channels, height, width = x_shape
    size = num * channels * height * width
    base = (xp.arange(num * channels) * (height * width)).reshape(num, channels, 1, 1)
    flat = xp.where(mask >= 0, mask + base, size)  # −1 goes to a spare bin that is dropped
    dx = xp.bincount(flat.ravel(), weights=dtop.ravel(), minlength=size + 1)[:size]
    return dx.reshape(x_shape)


def _ave_divisor(x_shape, kernel, pad, stride, out_size, dtype, xp=np):
    """Caffe's pool_size: the window clipped to size + pad, before clipping to the image."""
    sizes = []
    for axis in (0, 1):
        start = xp.arange(out_size[axis]) * stride[axis] - pad[axis]
        sizes.append(xp.minimum(start + kernel[axis], x_shape[2 + axis] + pad[axis]) - start)
    return (sizes[0][:, None] * sizes[1][None, :]).astype(dtype)


def ave_pool(x, kernel, pad, stride, out_size, ws=None, out=None):
    """AVE pooling: the window's input sum (padding adds 0) / Caffe's pool_size."""
    xp = get_array_module(x)
    divisor = _ave_divisor(x.shape, kernel, pad, stride, out_size, x.dtype, xp)
    if not separable(kernel, out_size):
        total = _window_sum(window_view(x, kernel, pad, stride, 1, out_size, 0.0, ws))
        if out is not None:
            out[...] = total
            total = out
    else:
        nc, height, width, spans_h, spans_w = _geometry(x.shape, kernel, pad, stride, out_size)
        s1 = _scratch(ws, "s1", (nc * height, out_size[1]), x.dtype, xp)
        _sum_pass(x.reshape(nc * height, width), s1, spans_w, stride[1])
        total = xp.empty((nc,) + tuple(out_size), x.dtype) if out is None else out
        total = total.reshape((nc,) + tuple(out_size))
        _sum_pass(s1.reshape(nc, height, out_size[1]), total, spans_h, stride[0])
        total = total.reshape(x.shape[:2] + tuple(out_size))
    with np.errstate(divide="ignore", invalid="ignore"):  # a window past the image: 0/0
        return xp.divide(total, divisor, out=total)


def ave_pool_backward(dtop, x_shape, kernel, pad, stride, ws=None, out=None):
    """∂x of AVE pooling: top diff / pool_size spread over each window."""
    xp = get_array_module(dtop)
    with np.errstate(divide="ignore", invalid="ignore"):  # empty windows reach no input
        grad = dtop / _ave_divisor(x_shape, kernel, pad, stride, dtop.shape[2:], dtop.dtype, xp)
    if not separable(kernel, dtop.shape[2:]):
        windows = xp.broadcast_to(grad[:, :, None, None], grad.shape[:2] + tuple(kernel)
                                  + grad.shape[2:])  # (N, C, kh, kw, oh, ow), no copy
        return col2im_windows(windows, x_shape, pad, stride, out=out, ws=ws)
    nc, height, width, spans_h, spans_w = _geometry(x_shape, kernel, pad, stride,
                                                    dtop.shape[2:])
    oh, ow = dtop.shape[2:]
    ds1 = _scratch(ws, "ds1", (nc, height, ow), dtop.dtype, xp)
    dx = xp.empty(x_shape, dtop.dtype) if out is None else out
    with np.errstate(invalid="ignore"):  # 0/0 of empty windows reaches ds1, never dx
        _spread_pass(grad.reshape(nc, oh, ow), ds1, spans_h, stride[0], stride[0] >= kernel[0])
        _spread_pass(ds1.reshape(nc * height, ow), dx.reshape(nc * height, width), spans_w,
                     stride[1], stride[1] >= kernel[1])
    return dx


def stochastic_pool_train(x, kernel, stride, out_size, rng, ws=None):
    """(top, mask): one input per window, drawn with probability a / Σa (inputs >= 0).

    Caffe's draw: u ~ U(0, 1], pick the first cell whose running sum reaches u·Σa.
    """
    xp = get_array_module(x)
    view = window_view(x, kernel, 0, stride, 1, out_size, 0.0, ws)
    windows = view.reshape(view.shape[:4] + (-1,))  # (N, C, oh, ow, kh·kw), a copy
    cumsum = windows.cumsum(axis=-1)
    u = xp.asarray(1 - rng.random(cumsum.shape[:4]), dtype=x.dtype)
    offset = (cumsum >= (u * cumsum[..., -1])[..., None]).argmax(axis=-1).astype(xp.int32)
    top = xp.take_along_axis(windows, offset[..., None], axis=-1)[..., 0]
    return top, _image_index(offset, x.shape, kernel, (0, 0), stride)


def _stochastic_test_terms(x, kernel, stride, out_size, ws):
    """(Σa + FLT_MIN, Σa²) per window."""
    total = _window_sum(window_view(x, kernel, 0, stride, 1, out_size, 0.0, ws)) + FLT_MIN
    squares = _window_sum(window_view(x * x, kernel, 0, stride, 1, out_size, 0.0, ws))
    return total, squares


def stochastic_pool_test(x, kernel, stride, out_size, ws=None):
    """STOCHASTIC at test time: the probability-weighted average Σa² / Σa."""
    total, squares = _stochastic_test_terms(x, kernel, stride, out_size, ws)
    return squares / total


def stochastic_pool_test_backward(dtop, x, kernel, stride, ws=None):
    """∂x of Σa²/Σa: (2a − top)/Σa per window cell (Caffe has no test-time gradient)."""
    total, squares = _stochastic_test_terms(x, kernel, stride, dtop.shape[2:], ws)
    view = window_view(x, kernel, 0, stride, 1, dtop.shape[2:], 0.0, ws)
    scale = (dtop / total)[..., None, None]
    windows = scale * (2 * view - (squares / total)[..., None, None])  # (N, C, oh, ow, kh, kw)
    return col2im_windows(windows.transpose(0, 1, 4, 5, 2, 3), x.shape, 0, stride, ws=ws)


def _pair(param, name, default, layer):
    """(h, w) from `name` or `name_h`+`name_w` (Caffe accepts one form, not both)."""
    has = param.HasField
    field = "kernel_size" if name == "kernel" else name
    if has(f"{name}_h") or has(f"{name}_w"):
        if has(field) or not (has(f"{name}_h") and has(f"{name}_w")):
            raise layer.error(f"pooling_param: give {field}, or both {name}_h and {name}_w")
        return int(getattr(param, f"{name}_h")), int(getattr(param, f"{name}_w"))
    if not has(field) and default is None:
        raise layer.error("pooling_param needs kernel_size (or kernel_h and kernel_w), "
                          "or global_pooling: true")
    value = int(getattr(param, field)) if has(field) else default
    return value, value


@register_layer("Pooling")
class PoolingLayer(Layer):
    """MAX, AVE or STOCHASTIC pooling of a 4-D bottom (N, C, H, W) -> top (N, C, oh, ow).

    oh = ceil((H + 2·pad − kernel)/stride) + 1 (floor with round_mode FLOOR), minus one when
    pad > 0 and the last window would start at or past H + pad. MAX may have top[1], the
    argmax mask h·W + w as float. AVE divides by the window clipped to H + pad (padding counts,
    the ceil overhang does not). STOCHASTIC (GPU-only in Caffe; no padding) samples in TRAIN
    and takes Σa²/Σa in TEST, whose exact gradient backward gives. global_pooling sets the
    kernel to H×W at every reshape.
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        param = self.layer_param.pooling_param
        self.method = param.pool
        if len(top) > 1 and self.method != P.MAX:
            raise self.error("only MAX pooling has a second top (the argmax mask)")
        self.global_pooling = param.global_pooling
        if self.global_pooling:
            if any(param.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")):
                raise self.error("with global_pooling the kernel is the input size: remove "
                                 "kernel_size/kernel_h/kernel_w")
            self.kernel = None
        else:
            self.kernel = _pair(param, "kernel", None, self)
            if min(self.kernel) <= 0:
                raise self.error(f"kernel dimensions must be nonzero, got {self.kernel}")
        self.pad = _pair(param, "pad", 0, self)
        self.stride = _pair(param, "stride", 1, self)
        if min(self.stride) <= 0:
            raise self.error(f"stride must be nonzero, got {self.stride}")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("global_pooling needs pad 0 and stride 1")
        if max(self.pad) > 0:
            if self.method not in (P.MAX, P.AVE):
                raise self.error("padding is implemented only for MAX and AVE pooling")
            if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
        self.ceil_mode = param.round_mode == P.CEIL
        self.ws = Workspace()
        self.mask = None

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width); got "
                             f"{bottom[0].shape}")
        num, channels, height, width = bottom[0].shape
        if self.global_pooling:
            self.kernel = (height, width)
        self.out_size = tuple(pool_out_size(size, k, p, s, self.ceil_mode) for size, k, p, s
                              in zip((height, width), self.kernel, self.pad, self.stride))
        if min(self.out_size) <= 0:
            raise self.error(f"kernel {self.kernel} does not fit the input {height}x{width} "
                             f"with pad {self.pad} and stride {self.stride}")
        for blob in top:
            blob.reshape((num, channels) + self.out_size)

    def forward(self, bottom, top):
        x, geometry = bottom[0].data, (self.kernel, self.pad, self.stride, self.out_size)
        self.mask = self.track = None
        if self.method == P.MAX and separable(self.kernel, self.out_size):
            # A TEST net seldom runs backward; if it does, backward finds the maxima again.
            track = self.phase == pb.TRAIN or len(top) > 1
            _, self.track = max_pool_tracked(x, *geometry, ws=self.ws, track=track,
                                             out=top[0].data)
            if len(top) > 1:
                top[1].data[...] = caffe_mask(self.track, x.shape, *geometry[:3])
        elif self.method == P.MAX:
            top[0].data[...], self.mask = max_pool(x, *geometry, ws=self.ws)
            if len(top) > 1:
                top[1].data[...] = self.mask
        elif self.method == P.AVE:
            ave_pool(x, *geometry, ws=self.ws, out=top[0].data)
        elif self.phase == pb.TRAIN:
            top[0].data[...], self.mask = stochastic_pool_train(
                x, self.kernel, self.stride, self.out_size, self.rng, ws=self.ws)
        else:
            top[0].data[...] = stochastic_pool_test(x, self.kernel, self.stride, self.out_size,
                                                    ws=self.ws)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dtop, shape, dx = top[0].diff, bottom[0].shape, bottom[0].diff
        geometry = (self.kernel, self.pad, self.stride)
        if self.method == P.MAX and self.mask is None:
            track = self.track or max_pool_tracked(bottom[0].data, *geometry, self.out_size,
                                                   ws=self.ws)[1]
            max_pool_backward(dtop, track, shape, *geometry, ws=self.ws, out=dx)
        elif self.method == P.AVE:
            ave_pool_backward(dtop, shape, *geometry, ws=self.ws, out=dx)
        elif self.method == P.STOCHASTIC and self.phase != pb.TRAIN:
            dx[...] = stochastic_pool_test_backward(dtop, bottom[0].data, self.kernel,
                                                    self.stride, ws=self.ws)
        else:
            dx[...] = scatter_to_mask(dtop, self.mask, shape)
