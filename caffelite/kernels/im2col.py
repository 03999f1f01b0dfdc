"""im2col/col2im over N-D windows: cols[c, k…, out…] = x_pad[c, out·stride + k·dilation]."""
import itertools
import math

import numpy as np

from ..runtime import get_array_module

# Caffe's -FLT_MAX: the start value of MAX pooling, left in windows that hold no input.
FLT_MAX = float(np.finfo(np.float32).max)


def _tuple(value, n, name="value"):
    """An n-tuple of ints from an int or a sequence of 1 or n ints."""
    if type(value) is tuple and len(value) == n and all(type(v) is int for v in value):
        return value  # the layers' own geometry, every call: np.ndim costs 3 µs
    if _is_scalar(value):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} values for {n} spatial axes")
    return value


def _geometry(n, kernel, pad, stride, dilation):
    return (_tuple(kernel, n, "kernel"), _tuple(pad, n, "pad"), _tuple(stride, n, "stride"),
            _tuple(dilation, n, "dilation"))


def _is_scalar(value):
    if isinstance(value, (int, np.integer)):
        return True
    return not isinstance(value, (tuple, list)) and np.ndim(value) == 0


def _map(fn, size, *args):
    """fn over scalars, or elementwise over sequences (then a tuple). Layers call this at
    every reshape, so plain ints and tuples are told apart without np.ndim (3 µs a call)."""
    values = (size, *args)
    if all(_is_scalar(v) for v in values):
        return fn(*(int(v) for v in values))
    n = len(size) if not _is_scalar(size) else max(len(a) for a in args if not _is_scalar(a))
    columns = [_tuple(v, n) for v in values]
    return tuple(fn(*values) for values in zip(*columns))


def conv_out_size(size, kernel, pad=0, stride=1, dilation=1):
    """Caffe's conv output: (size + 2·pad − (dilation·(kernel−1)+1)) / stride + 1.

    Scalars or per-axis sequences. A kernel extent larger than the padded input gives a
    value <= 0; callers turn that into an error naming the layer.
    """
    def one(s, k, p, st, d):
        span = s + 2 * p - (d * (k - 1) + 1)
        return span // st + 1 if span >= 0 else 0

    return _map(one, size, kernel, pad, stride, dilation)


def deconv_out_size(size, kernel, pad=0, stride=1, dilation=1):
    """Caffe's deconv output: stride·(size−1) + dilation·(kernel−1)+1 − 2·pad."""
    return _map(lambda s, k, p, st, d: st * (s - 1) + d * (k - 1) + 1 - 2 * p,
                size, kernel, pad, stride, dilation)


