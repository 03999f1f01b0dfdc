"""Pooling: top[n, c, y, x] = max | mean | sampled a over the window at (y, x)·stride − pad."""
import itertools

import numpy as np

from ..kernels.im2col import FLT_MAX, Workspace, col2im_windows, pool_out_size, window_view
from ..kernels.pool_compiled import max_pool_backward as max_pool_backward_kernel
from ..kernels.pool_compiled import max_pool_forward as max_pool_forward_kernel
from ..kernels.pool_phases import (
    PhaseGeometry,
    phase_mask,
    window_max,
    window_max_backward,
    window_sum,
    window_sum_backward,
)
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import compiled_for, get_array_module, parallel

P = pb.PoolingParameter
FLT_MIN = float(np.finfo(np.float32).tiny)  # Caffe's StoPoolForwardTest starts its sum here
# The batch is split among threads when each thread's part holds this many input cells.
PARALLEL_MIN_WORK = 1 << 17  # LeNet b64 pool1 splits: -4 % per iteration, 2 threads
# A compiled kernel is one call per thread, without the GIL: even small batches split.
COMPILED_MIN_WORK = 1 << 13
# AVE pooling is linear: with at most this many outputs per image, one GEMM with the 0/1
# window matrix (H·W, oh·ow) sums every window faster than the phase planes, one thread,
# 3x3 windows, stride 2: 8x8 inputs 0.26 against 0.97 ms per 409,600 input cells, 12x12
# 0.45 against 0.92, 16x16 1.2 against 1.44; 24x24 (144 outputs) 2.7 against 1.6 ms.
DENSE_MAX_OUTPUTS = 64


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


def _planes(array):
    """(N, C, H, W) as (N·C, H, W), the kernels' layout (a view of a contiguous blob)."""
    return array.reshape((-1,) + array.shape[2:])


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


def phased(kernel, out_size):
    """Whether pooling runs on stride-phase planes (pool_phases.py); a large window over few
    outputs (global pooling) reduces whole windows instead."""
    return kernel[0] * kernel[1] <= out_size[0] * out_size[1] and max(kernel) < 255


def _geometry(x_shape, kernel, pad, stride, out_size):
    return PhaseGeometry(x_shape[0] * x_shape[1], tuple(x_shape[2:]), tuple(kernel),
                         tuple(pad), tuple(stride), tuple(out_size))


def max_pool_tracked(x, kernel, pad, stride, out_size, ws, track=True, out=None):
    """(top, track) of MAX pooling on phase planes; track (the winners) feeds backward."""
    return window_max(x, _geometry(x.shape, kernel, pad, stride, out_size), ws, track, out)


def max_pool_backward(dtop, track, x_shape, kernel, pad, stride, ws, out=None):
    """∂x of max_pool_tracked: each top diff routed to its window's winner."""
    xp = get_array_module(dtop)
    dx = xp.empty(x_shape, dtop.dtype) if out is None else out
    return window_max_backward(dtop, track, _geometry(x_shape, kernel, pad, stride,
                                                      dtop.shape[2:]), ws, dx)


def caffe_mask(track, x_shape, kernel, pad, stride, out_size):
    """Caffe's MAX mask (input cell h·W + w of each maximum, −1 if none) from a track."""
    geo = _geometry(x_shape, kernel, pad, stride, out_size)
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


def _window_matrix(x_shape, kernel, pad, stride, out_size, dtype, xp):
    """(H·W, oh·ow): 1 where input cell (h, w) lies in window (i, j) (padding has no row)."""
    inside = []
    for axis in (0, 1):
        start = xp.arange(out_size[axis]) * stride[axis] - pad[axis]
        cell = xp.arange(x_shape[2 + axis])[:, None]
        inside.append((cell >= start) & (cell < start + kernel[axis]))  # (size, out)
    return xp.kron(inside[0], inside[1]).astype(dtype)


def dense(out_size):
    """Whether AVE pooling sums its windows with one GEMM (DENSE_MAX_OUTPUTS)."""
    return out_size[0] * out_size[1] <= DENSE_MAX_OUTPUTS


def _matrix(x_shape, kernel, pad, stride, out_size, dtype, ws, xp, transposed=False):
    """The window matrix, or its transpose made contiguous, kept in ws."""
    def build():
        matrix = _window_matrix(x_shape, kernel, pad, stride, out_size, dtype, xp)
        return xp.ascontiguousarray(matrix.T) if transposed else matrix
    key = ("window_matrix", tuple(x_shape[2:]), tuple(kernel), tuple(pad), tuple(stride),
           tuple(out_size), np.dtype(dtype), transposed)
    return build() if ws is None else ws.memo(key, build)


