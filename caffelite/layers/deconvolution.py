"""Deconvolution: y = col2im(Wᵀ · x) + b, the transpose (backward) of Convolution."""
from math import prod

from ..kernels.conv_route_batch_last import grouped_matmul
from ..kernels.im2col import col2im, deconv_out_size
from ..registry import register_layer
from ..runtime import get_array_module
from .convolution import ConvolutionLayer


@register_layer("Deconvolution")
class DeconvolutionLayer(ConvolutionLayer):
    """Transposed convolution, reading convolution_param like Convolution.

    bottom (N…, C, *spatial); top (N…, num_output, *out) with
    out = stride·(in − 1) + dilation·(k − 1) + 1 − 2·pad. blobs: [0] weight
    (C, num_output/group, *kernel) — Caffe's reversed layout, so a deconvolution with a
    convolution's weights is that convolution's input gradient — [1] bias (num_output,).
    Forward is one GEMM and a col2im; backward is an im2col of the top diff.
    """

    def weight_shape(self):
        return (self.channels, self.num_output // self.group) + self.kernel

    def dft_plan(self, x):
        return None  # the DFT route is Convolution's forward; this layer runs its transpose

    def output_spatial(self, spatial):
        out = deconv_out_size(spatial, self.kernel, self.pad, self.stride, self.dilation)
        if min(out) <= 0:
            raise self.error(f"output size {out} from input {spatial} is not positive: lower "
                             f"pad ({self.pad}) or raise kernel_size/stride")
        return out

    def _transposed(self, x, n0, n1, name):
        """x[n0:n1] (nb, C, P) as (C, nb·P), the operand of the batched GEMM."""
        xp = get_array_module(x)
        nb, c, p = n1 - n0, x.shape[1], x.shape[2]
        buf = self.ws.scratch(name, (c, nb, p), x.dtype, xp)
        buf[...] = x[n0:n1].transpose(1, 0, 2)
        return buf.reshape(c, nb * p)

    def forward(self, bottom, top):
        g, m, c = self.group, self.num_output, self.channels
        p_in, kk = prod(self.in_spatial), prod(self.kernel)
        w = self.blobs[0].data.reshape(g, c // g, m // g * kk)  # (G, C/G, M/G·kk)
        for i in range(len(bottom)):
            x = bottom[i].data.reshape(self.num, c, p_in)
            xp = get_array_module(x)
            y = top[i].data.reshape((self.num, m) + self.out_spatial)
            spans = self.chunks(m * kk * p_in)
            self.cached[i] = len(spans) == 1
            for n0, n1 in spans:
                nb = n1 - n0
                xt = self._transposed(x, n0, n1, f"xt{i}" if self.cached[i] else "xt")
                cols = grouped_matmul(w.transpose(0, 2, 1), xt.reshape(g, c // g, nb * p_in),
                                      self.ws.scratch("cols", (g, m // g * kk, nb * p_in),
                                                      x.dtype, xp))  # (G, M/G·kk, nb·P_in)
                col2im(cols, (nb, m) + self.out_spatial, self.kernel, self.pad, self.stride,
                       self.dilation, batch_last=True, out=y[n0:n1], ws=self.ws)
            if self.bias_term:
                y += self.blobs[1].data.reshape((m,) + (1,) * self.num_spatial)

    def backward(self, top, propagate_down, bottom):
        g, m, c = self.group, self.num_output, self.channels
        p_in, kk = prod(self.in_spatial), prod(self.kernel)
        w = self.blobs[0].data.reshape(g, c // g, m // g * kk)
        need_w = self.param_propagate_down[0]
        for i in range(len(top)):
            dy = top[i].diff.reshape((self.num, m) + self.out_spatial)
            xp = get_array_module(dy)
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff += dy.reshape(self.num, m, -1).sum(axis=(0, 2))
            if not (need_w or propagate_down[i]):
                continue
            x = bottom[i].data.reshape(self.num, c, p_in)
            spans = self.chunks(m * kk * p_in)
            for n0, n1 in spans:
                nb = n1 - n0
                cols = self.im2col(dy, n0, n1, "cols").reshape(g, m // g * kk, nb * p_in)
                if need_w:
                    keep = self.cached.get(i, False) and len(spans) == 1
                    xt = (self.ws.scratch(f"xt{i}", (c, nb * p_in), x.dtype, xp) if keep
                          else self._transposed(x, n0, n1, "xt"))
                    grouped_matmul(xt.reshape(g, c // g, nb * p_in), cols.transpose(0, 2, 1),
                                   self.blobs[0].diff.reshape(w.shape), accumulate=True)
                if propagate_down[i]:
                    dxt = grouped_matmul(w, cols, self.ws.scratch(
                        "dxt", (g, c // g, nb * p_in), dy.dtype, xp))  # (G, C/G, nb·P_in)
                    dx = bottom[i].diff.reshape(self.num, c, p_in)
                    dx[n0:n1] = dxt.reshape(c, nb, p_in).transpose(1, 0, 2)
