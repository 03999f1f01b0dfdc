"""im2col as a compiled loop nest (runtime.Kernel, with Numba).

Convolution's per-image route (wide outputs, no groups) copies a few images' windows into a
column buffer and multiplies them by the weights at once, while the buffer (C·∏kernel + 1
rows of oh·ow each, 300 KB an image for CIFAR-10's first layer) is still in the core's cache.
NumPy's window copy of a whole batch takes 1.5x as long, and its GEMM then streams the
columns from memory.

Indices are unsigned (U): Numba checks a signed index for wraparound on every access, which
keeps LLVM from vectorizing the copies.
"""
import numpy as np

from ..runtime import Kernel

U = np.uint64


@Kernel
def im2col_images(x, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, cols):
    """cols (N, C·kh·kw + 1, oh·ow) of x (N, C, H, W): row (c·kh + a)·kw + b, column i·ow + j
    of image n holds x[n, c, i·sh − ph + a·dh, j·sw − pw + b·dw] (0 outside the image); the
    last row is ones."""
    num, channels, height, width = x.shape
    x_flat, cols_flat = x.reshape(-1), cols.reshape(-1)
    p, k = oh * ow, channels * kh * kw
    firsts, stops = np.empty(kw, np.int64), np.empty(kw, np.int64)  # j inside the image
    for b in range(kw):  # (once: integer divisions are slow)
        offset = b * dw - pw  # input column of output column j: j·sw + offset
        firsts[b] = min(ow, max(0, -(offset // sw)))
        stops[b] = max(firsts[b], min(ow, (width - 1 - offset) // sw + 1))
    for n in range(num):
        image, image_cols = n * channels * height * width, n * (k + 1) * p
        for c in range(channels):
            for a in range(kh):
                for b in range(kw):
                    row = image_cols + ((c * kh + a) * kw + b) * p
                    offset, first, stop = b * dw - pw, firsts[b], stops[b]
                    for i in range(oh):
                        h = i * sh - ph + a * dh
                        dst = U(row + i * ow)
                        if h < 0 or h >= height:  # the whole output row is padding
                            for j in range(ow):
                                cols_flat[dst + U(j)] = 0
                            continue
                        for j in range(first):
                            cols_flat[dst + U(j)] = 0
                        src = U(max(0, image + (c * height + h) * width + first * sw + offset))
                        run = U(dst + first)
                        if sw == 1:
                            for j in range(stop - first):
                                cols_flat[run + U(j)] = x_flat[src + U(j)]
                        else:
                            for j in range(stop - first):
                                cols_flat[run + U(j)] = x_flat[src + U(j * sw)]
                        for j in range(stop, ow):
                            cols_flat[dst + U(j)] = 0
        for t in range(image_cols + k * p, image_cols + (k + 1) * p):
            cols_flat[U(t)] = 1