def pool_out_size(size, kernel, pad=0, stride=1, ceil_mode=True):
    """Caffe's pooling output: ceil (or floor) of (size + 2·pad − kernel)/stride, plus 1.

    Last-window rule: with pad > 0, a last window starting at or past size + pad is dropped
    (so every window starts inside the image or its leading padding).
    """
    def one(s, k, p, st):
        span = s + 2 * p - k
        out = (-(-span // st) if ceil_mode else span // st) + 1
        if p > 0 and (out - 1) * st >= s + p:
            out -= 1
        return out

    return _map(one, size, kernel, pad, stride)


class Workspace:
    """Scratch arrays kept between calls of one layer while their shape and dtype hold, and
    objects built on them (memo)."""

    def __init__(self):
        self._arrays = {}
        self._memo = {}
        self._generation = 0  # advanced whenever a buffer is replaced

    def scratch(self, name, shape, dtype, xp=np):
        """An uninitialised array; a prefix of a kept buffer, grown only when too small."""
        size = math.prod(shape)  # np.prod takes ~5 µs on a tuple; this runs per call
        buf = self._arrays.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype or not isinstance(buf, xp.ndarray):
            buf = xp.empty(size, dtype)
            self._arrays[name] = buf
            self._generation += 1
        return buf[:size].reshape(shape)

    def padded(self, name, shape, dtype, fill, xp=np):
        """An array whose border holds `fill`: filled once, callers only overwrite the inside."""
        key = (name, float(fill))
        buf = self._arrays.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = xp.full(shape, fill, dtype)
            self._arrays[key] = buf
            self._generation += 1
        return buf

    def memo(self, key, build):
        """build()'s result for `key`, kept while no buffer of this workspace is replaced: it
        may hold views of them (a layer's per-call views, built once instead of every call)."""
        entry = self._memo.get(key)
        if entry is None or entry[0] != self._generation:
            value = build()
            entry = self._memo[key] = (self._generation, value)  # after build's own buffers
        return entry[1]


def window_view(x, kernel, pad, stride, dilation, out_size, fill=0.0, ws=None):
    """A strided view (N, C, *out, *kernel) of x (N, C, *spatial) padded with `fill`.

    Windows run past the padded input when Caffe's ceil rule asks for it; those cells read
    `fill` too. No copy is made when no padding is needed.
    """
    xp = get_array_module(x)
    n = x.ndim - 2
    kernel, pad, stride, dilation = _geometry(n, kernel, pad, stride, dilation)
    out_size = _tuple(out_size, n, "out_size")
    spatial = x.shape[2:]
    # Padded-coordinate extent the windows cover: [0, (out-1)·stride + dilation·(k-1) + 1).
    cover = [(o - 1) * s + d * (k - 1) + 1
             for o, s, d, k in zip(out_size, stride, dilation, kernel)]
    if any(p > 0 for p in pad) or any(c > s for c, s in zip(cover, spatial)):
        shape = x.shape[:2] + tuple(cover)
        buf = (ws.padded("window_pad", shape, x.dtype, fill, xp) if ws is not None
               else xp.full(shape, fill, x.dtype))
        keep = [max(0, min(s, c - p)) for s, c, p in zip(spatial, cover, pad)]
        inside = tuple(slice(p, p + k) for p, k in zip(pad, keep))
        buf[(slice(None), slice(None)) + inside] = x[(Ellipsis,) + tuple(slice(k) for k in keep)]
        x = buf
    strides = (x.strides[:2] + tuple(x.strides[2 + i] * stride[i] for i in range(n))
               + tuple(x.strides[2 + i] * dilation[i] for i in range(n)))
    shape = x.shape[:2] + out_size + kernel
    if xp is np:  # read-only: windows overlap, so a write through the view would corrupt x
        return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(x, shape, strides)


def im2col(x, kernel, pad=0, stride=1, dilation=1, *, batch_last=False, out=None, ws=None):
    """Columns of x (N, C, *spatial) for a convolution, copied once from a strided view.

    Default layout (N, C·∏kernel, *out) is Caffe's per-image column buffer (the Im2col
    layer's top; rows ordered c, then kernel offsets). batch_last=True gives
    (C·∏kernel, N, *out), ready for one GEMM over the whole batch: W (M, K) @ cols (K, N·P).
    """
    xp = get_array_module(x)
    n = x.ndim - 2
    kernel, pad, stride, dilation = _geometry(n, kernel, pad, stride, dilation)
    out_size = conv_out_size(x.shape[2:], kernel, pad, stride, dilation)
    if any(o <= 0 for o in out_size):
        raise ValueError(f"kernel {kernel} (dilation {dilation}) is larger than the padded "
                         f"input {x.shape[2:]} (pad {pad})")
    view = window_view(x, kernel, pad, stride, dilation, out_size, 0.0, ws)
    o_axes, k_axes = tuple(range(2, 2 + n)), tuple(range(2 + n, 2 + 2 * n))
    perm = (1,) + k_axes + (0,) + o_axes if batch_last else (0, 1) + k_axes + o_axes
    src = view.transpose(perm)
    dst = xp.empty(src.shape, x.dtype) if out is None else out.reshape(src.shape)
    dst[...] = src
    rows = x.shape[1] * math.prod(kernel)
    return dst.reshape((rows, x.shape[0]) + out_size if batch_last
                       else (x.shape[0], rows) + out_size)


def col2im(cols, x_shape, kernel, pad=0, stride=1, dilation=1, *, batch_last=False, out=None,
           ws=None):
    """The adjoint of im2col: sum each column entry back into its input cell -> (N, C, *spatial).

    cols in im2col's layout for the same arguments (default or batch_last).
    """
    n = len(x_shape) - 2
    kernel, pad, stride, dilation = _geometry(n, kernel, pad, stride, dilation)
    out_size = conv_out_size(x_shape[2:], kernel, pad, stride, dilation)
    num, channels = x_shape[:2]
    if batch_last:
        windows = cols.reshape((channels,) + kernel + (num,) + out_size)
        windows = windows.transpose((1 + n, 0) + tuple(range(1, 1 + n))
                                    + tuple(range(2 + n, 2 + 2 * n)))
    else:
        windows = cols.reshape((num, channels) + kernel + out_size)
    return col2im_windows(windows, x_shape, pad, stride, dilation, out=out, ws=ws)


def col2im_windows(windows, x_shape, pad, stride, dilation=1, *, out=None, ws=None):
    """Scatter-add windows (N, C, *kernel, *out) (any strides) into x (N, C, *spatial).

    Loops over kernel offsets (one strided add of the whole batch each) or, when fewer,
    over output positions; padding cells are summed into a border that is then cut off.
    """
    xp = get_array_module(windows)
    n = len(x_shape) - 2
    kernel, out_size = windows.shape[2:2 + n], windows.shape[2 + n:]
    _, pad, stride, dilation = _geometry(n, kernel, pad, stride, dilation)
    spatial = tuple(x_shape[2:])
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    buf_size = tuple(max((o - 1) * s + e, p + sz)
                     for o, s, e, p, sz in zip(out_size, stride, extent, pad, spatial))
    direct = buf_size == spatial  # no border: accumulate straight into the result
    shape = tuple(x_shape[:2]) + buf_size
    if direct:
        buf = out.reshape(shape) if out is not None else xp.empty(shape, windows.dtype)
    elif ws is not None:
        buf = ws.scratch("col2im", shape, windows.dtype, xp)
    else:
        buf = xp.empty(shape, windows.dtype)
    buf[...] = 0
    lead = (slice(None), slice(None))
    if math.prod(kernel) <= math.prod(out_size):
        for offset in itertools.product(*(range(k) for k in kernel)):
            target = tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                           for k, d, o, s in zip(offset, dilation, out_size, stride))
            buf[lead + target] += windows[lead + offset]
    else:
        for pos in itertools.product(*(range(o) for o in out_size)):
            target = tuple(slice(q * s, q * s + e, d)
                           for q, s, e, d in zip(pos, stride, extent, dilation))
            buf[lead + target] += windows[lead + (Ellipsis,) + pos]
    if direct:
        return buf if out is None else out
    inside = buf[lead + tuple(slice(p, p + sz) for p, sz in zip(pad, spatial))]
    if out is None:
        return inside.copy()
    out.reshape(x_shape)[...] = inside
    return out


# -- batch-last (C, *spatial, N) layout ------------------------------------------------------
# With the batch innermost, every window of a convolution is a block of whole (out_w · N)
# runs, so im2col and col2im are long contiguous copies and adds; NumPy is several times
# slower on the short strided rows of an NCHW window. The price is one transpose in and one
# out, done in cache-sized blocks.
TRANSPOSE_BLOCK = 1 << 15  # elements per block of a blocked transpose


def _blocked_copy(dst, src):
    """dst[...] = src (same shape, src a transposed view), a block of leading rows at a time."""
    rows = src.shape[0]
    step = max(1, TRANSPOSE_BLOCK * rows // max(1, src.size))
    if step >= rows:
        dst[...] = src
        return
    for r in range(0, rows, step):
        dst[r:r + step] = src[r:r + step]


def to_batch_last(x, out, ws=None):
    """out[c, *s, n] = x[n, c, *s]; out may be the inside of a padded buffer.

    Images a multiple of 4 KiB apart (16×16×32 floats...) map to the same cache sets, and
    reading across them thrashes the cache: such a batch is first copied to rows 64 bytes
    longer (with a Workspace `ws`).
    """
    xp = get_array_module(x)
    num, row = x.shape[0], x[:1].size
    if ws is not None and num > 1 and (row * x.itemsize) % 4096 == 0:
        buf = ws.scratch("unaliased", (num, row + 64 // x.itemsize), x.dtype, xp)
        buf[:, :row] = x.reshape(num, row)
        x = buf[:, :row].reshape(x.shape)
    _blocked_copy(out, x.transpose(tuple(range(1, x.ndim)) + (0,)))


def from_batch_last(x, out):
    """out[n, c, *s] = x[c, *s, n]; x may be the inside of a padded buffer."""
    _blocked_copy(out.transpose(tuple(range(1, out.ndim)) + (0,)), x)


def _window_slices(offset, out_size, stride, dilation):
    return tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                 for k, o, s, d in zip(offset, out_size, stride, dilation))


def im2col_batch_last(xpad, kernel, stride, dilation, out_size, out):
    """cols (C, *kernel, *out, N) of a padded batch-last input xpad (C, *padded, N), copied
    from one strided view in a single call (rows of out_w·N contiguous cells when stride 1)."""
    xp = get_array_module(xpad)
    n = len(kernel)
    shape = (xpad.shape[0],) + tuple(kernel) + tuple(out_size) + (xpad.shape[-1],)
    spatial = xpad.strides[1:1 + n]
    strides = ((xpad.strides[0],) + tuple(s * d for s, d in zip(spatial, dilation))
               + tuple(s * t for s, t in zip(spatial, stride)) + (xpad.strides[-1],))
    view = (np.lib.stride_tricks.as_strided(xpad, shape, strides, writeable=False) if xp is np
            else xp.lib.stride_tricks.as_strided(xpad, shape, strides))
    out.reshape(shape)[...] = view
    return out


def col2im_batch_last(cols, kernel, stride, dilation, out_size, out):
    """The adjoint of im2col_batch_last: out (C, *padded, N) = Σ of the windows of cols."""
    cols = cols.reshape((out.shape[0],) + tuple(kernel) + tuple(out_size) + (out.shape[-1],))
    out[...] = 0
    for offset in itertools.product(*(range(k) for k in kernel)):
        window = _window_slices(offset, out_size, stride, dilation)
        out[(slice(None),) + window] += cols[(slice(None),) + offset]
    return out
