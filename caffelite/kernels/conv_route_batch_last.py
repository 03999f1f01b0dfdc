"""Convolution's batch-last route: columns (C·∏kernel, P·nb) of a padded (C, *spatial, nb)
copy and one (grouped) GEMM per batch chunk. Narrow outputs and groups run here: NumPy copies
short NCHW window rows slowly, while batch-last rows are long (see kernels/im2col.py)."""
from math import prod

from ..runtime import get_array_module, matmul
from .im2col import col2im_batch_last, from_batch_last, im2col_batch_last, to_batch_last


def grouped_matmul(a, b, out=None, accumulate=False):
    """out[g] = a[g] @ b[g] (or += with accumulate) over the group axis, one 2-D GEMM each.

    A stacked np.matmul skips BLAS when an operand is a transposed view; 2-D matmul does not.
    """
    xp = get_array_module(a)
    if out is None:
        out = xp.empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)
    for g in range(a.shape[0]):
        matmul(a[g], b[g], out[g], accumulate)
    return out


class BatchLastRoute:
    """ConvolutionLayer's methods for the batch-last columns (a mixin: it reads the layer's
    geometry, blobs and workspaces)."""

    def padded_shape(self, nb):
        return ((self.channels,) + tuple(s + 2 * p for s, p in zip(self.in_spatial, self.pad))
                + (nb,))

    def im2col_batch_last(self, x, n0, n1, name, ws=None):
        """Columns (C·∏kernel, P·nb) of images [n0, n1), through a padded (C, *spatial, nb)."""
        xp, ws = get_array_module(x), ws or self.ws
        xpad = ws.padded("xpad", self.padded_shape(n1 - n0), x.dtype, 0, xp)
        inside = tuple(slice(p, p + s) for p, s in zip(self.pad, self.in_spatial))
        to_batch_last(x[n0:n1], xpad[(slice(None),) + inside], ws)
        k, p = self.channels * prod(self.kernel), prod(self.out_spatial)
        buf = ws.scratch(name, (k, p * (n1 - n0)), x.dtype, xp)
        return im2col_batch_last(xpad, self.kernel, self.stride, self.dilation,
                                 self.out_spatial, buf)

    def forward_batch_last(self, x, y, n0, n1, name, ws):
        """y[n0:n1] = W ⋆ x + b for images [n0, n1) on batch-last columns."""
        g, m, c = self.group, self.num_output, self.channels
        p, k = prod(self.out_spatial), c * prod(self.kernel)
        xp, nb = get_array_module(x), n1 - n0
        w = self.blobs[0].data.reshape(g, m // g, k // g)
        cols = self.im2col_batch_last(x, n0, n1, name, ws)
        wx = grouped_matmul(w, cols.reshape(g, k // g, nb * p),
                            ws.scratch("gemm", (g, m // g, nb * p), x.dtype, xp))
        wx = wx.reshape(m, nb * p)
        if self.bias_term:
            wx += self.blobs[1].data[:, None]
        from_batch_last(wx.reshape(m, p, nb), y[n0:n1])  # (M, P, nb) -> (nb, M, P)

    def backward_batch_last(self, dy, x, bottom, dw, db, propagate_down, n0, n1, i, keep, ws):
        """Gradients of images [n0, n1) on batch-last columns (C·∏kernel, P·nb); True when
        forward's kept columns were overwritten."""
        g, m, c = self.group, self.num_output, self.channels
        p, k = prod(self.out_spatial), c * prod(self.kernel)
        w = self.blobs[0].data.reshape(g, m // g, k // g)
        xp, nb = get_array_module(dy), n1 - n0
        dyt = ws.scratch(f"dyt{i}", (m, nb * p), dy.dtype, xp)
        to_batch_last(dy[n0:n1], dyt.reshape(m, p, nb), ws)
        if db is not None:
            db += dyt.sum(axis=1)  # params accumulate
        dyt = dyt.reshape(g, m // g, nb * p)  # (G, M/G, nb·P)
        deferred = False
        if dw is not None:
            cols = (ws.scratch(f"cols{i}", (k, nb * p), x.dtype, xp) if keep
                    else self.columns(x, n0, n1, "cols", ws))
            deferred = self.weight_grad(lambda: grouped_matmul(
                dyt, cols.reshape(g, k // g, nb * p).transpose(0, 2, 1), dw, accumulate=True),
                keep and nb == self.num)
        if propagate_down and self.full_correlation():
            # Once the weight gradient is done, forward's columns are free: the top diff's
            # columns go there (no larger, by full_correlation), and forward refills them.
            reuse = keep and not deferred
            self.input_grad_full(dyt.reshape((m,) + self.out_spatial + (nb,)), bottom, n0, n1,
                                 ws, f"cols{i}" if reuse else "dycols")
            return reuse
        if propagate_down:
            dcols = grouped_matmul(w.transpose(0, 2, 1), dyt, ws.scratch(
                "dcols", (g, k // g, nb * p), dy.dtype, xp))  # (G, K/G, nb·P)
            dx = bottom.diff.reshape((self.num, c) + self.in_spatial)[n0:n1]
            dxpad = ws.scratch("dxpad", self.padded_shape(nb), dy.dtype, xp)
            col2im_batch_last(dcols, self.kernel, self.stride, self.dilation,
                              self.out_spatial, dxpad)
            inside = tuple(slice(q, q + s) for q, s in zip(self.pad, self.in_spatial))
            from_batch_last(dxpad[(slice(None),) + inside], dx)
        return False

    def full_correlation(self):
        """Whether the input gradient is cheaper as a convolution of the padded top diff with
        the flipped weights (stride 1, no groups, columns no larger than col2im's): one window
        copy and one GEMM instead of a GEMM and ∏kernel scatter-adds."""
        return (self.group == 1 and set(self.stride) == {1}
                and all(d * (k - 1) >= q for d, k, q in zip(self.dilation, self.kernel, self.pad))
                and self.num_output * prod(self.in_spatial)
                <= self.channels * prod(self.out_spatial))

    def input_grad_full(self, dyt, bottom, n0, n1, ws, name):
        """dx = dy (padded by dilation·(k−1) − pad) ⋆ W flipped, all batch-last."""
        xp, nb, m, c = get_array_module(dyt), n1 - n0, self.num_output, self.channels
        full_pad = tuple(d * (k - 1) - q for d, k, q in zip(self.dilation, self.kernel, self.pad))
        shape = (m,) + tuple(o + 2 * q for o, q in zip(self.out_spatial, full_pad)) + (nb,)
        dypad = ws.padded("dypad", shape, dyt.dtype, 0, xp)
        dypad[(slice(None),) + tuple(slice(q, q + o) for q, o in
                                     zip(full_pad, self.out_spatial))] = dyt
        kk = prod(self.kernel)
        cols = im2col_batch_last(dypad, self.kernel, (1,) * self.num_spatial, self.dilation,
                                 self.in_spatial, ws.scratch(
                                     name, (m * kk, prod(self.in_spatial) * nb), dyt.dtype, xp))
        flip = (slice(None), slice(None)) + (slice(None, None, -1),) * self.num_spatial
        wflip = ws.scratch("wflip", (c, m * kk), dyt.dtype, xp)
        wflip.reshape((c, m) + self.kernel)[...] = self.blobs[0].data[flip].swapaxes(0, 1)
        dxt = matmul(wflip, cols, ws.scratch("dxt", (c, cols.shape[1]), dyt.dtype, xp))
        dx = bottom.diff.reshape((self.num, c) + self.in_spatial)[n0:n1]
        from_batch_last(dxt.reshape((c,) + self.in_spatial + (nb,)), dx)
