"""AVE pooling in NumPy: window sums by one GEMM with the 0/1 window matrix (few outputs),
by phase planes, or over a window view; divided by Caffe's clipped window size."""
import itertools

import numpy as np

from ..runtime import get_array_module
from .im2col import Workspace, col2im_windows, window_view
from .pool_max import phase_geometry, phased
from .pool_phases import window_sum, window_sum_backward

# AVE pooling is linear: with at most this many outputs per image, one GEMM with the 0/1
# window matrix (H·W, oh·ow) sums every window faster than the phase planes, one thread,
# 3x3 windows, stride 2: 8x8 inputs 0.26 against 0.97 ms per 409,600 input cells, 12x12
# 0.45 against 0.92, 16x16 1.2 against 1.44; 24x24 (144 outputs) 2.7 against 1.6 ms.
DENSE_MAX_OUTPUTS = 64


def kernel_sum(view):
    """Σ over the kernel axes of a window view (N, C, oh, ow, kh, kw), in Caffe's h-w order."""
    kh, kw = view.shape[4:]
    if kh * kw > view.shape[2] * view.shape[3]:
        return view.sum(axis=(4, 5))  # few windows, large kernel (global pooling)
    total = view[..., 0, 0].copy()
    for i, j in itertools.product(range(kh), range(kw)):
        if i or j:
            total += view[..., i, j]
    return total


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
        geometry = phase_geometry(x.shape, kernel, pad, stride, out_size)
        window_sum(x, geometry, ws or Workspace(), out)
    else:
        out[...] = kernel_sum(window_view(x, kernel, pad, stride, 1, out_size, 0.0, ws))


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
            return window_sum_backward(grad, phase_geometry(x_shape, kernel, pad, stride, out_size),
                                       ws or Workspace(), dx)
    windows = xp.broadcast_to(grad[:, :, None, None], grad.shape[:2] + tuple(kernel)
                              + grad.shape[2:])  # (N, C, kh, kw, oh, ow), no copy
    return col2im_windows(windows, x_shape, pad, stride, out=dx, ws=ws)
