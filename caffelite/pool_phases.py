"""Window max and sum on stride-phase planes: top[i, j] = ⊕_{a,b} x[i·s − p + a, j·s − p + b].

NumPy runs strided element loops several times slower than contiguous ones, and a pooling
window view is strided in both axes. So the input is copied once into s_h·s_w phase planes,
P[ψ, φ][t, u] = x[t·s_h + ψ − p_h, u·s_w + φ − p_w] (cells outside the image hold the fill),
after which window cell (a, b) of output (i, j) is P[a mod s_h, b mod s_w][i + a÷s_h, j + b÷s_w]:
each kernel offset is one contiguous shifted slice of a flattened plane. Rows are reduced
first (over b), then columns (over a), so with a strict > the first maximum in Caffe's
h-then-w window order wins. Outputs past (oh, ow) are computed on the way and dropped.
"""
import numpy as np

from .backend import get_array_module
from .im2col import FLT_MAX


class PhaseGeometry:
    """Plane sizes and shifts for pooling (N·C, H, W) with kernel, pad, stride -> (oh, ow)."""

    def __init__(self, nc, size, kernel, pad, stride, out_size):
        self.nc, self.size, self.kernel, self.pad, self.stride = nc, size, kernel, pad, stride
        self.out_size = out_size
        # Each plane covers every window cell and every input cell (so backward writes all
        # of dx): T = max(out + (k − 1)÷s, ceil((size + pad) / s)).
        self.t = tuple(max(o + (k - 1) // s, -(-(n + p) // s))
                       for n, k, p, s, o in zip(size, kernel, pad, stride, out_size))
        self.plane = nc * self.t[0] * self.t[1]
        self.tail_w = (kernel[1] - 1) // stride[1]  # largest shift along a row
        self.tail_h = (kernel[0] - 1) // stride[0] * self.t[1]  # ... and down the columns
        # kernel == stride, no padding, the image an exact multiple: planes are the outputs
        self.tiled = (kernel == stride and pad == (0, 0)
                      and all(n == o * s for n, o, s in zip(size, out_size, stride)))

    def offsets(self, axis):
        """(k, phase, shift) per kernel offset along axis 0 (rows of planes) or 1."""
        s = self.stride[axis]
        unit = self.t[1] if axis == 0 else 1
        return [(k, k % s, (k // s) * unit) for k in range(self.kernel[axis])]

    def inside(self, phase_h, phase_w):
        """(plane slices, image slices) of the cells of plane (ψ, φ) that lie in the image."""
        slices = ([], [])
        for phase, n, p, s, t in zip((phase_h, phase_w), self.size, self.pad, self.stride,
                                     self.t):
            first = max(0, -((phase - p) // s))  # ceil((p − ψ) / s)
            last = min(t, (n - 1 + p - phase) // s + 1)
            count = max(0, last - first)
            start = first * s + phase - p
            slices[0].append(slice(first, first + count))
            slices[1].append(slice(start, start + (count - 1) * s + 1 if count else start, s))
        return tuple(slices[0]), tuple(slices[1])


def _planes(x, geo, fill, ws, name):
    """The phase planes of x (N, C, H, W) as flat (s_h, s_w, plane + tail) with `fill` outside."""
    xp = get_array_module(x)
    sh, sw = geo.stride
    buf = ws.padded(name, (sh, sw, geo.plane + geo.tail_w), x.dtype, fill, xp)
    x3 = x.reshape(geo.nc, *geo.size)
    for ph in range(sh):
        for pw in range(sw):
            plane_cells, image_cells = geo.inside(ph, pw)
            plane = buf[ph, pw, :geo.plane].reshape(geo.nc, *geo.t)
            plane[(slice(None),) + plane_cells] = x3[(slice(None),) + image_cells]
    return buf


def _scatter_planes(dplanes, geo, dx):
    """dx (N, C, H, W) from plane gradients: every image cell is in exactly one plane."""
    sh, sw = geo.stride
    dx3 = dx.reshape(geo.nc, *geo.size)
    for ph in range(sh):
        for pw in range(sw):
            plane_cells, image_cells = geo.inside(ph, pw)
            plane = dplanes[ph, pw, :geo.plane].reshape(geo.nc, *geo.t)
            dx3[(slice(None),) + image_cells] = plane[(slice(None),) + plane_cells]
    return dx


def _max_reduce(sources, dst, arg, lowest):
    """dst = max of the sources from −FLT_MAX (strict >: the first wins; NaN never does);
    arg = 1 + the index of the winner (0: nothing beat −FLT_MAX)."""
    xp = get_array_module(dst)
    for k, src in enumerate(sources):
        if k == 0:
            if arg is not None:
                xp.greater(src, lowest, out=arg.view(bool))
            xp.fmax(src, lowest, out=dst)
            continue
        if arg is not None:
            better = xp.greater(src, dst)
            xp.maximum(arg, xp.multiply(better.view(xp.uint8), xp.uint8(k + 1)), out=arg)
        xp.fmax(dst, src, out=dst)


def _shifted(flat, shift, length):
    return flat[shift:shift + length]


def window_max(x, geo, ws, track=True, out=None):
    """(top (N, C, oh, ow), track) of MAX pooling; track = (row winners, column winners)."""
    xp = get_array_module(x)
    lowest = x.dtype.type(-FLT_MAX)
    (sh, _), n = geo.stride, geo.plane
    planes = _planes(x, geo, -np.inf, ws, "planes")
    rows = ws.padded("rows", (sh, n + geo.tail_h), x.dtype, lowest, xp)  # tail stays −FLT_MAX
    a1 = ws.scratch("a1", (sh, n), xp.uint8, xp) if track else None
    for ph in range(sh):
        sources = [_shifted(planes[ph, phase], shift, n) for _, phase, shift in geo.offsets(1)]
        _max_reduce(sources, rows[ph, :n], a1[ph] if track else None, lowest)
    full = ws.scratch("full", (n,), x.dtype, xp)
    a2 = ws.scratch("a2", (n,), xp.uint8, xp) if track else None
    _max_reduce([_shifted(rows[phase], shift, n) for _, phase, shift in geo.offsets(0)],
                full, a2, lowest)
    oh, ow = geo.out_size
    top = xp.empty((geo.nc, oh, ow), x.dtype) if out is None else out.reshape(geo.nc, oh, ow)
    top[...] = full.reshape(geo.nc, *geo.t)[:, :oh, :ow]
    return top.reshape(x.shape[:2] + (oh, ow)), ((a1, a2) if track else None)


def window_max_backward(dtop, track, geo, ws, dx):
    """dx of window_max: each top diff goes to the cell that won its window."""
    xp = get_array_module(dtop)
    a1, a2 = track
    (sh, sw), n = geo.stride, geo.plane
    oh, ow = geo.out_size
    if geo.tiled:  # windows tile the image: write each phase's cells once, in place
        dtop = dtop.reshape(geo.nc, oh, ow)
        dx3 = dx.reshape(geo.nc, *geo.size)
        for ph in range(sh):
            row_won = a2.reshape(geo.nc, oh, ow) == ph + 1
            for pw in range(sw):
                won = xp.logical_and(row_won, a1[ph].reshape(geo.nc, oh, ow) == pw + 1)
                xp.multiply(dtop, won, out=dx3[:, ph::sh, pw::sw])
        return dx
    grad = ws.padded("grad", (geo.nc,) + geo.t, dtop.dtype, 0, xp)  # zero past (oh, ow)
    grad[:, :oh, :ow] = dtop.reshape(geo.nc, oh, ow)
    grad = grad.reshape(-1)
    drows = ws.scratch("drows", (sh, n + geo.tail_h), dtop.dtype, xp)
    _spread(drows, geo.offsets(0), n, lambda k: xp.multiply(grad, a2 == k + 1))
    dplanes = ws.scratch("dplanes", (sh, sw, n + geo.tail_w), dtop.dtype, xp)
    for ph in range(sh):
        _spread(dplanes[ph], geo.offsets(1), n,
                lambda k, ph=ph: xp.multiply(drows[ph, :n], a1[ph] == k + 1))
    return _scatter_planes(dplanes, geo, dx)


def _spread(targets, offsets, n, value):
    """targets[phase][shift:shift + n] += value(k) over the offsets; with stride >= kernel
    every offset has its own phase and no shift, so each plane is written once, not summed."""
    if all(shift == 0 for _, _, shift in offsets) and len(offsets) == len(
            {phase for _, phase, _ in offsets}):
        hit = set()
        for k, phase, _ in offsets:
            targets[phase, :n] = value(k)
            hit.add(phase)
        for phase in range(targets.shape[0]):
            if phase not in hit:
                targets[phase] = 0
        return
    targets[...] = 0
    for k, phase, shift in offsets:
        _shifted(targets[phase], shift, n)[...] += value(k)


def window_sum(x, geo, ws, out=None):
    """Σ over each window (cells outside the image add 0), (N, C, oh, ow)."""
    xp = get_array_module(x)
    (sh, _), n = geo.stride, geo.plane
    planes = _planes(x, geo, 0, ws, "planes")
    rows = ws.padded("rows", (sh, n + geo.tail_h), x.dtype, 0, xp)
    for ph in range(sh):
        total = rows[ph, :n]
        for k, phase, shift in geo.offsets(1):
            src = _shifted(planes[ph, phase], shift, n)
            if k == 0:
                total[...] = src
            else:
                total += src
    full = ws.scratch("full", (n,), x.dtype, xp)
    for k, phase, shift in geo.offsets(0):
        src = _shifted(rows[phase], shift, n)
        if k == 0:
            full[...] = src
        else:
            full += src
    oh, ow = geo.out_size
    top = xp.empty((geo.nc, oh, ow), x.dtype) if out is None else out.reshape(geo.nc, oh, ow)
    top[...] = full.reshape(geo.nc, *geo.t)[:, :oh, :ow]
    return top.reshape(x.shape[:2] + (oh, ow))


def window_sum_backward(dtop, geo, ws, dx):
    """dx of window_sum: each top diff added to every image cell of its window."""
    xp = get_array_module(dtop)
    (sh, sw), n = geo.stride, geo.plane
    oh, ow = geo.out_size
    grad = ws.padded("grad", (geo.nc,) + geo.t, dtop.dtype, 0, xp)
    grad[:, :oh, :ow] = dtop.reshape(geo.nc, oh, ow)
    grad = grad.reshape(-1)
    drows = ws.scratch("drows", (sh, n + geo.tail_h), dtop.dtype, xp)
    _spread(drows, geo.offsets(0), n, lambda k: grad)
    dplanes = ws.scratch("dplanes", (sh, sw, n + geo.tail_w), dtop.dtype, xp)
    for ph in range(sh):
        _spread(dplanes[ph], geo.offsets(1), n, lambda k, ph=ph: drows[ph, :n])
    return _scatter_planes(dplanes, geo, dx)


def phase_mask(track, geo, width):
    """Caffe's MAX mask h·W + w of each window's winner (−1 if none), (N·C, oh, ow)."""
    xp = get_array_module(track[1])
    a1, a2 = track
    (sh, sw), (ph, pw) = geo.stride, geo.pad
    th, tw = geo.t
    oh, ow = geo.out_size
    a = a2.reshape(geo.nc, th, tw)[:, :oh, :ow].astype(xp.int64) - 1  # winning row offset
    found = a >= 0
    a = xp.where(found, a, 0)
    i, j = xp.arange(oh)[:, None], xp.arange(ow)
    t = i + a // sh  # the winning row's position in its phase plane
    flat = (a % sh) * geo.plane + (xp.arange(geo.nc)[:, None, None] * th + t) * tw + j
    b = a1.reshape(-1)[flat].astype(xp.int64) - 1  # winning column offset in that row
    return xp.where(found, (i * sh - ph + a) * width + j * sw - pw + b, -1)