def _per_image_matmul(a, matrix, out):
    """out (N, C, …) = a (N, C, …) @ matrix, one GEMM over the N·C images."""
    rows = a.shape[0] * a.shape[1]
    with np.errstate(invalid="ignore"):  # inf·0: the caller sums such images again
        get_array_module(a).matmul(a.reshape(rows, -1), matrix, out=out.reshape(rows, -1))
    return out


def _window_sums(x, kernel, pad, stride, out_size, ws, out):
    """out = Σ over each window of x (padding adds 0).

    Few outputs: one GEMM, kept when its sums are finite. A GEMM spreads inf·0 = NaN over the
    whole image, where Caffe's window sums keep inf and NaN inside the windows that hold them,
    so such inputs are summed again on the phase planes.
    """
    xp = get_array_module(x)
    if dense(out_size) and xp.isfinite(_per_image_matmul(
            x, _matrix(x.shape, kernel, pad, stride, out_size, x.dtype, ws, xp), out).sum()):
        return
    if phased(kernel, out_size):
        window_sum(x, _geometry(x.shape, kernel, pad, stride, out_size), ws or Workspace(), out)
    else:
        out[...] = _window_sum(window_view(x, kernel, pad, stride, 1, out_size, 0.0, ws))


def ave_pool(x, kernel, pad, stride, out_size, ws=None, out=None):
    """AVE pooling: the window's input sum (padding adds 0) / Caffe's pool_size."""
    xp = get_array_module(x)
    divisor = _ave_divisor(x.shape, kernel, pad, stride, out_size, x.dtype, xp)
    out = xp.empty(x.shape[:2] + tuple(out_size), x.dtype) if out is None else out
    _window_sums(x, kernel, pad, stride, out_size, ws, out)
    with np.errstate(divide="ignore", invalid="ignore"):  # a window past the image: 0/0
        return xp.divide(out, divisor, out=out)


