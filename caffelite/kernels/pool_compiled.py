"""MAX pooling as compiled loops (runtime.Kernel, with Numba): one pass over each image.

The forward follows pool_phases.py's order in one loop nest per image: the image is copied
into s_w column-phase planes (P[φ][r, u] = x[r − p_h, u·s_w + φ − p_w], −inf outside the
image), each plane row is reduced over the kernel columns b (every b a shifted, contiguous
run), then each output over the kernel rows a. Strict > against a start of −FLT_MAX, first
the row then the column, picks Caffe's winner: the first maximum in h-then-w order; NaN and
−inf never win, and a window holding nothing above −FLT_MAX gets −FLT_MAX and mask −1.

Indices are unsigned (U): Numba wraps a signed index that could be negative around the
array's end, a test per access that keeps LLVM from vectorizing the loop (8x slower here).
"""
import numpy as np

from ..runtime import Kernel
from .im2col import FLT_MAX

U = np.uint64


@Kernel
def max_pool_forward(x, kh, kw, ph, pw, sh, sw, track, top, mask):
    """top (P, oh, ow) = the window maxima of x (P, H, W); with track, mask = Caffe's argmax
    h·W + w (without, mask is left as it was: a third less work, for nets that never run
    backward)."""
    planes, height, width = x.shape
    oh, ow = top.shape[1], top.shape[2]
    rows = (oh - 1) * sh + kh  # plane rows: every window row
    cols = ow + (kw - 1) // sw  # plane columns: every window column
    cells = rows * cols
    span = cells + cols  # one phase plane, and a row of slack for the shifted reads
    lowest = x.dtype.type(-FLT_MAX)
    phases = np.full(sw * span, -np.inf, x.dtype)  # cells outside the image stay −inf
    row_max = np.empty(cells, x.dtype)
    row_arg = np.empty(cells, np.int8)  # the winning kernel column b
    x_flat, top_flat, mask_flat = x.reshape(-1), top.reshape(-1), mask.reshape(-1)
    firsts, counts = np.empty(sw, np.int64), np.empty(sw, np.int64)  # the image's plane columns
    for phase in range(sw):  # (once: an integer division costs as much as a row's copy)
        firsts[phase] = max(0, -((phase - pw) // sw))
        counts[phase] = max(0, min(cols, (width - 1 + pw - phase) // sw + 1) - firsts[phase])
    for p in range(planes):
        image = p * height * width
        for r in range(max(0, ph), min(rows, height + ph)):
            for phase in range(sw):
                first = firsts[phase]
                dst = U(phase * span + r * cols + first)
                src = U(image + (r - ph) * width + first * sw + phase - pw)
                for u in range(counts[phase]):
                    phases[dst + U(u)] = x_flat[src + U(u * sw)]
        for t in range(cells):
            row_max[t] = lowest
            row_arg[t] = -1
        for b in range(kw):
            shift, code = U((b % sw) * span + b // sw), np.int8(b)
            for t in range(cells):
                v, best = phases[shift + U(t)], row_max[t]
                better = v > best
                row_max[t] = v if better else best
                if track:
                    row_arg[t] = code if better else row_arg[t]
        for i in range(oh):
            out = U((p * oh + i) * ow)
            for j in range(ow):
                top_flat[out + U(j)] = lowest
                if track:
                    mask_flat[out + U(j)] = -1
            for a in range(kh):  # mask holds the winning row a until the last loop
                row, code = U((i * sh + a) * cols), np.int32(a)
                for j in range(ow):
                    v, best = row_max[row + U(j)], top_flat[out + U(j)]
                    better = v > best
                    top_flat[out + U(j)] = v if better else best
                    if track:
                        mask_flat[out + U(j)] = code if better else mask_flat[out + U(j)]
            for j in range(ow if track else 0):
                a = mask_flat[out + U(j)]
                if a >= 0:
                    b = np.int32(row_arg[U((i * sh + a) * cols + j)])
                    mask_flat[out + U(j)] = (i * sh + a - ph) * width + j * sw + b - pw


@Kernel
def max_pool_backward(dtop, mask, dx):
    """dx (P, H, W) = each top diff added to the input cell its mask names, in Caffe's
    output order (overlapping windows add up as in Caffe)."""
    planes, oh, ow = dtop.shape
    cells = dx.shape[1] * dx.shape[2]
    dx_flat, dtop_flat, mask_flat = dx.reshape(-1), dtop.reshape(-1), mask.reshape(-1)
    for p in range(planes):
        image = U(p * cells)
        for t in range(cells):
            dx_flat[image + U(t)] = 0
        for o in range(p * oh * ow, (p + 1) * oh * ow):
            cell = mask_flat[o]
            if cell >= 0:
                dx_flat[image + U(cell)] += dtop_flat[o]
