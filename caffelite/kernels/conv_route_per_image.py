"""Convolution's per-image route: one GEMM per image, (M, K+1) @ columns (K+1, P), with the
bias folded in as a row of ones, straight into the NCHW top. Wide outputs without groups run
here; the columns come from NumPy's window copy or, with Numba, the compiled im2col."""
from math import prod

import numpy as np

from ..layer import TRAIN
from ..runtime import compiled_for, get_array_module, stacked_matmul
from .im2col import col2im, window_view
from .im2col_compiled import im2col_images

# With the compiled im2col, the per-image route copies and multiplies groups of images whose
# columns and output take about this many bytes, so the GEMM reads the columns from cache:
# CIFAR-10 quick's conv1 (one image, 440 KB) 18.6 -> 15.6 ms per batch of 100, one thread.
# NumPy's window copy gains nothing from groups (2 threads: 9.9 ms whole, 13.7 per image).
GROUP_BYTES = 1 << 19


class PerImageRoute:
    """ConvolutionLayer's methods for one GEMM per image (a mixin: it reads the layer's
    geometry, blobs and workspaces)."""

    def compiled_columns(self, x):
        """Whether per-image columns come from the compiled kernel (im2col_compiled.py):
        Numba installed, NumPy arrays, 2-D."""
        return compiled_for(x) and self.num_spatial == 2

    def im2col_per_image(self, x, n0, n1, name, ws):
        """Columns (nb, C·∏kernel + 1, P) of images [n0, n1) in buffer `name`."""
        xp = get_array_module(x)
        k, p = self.channels * prod(self.kernel), prod(self.out_spatial)
        buf = ws.scratch(name, (n1 - n0, k + 1, p), x.dtype, xp)
        return self.image_columns(x[n0:n1], buf, ws)

    def image_columns(self, x, out, ws):
        """out (nb, C·∏kernel + 1, P) = the columns of images x (nb, C, *spatial), the last
        row ones (the bias): by the compiled kernel, or NumPy's copy of a window view."""
        if self.compiled_columns(x):
            im2col_images(x, *self.kernel, *self.pad, *self.stride, *self.dilation,
                          *self.out_spatial, out)
            return out
        nb, n, k = x.shape[0], self.num_spatial, out.shape[1] - 1
        view = window_view(x, self.kernel, self.pad, self.stride, self.dilation,
                           self.out_spatial, 0.0, ws)  # (nb, C, *out, *kernel)
        dst = out[:, :k].reshape((nb, self.channels) + self.kernel + self.out_spatial)
        dst[...] = view.transpose((0, 1) + tuple(range(2 + n, 2 + 2 * n))
                                  + tuple(range(2, 2 + n)))
        out[:, k] = 1
        return out

    def weights_with_bias(self, dtype, ws):
        """(M, K+1): the weights and the bias column, for columns whose last row is ones."""
        m, k = self.num_output, self.channels * prod(self.kernel)
        w = ws.scratch("w_bias", (m, k + 1), dtype, get_array_module(self.blobs[0].data))
        w[:, :k] = self.blobs[0].data.reshape(m, k)
        w[:, k] = self.blobs[1].data if self.bias_term else 0
        return w

    def forward_per_image(self, x, w, y, n0, n1, name, ws):
        """y[n] = (M, K+1) @ columns (K+1, P) of each image n in [n0, n1); True when the
        columns are kept in buffer `name` for backward. With the compiled im2col a group of
        images at a time, each multiplied while its columns are in cache (GROUP_BYTES); a
        TEST net, which seldom runs backward, then reuses one group's buffer instead of
        writing every image's columns to memory. NumPy's window copy is cheapest whole."""
        if not self.compiled_columns(x):
            stacked_matmul(w, self.im2col_per_image(x, n0, n1, name, ws), y[n0:n1])
            return True
        shape = w.shape[1:] + y.shape[2:]  # one image's columns
        step = max(1, GROUP_BYTES // ((prod(shape) + prod(y.shape[1:])) * x.itemsize))
        keep = self.phase == TRAIN
        cols = ws.scratch(name if keep else "group_cols", (n1 - n0 if keep else step,) + shape,
                          x.dtype)
        for g0 in range(n0, n1, step):
            g1 = min(n1, g0 + step)
            part = cols[g0 - n0:g1 - n0] if keep else cols[:g1 - g0]
            np.matmul(w, self.image_columns(x[g0:g1], part, ws), out=y[g0:g1])
        return keep

    def backward_per_image(self, dy, x, bottom, dw, db, propagate_down, n0, n1, i, keep, ws):
        """Gradients of images [n0, n1) with one GEMM per image (group 1, wide outputs)."""
        m, c = self.num_output, self.channels
        p, k = prod(self.out_spatial), c * prod(self.kernel)
        xp, nb, dy = get_array_module(dy), n1 - n0, dy[n0:n1]  # (nb, M, P)
        if db is not None:
            db += dy.sum(axis=(0, 2))  # params accumulate
        if dw is not None:
            cols = (ws.scratch(f"cols{i}", (nb, k + 1, p), x.dtype, xp) if keep
                    else self.columns(x, n0, n1, "cols", ws))
            # ∂Wᵀ per image, (K, P) @ (P, M): BLAS runs this orientation 1.4x faster than
            # (M, P) @ (P, K) on CIFAR-10 quick's conv1.
            per_image = ws.scratch(f"dw_images{i}", (nb, k, m), dy.dtype, xp)

            def weight_grad():
                stacked_matmul(cols[:, :k], dy.transpose(0, 2, 1), per_image)
                dw[...] += per_image.sum(axis=0).T.reshape(dw.shape)
            self.weight_grad(weight_grad, keep and nb == self.num)
        if propagate_down:
            wt = ws.scratch("wt", (k, m), dy.dtype, xp)
            wt[...] = self.blobs[0].data.reshape(m, k).T
            dcols = stacked_matmul(wt, dy, ws.scratch("dcols", (nb, k, p), dy.dtype, xp))
            dx = bottom.diff.reshape((self.num, c) + self.in_spatial)[n0:n1]
            col2im(dcols, dx.shape, self.kernel, self.pad, self.stride, self.dilation, out=dx,
                   ws=ws)