def ave_pool_backward(dtop, x_shape, kernel, pad, stride, ws=None, out=None):
    """∂x of AVE pooling: top diff / pool_size spread over each window (with few outputs
    by one GEMM with the window matrix's transpose, when the spread diffs are finite)."""
    xp = get_array_module(dtop)
    out_size = dtop.shape[2:]
    dx = xp.empty(x_shape, dtop.dtype) if out is None else out
    with np.errstate(divide="ignore", invalid="ignore"):  # empty windows reach no input
        grad = dtop / _ave_divisor(x_shape, kernel, pad, stride, out_size, dtop.dtype, xp)
        if dense(out_size) and xp.isfinite(grad.sum()):
            return _per_image_matmul(grad, _matrix(x_shape, kernel, pad, stride, out_size,
                                                   dtop.dtype, ws, xp, transposed=True), dx)
        if phased(kernel, out_size):
            return window_sum_backward(grad, _geometry(x_shape, kernel, pad, stride, out_size),
                                       ws or Workspace(), dx)
    windows = xp.broadcast_to(grad[:, :, None, None], grad.shape[:2] + tuple(kernel)
                              + grad.shape[2:])  # (N, C, kh, kw, oh, ow), no copy
    return col2im_windows(windows, x_shape, pad, stride, out=dx, ws=ws)


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
    kernel to H×W at every reshape. With Numba installed, MAX pooling runs compiled loops
    (pool_kernels.py) instead of NumPy passes, with the same results.
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
        self.stride = self.param_stride = _pair(param, "stride", 1, self)
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
        self.range_ws = {}  # batch range start -> Workspace of the thread working on it
        self.mask, self.tracks = None, {}

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width); got "
                             f"{bottom[0].shape}")
        num, channels, height, width = bottom[0].shape
        self.num = num
        if self.global_pooling:
            self.kernel = (height, width)
        # A stride beyond the padded input plus the kernel leaves the same single window:
        # bound it so the kernels never step by, e.g., 2^32 - 1 (the output is unchanged).
        self.stride = tuple(min(s, size + 2 * p + k) for s, size, p, k in zip(
            self.param_stride, (height, width), self.pad, self.kernel))
        self.out_size = tuple(pool_out_size(size, k, p, s, self.ceil_mode) for size, k, p, s
                              in zip((height, width), self.kernel, self.pad, self.stride))
        if min(self.out_size) <= 0:
            raise self.error(f"kernel {self.kernel} does not fit the input {height}x{width} "
                             f"with pad {self.pad} and stride {self.stride}")
        for blob in top:
            blob.reshape((num, channels) + self.out_size)

    def workspace(self, start):
        return self.ws if start == 0 else self.range_ws.setdefault(start, Workspace())

    def split(self, function, count, min_work=PARALLEL_MIN_WORK):
        """function(start, stop) over the batch, split among the threads when each thread's
        arrays are large (many small NumPy calls in two threads mostly wait for the GIL)."""
        per_image = max(1, count // max(1, self.num))
        parallel(function, self.num, min_items=max(1, min_work // per_image))

    def forward(self, bottom, top):
        x, geometry = bottom[0].data, (self.kernel, self.pad, self.stride, self.out_size)
        self.mask, self.tracks = None, {}
        if x.size == 0:
            return  # no images or no channels: the top is empty too, as in Caffe
        if self.method == P.MAX and compiled_for(x):
            self.mask = self.compiled_max(x, top[0].data, self.phase == pb.TRAIN or len(top) > 1)
            if len(top) > 1:
                top[1].data[...] = self.mask
        elif self.method == P.MAX and phased(self.kernel, self.out_size) and len(top) == 1:
            # A TEST net seldom runs backward; if it does, backward finds the maxima again.
            track = self.phase == pb.TRAIN

            def pool(start, stop):
                self.tracks[start, stop] = max_pool_tracked(
                    x[start:stop], *geometry, self.workspace(start), track,
                    out=top[0].data[start:stop])[1]
            self.split(pool, x.size)
        elif self.method == P.MAX and phased(self.kernel, self.out_size):
            _, self.tracks[0, self.num] = max_pool_tracked(x, *geometry, self.ws,
                                                           out=top[0].data)
            top[1].data[...] = caffe_mask(self.tracks[0, self.num], x.shape, *geometry)
        elif self.method == P.MAX:
            top[0].data[...], self.mask = max_pool(x, *geometry, ws=self.ws)
            if len(top) > 1:
                top[1].data[...] = self.mask
        elif self.method == P.AVE:
            self.split(lambda start, stop: ave_pool(
                x[start:stop], *geometry, ws=self.workspace(start),
                out=top[0].data[start:stop]), x.size)
        elif self.phase == pb.TRAIN:
            top[0].data[...], self.mask = stochastic_pool_train(
                x, self.kernel, self.stride, self.out_size, self.rng, ws=self.ws)
        else:
            top[0].data[...] = stochastic_pool_test(x, self.kernel, self.stride, self.out_size,
                                                    ws=self.ws)

    def compiled_max(self, x, top, track):
        """MAX pooling of x into top by the kernel; returns Caffe's mask with track, else None
        (without the mask the kernel does a third less: a TEST net seldom runs backward)."""
        mask = self.ws.scratch("mask", top.shape, np.int32)
        self.split(lambda start, stop: max_pool_forward_kernel(
            _planes(x[start:stop]), *self.kernel, *self.pad, *self.stride, track,
            _planes(top[start:stop]), _planes(mask[start:stop])), x.size, COMPILED_MIN_WORK)
        return mask if track else None

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] or bottom[0].count() == 0:
            return
        dtop, shape, dx = top[0].diff, bottom[0].shape, bottom[0].diff
        geometry = (self.kernel, self.pad, self.stride)
        if self.method == P.MAX and self.mask is None and compiled_for(dx):  # no mask kept
            self.mask = self.compiled_max(bottom[0].data, self.ws.scratch(
                "top_again", dtop.shape, dtop.dtype), True)
        if self.method == P.MAX and self.mask is None:
            def route(start, stop):
                track = self.tracks.get((start, stop))
                ws = self.workspace(start)
                if track is None:  # no forward, a TEST-phase forward, or another split
                    track = max_pool_tracked(bottom[0].data[start:stop], *geometry,
                                             self.out_size, ws)[1]
                max_pool_backward(dtop[start:stop], track, (stop - start,) + shape[1:],
                                  *geometry, ws, out=dx[start:stop])
            self.split(route, dx.size)
        elif self.mask is not None and compiled_for(dx):  # MAX, STOCHASTIC in TRAIN
            self.split(lambda start, stop: max_pool_backward_kernel(
                _planes(dtop[start:stop]), _planes(self.mask[start:stop]),
                _planes(dx[start:stop])), dx.size, COMPILED_MIN_WORK)
        elif self.method == P.AVE:
            self.split(lambda start, stop: ave_pool_backward(
                dtop[start:stop], (stop - start,) + shape[1:], *geometry,
                ws=self.workspace(start), out=dx[start:stop]), dx.size)
        elif self.method == P.STOCHASTIC and self.phase != pb.TRAIN:
            dx[...] = stochastic_pool_test_backward(dtop, bottom[0].data, self.kernel,
                                                    self.stride, ws=self.ws)
        else:
            dx[...] = scatter_to_mask(dtop, self.mask, shape)
