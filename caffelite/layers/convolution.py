"""Convolution: y[n, o] = Σ_c W[o, c] ⋆ x[n, group(o)·C/G + c] + b[o], by im2col and one GEMM
(or per-frequency GEMMs through the DFT)."""
from math import prod

import numpy as np

from ..fillers import fill
from ..kernels.dft_conv import DftPlan, plan_fits
from ..kernels.im2col import (
    Workspace,
    col2im,
    col2im_batch_last,
    conv_out_size,
    from_batch_last,
    im2col,
    im2col_batch_last,
    to_batch_last,
    window_view,
)
from ..kernels.im2col_compiled import im2col_images
from ..layer import TRAIN, Layer
from ..registry import register_layer
from ..runtime import compiled_for, defer, get_array_module, matmul, parallel, stacked_matmul

# Column buffers above this many elements (256 MiB of float32) are filled a batch chunk at a time.
COL_BUFFER_ELEMENTS = 1 << 26
# Outputs narrower than this run in the batch-last layout (see im2col.py): NumPy copies short
# NCHW window rows slowly, while wide ones (a first layer's) are cheaper without transposes.
BATCH_LAST_BELOW_WIDTH = 20
# The batch is split among threads when one window copy of a thread's part has this many cells.
PARALLEL_MIN_WORK = 1 << 12
# With the compiled im2col, the per-image route copies and multiplies groups of images whose
# columns and output take about this many bytes, so the GEMM reads the columns from cache:
# CIFAR-10 quick's conv1 (one image, 440 KB) 18.6 -> 15.6 ms per batch of 100, one thread.
# NumPy's window copy gains nothing from groups (2 threads: 9.9 ms whole, 13.7 per image).
GROUP_BYTES = 1 << 19
# A 2-D convolution with stride 1 runs through the DFT (dft_conv.py) when that needs fewer
# than this fraction of im2col's multiply-adds (its GEMMs are smaller and complex).
DFT_BELOW = 0.5


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


def setup_conv_axes(layer, bottom, param):
    """Set layer.channel_axis, num_spatial, kernel, stride, pad and dilation from a
    ConvolutionParameter and the bottom's shape (Convolution, Deconvolution and Im2col)."""
    try:
        layer.channel_axis = bottom.canonical_axis_index(param.axis)
    except IndexError as exc:
        raise layer.error(f"convolution_param.axis: {exc}") from None
    layer.num_spatial = bottom.num_axes - layer.channel_axis - 1
    if layer.num_spatial < 1:
        raise layer.error(f"bottom {bottom.shape} has no spatial axis after the channel "
                          f"axis {layer.channel_axis}")
    layer.kernel, layer.stride, layer.pad, layer.dilation = conv_geometry(
        layer, param, layer.num_spatial)


def conv_geometry(layer, param, num_spatial):
    """(kernel, stride, pad, dilation) per spatial axis from a ConvolutionParameter.

    Each is a repeated field given once or once per spatial axis; kernel/stride/pad also take
    the 2-D *_h/*_w form. Defaults: stride 1, pad 0, dilation 1; the kernel is required.
    """
    def repeated(name, default):
        values = tuple(int(v) for v in getattr(param, name))
        if not values:
            if default is None:
                raise layer.error("convolution_param needs kernel_size (or kernel_h and kernel_w)")
            return (default,) * num_spatial
        if len(values) not in (1, num_spatial):
            raise layer.error(f"convolution_param.{name} must be given once or once per spatial "
                              f"axis ({num_spatial}); got {len(values)} values")
        return values * num_spatial if len(values) == 1 else values

    def with_hw(name, field, default):
        has_h, has_w = param.HasField(f"{name}_h"), param.HasField(f"{name}_w")
        if not (has_h or has_w):
            return repeated(field, default)
        if num_spatial != 2:
            raise layer.error(f"{name}_h/{name}_w apply to 2-D convolution only; this input has "
                              f"{num_spatial} spatial axes: use {field}")
        if len(getattr(param, field)):
            raise layer.error(f"give either {field} or {name}_h/{name}_w, not both")
        if name != "pad" and not (has_h and has_w):  # Caffe leaves a missing pad_w at 0
            raise layer.error(f"{name}_h and {name}_w must be given together")
        return (int(getattr(param, f"{name}_h")), int(getattr(param, f"{name}_w")))

    kernel = with_hw("kernel", "kernel_size", None)
    stride = with_hw("stride", "stride", 1)
    pad = with_hw("pad", "pad", 0)
    dilation = repeated("dilation", 1)
    for name, values in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if min(values) <= 0:
            raise layer.error(f"{name} dimensions must be nonzero, got {values}")
    return kernel, stride, pad, dilation


@register_layer("Convolution")
class ConvolutionLayer(Layer):
    """N-D convolution (2-D and 3-D alike) with groups; bottom i -> top i with the same weights.

    bottom (N…, C, *spatial) with C on `axis` (default 1); top (N…, num_output, *out),
    out = (in + 2·pad − (dilation·(k−1)+1)) / stride + 1. blobs: [0] weight
    (num_output, C/group, *kernel), [1] bias (num_output,) when bias_term; default fillers
    constant 0. The forward is one window copy and one GEMM call per batch chunk (chunks only
    past COL_BUFFER_ELEMENTS, and one per thread): a GEMM per image with the bias folded in
    for wide outputs, or one GEMM on batch-last columns for narrow outputs and groups
    (batch_last). The columns stay for backward. 2-D layers with stride 1 and no groups or
    dilation run through the DFT instead where that needs under half the multiply-adds (many
    channels, small images: dft_conv.py). With Numba installed, 2-D window copies are compiled
    loops (conv_kernels.py), and wide outputs are copied and multiplied a few images at a time
    while their columns are in cache. force_nd_im2col is ignored.
    """

    min_bottom_blobs = 1
    min_top_blobs = 1
    equal_num_bottom_top_blobs = True

    def layer_setup(self, bottom, top):
        param = self.layer_param.convolution_param
        setup_conv_axes(self, bottom[0], param)
        self.channels = bottom[0].shape[self.channel_axis]
        if self.channels == 0:
            raise self.error(f"bottom {bottom[0].shape} has 0 channels on axis "
                             f"{self.channel_axis}; a convolution needs at least one")
        self.num_output, self.group = int(param.num_output), int(param.group)
        if self.num_output <= 0:
            raise self.error("convolution_param.num_output must be set (> 0)")
        if self.group <= 0 or self.channels % self.group or self.num_output % self.group:
            raise self.error(f"group {self.group} must divide both the input channels "
                             f"({self.channels}) and num_output ({self.num_output})")
        self.bias_term = param.bias_term
        self.ws = Workspace()
        self.range_ws = {}  # batch range start -> Workspace of the thread working on it
        self.cached = {}  # (bottom, range start, stop) -> whether forward's columns are kept
        if self.blobs:
            return  # already filled (shared or loaded)
        self.blobs = [self.new_param_blob(self.weight_shape())]
        fill(self.blobs[0], param.weight_filler, self.rng, where=self._where("weight_filler"))
        if self.bias_term:
            self.blobs.append(self.new_param_blob((self.num_output,)))
            fill(self.blobs[1], param.bias_filler, self.rng, where=self._where("bias_filler"))

    def _where(self, field):
        return f"layer '{self.name}' ({self.type}) {field}"

    def weight_shape(self):
        return (self.num_output, self.channels // self.group) + self.kernel

    def output_spatial(self, spatial):
        out = conv_out_size(spatial, self.kernel, self.pad, self.stride, self.dilation)
        for i, (size, o) in enumerate(zip(spatial, out)):
            if o <= 0:
                raise self.error(
                    f"kernel extent {self.dilation[i] * (self.kernel[i] - 1) + 1} (kernel "
                    f"{self.kernel[i]}, dilation {self.dilation[i]}) exceeds the padded input "
                    f"{size} + 2·{self.pad[i]} on spatial axis {i}: lower kernel_size/dilation "
                    f"or raise pad")
        return out

    def reshape(self, bottom, top):
        shape, axis = bottom[0].shape, self.channel_axis
        if len(shape) != axis + 1 + self.num_spatial:
            raise self.error(f"bottom num_axes may not change: got {shape}, set up with "
                             f"{axis + 1 + self.num_spatial} axes")
        if shape[axis] != self.channels:
            raise self.error(f"bottom has {shape[axis]} channels on axis {axis}; the weights "
                             f"expect {self.channels}")
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != shape:
                raise self.error(f"all bottoms must share one shape: bottom[0] {shape} vs "
                                 f"bottom[{i}] {blob.shape}")
        self.num = bottom[0].count(0, axis)
        self.in_spatial = shape[axis + 1:]
        self.out_spatial = self.output_spatial(self.in_spatial)
        for blob in top:
            blob.reshape(shape[:axis] + (self.num_output,) + self.out_spatial)
        self.dft = self.dft_plan(bottom[0].data)

    def dft_plan(self, x):
        """A DftPlan when the DFT route applies (2-D, stride 1, no dilation or groups, NumPy)
        and needs under DFT_BELOW of im2col's multiply-adds; else None."""
        if (self.num_spatial != 2 or self.group != 1 or set(self.stride) != {1}
                or set(self.dilation) != {1} or get_array_module(x) is not np
                or not plan_fits(self.in_spatial, self.kernel, self.pad)):
            return None
        plan = getattr(self, "dft_cached", None)
        if plan is None or (plan.h, plan.w) != self.in_spatial or plan.real != x.dtype:
            plan = self.dft_cached = DftPlan(self.channels, self.num_output, self.in_spatial,
                                             self.kernel, self.pad, x.dtype)
        direct = self.channels * self.num_output * prod(self.kernel) * prod(plan.out)
        return plan if plan.multiply_adds() < DFT_BELOW * direct else None

    def chunks(self, per_image, start=0, stop=None):
        """Batch ranges [n0, n1) of [start, stop) whose column buffer fits COL_BUFFER_ELEMENTS."""
        stop = self.num if stop is None else stop
        step = max(1, COL_BUFFER_ELEMENTS // max(1, per_image))
        return [(n0, min(stop, n0 + step)) for n0 in range(start, stop, step)]

    def workspace(self, start):
        """The scratch buffers of the thread that works on the batch range starting at start."""
        if start == 0:
            return self.ws
        return self.range_ws.setdefault(start, Workspace())

    def im2col(self, x, n0, n1, name, ws=None):
        """Columns (C·∏kernel, nb·P) of images [n0, n1) of x (N, C, *spatial), in buffer `name`."""
        xp, ws = get_array_module(x), ws or self.ws
        rows = x.shape[1] * prod(self.kernel)
        cols = prod(conv_out_size(x.shape[2:], self.kernel, self.pad, self.stride, self.dilation))
        buf = ws.scratch(name, (rows, (n1 - n0) * cols), x.dtype, xp)
        im2col(x[n0:n1], self.kernel, self.pad, self.stride, self.dilation, batch_last=True,
               out=buf, ws=ws)
        return buf

    def batch_last(self):
        """Whether the GEMMs run on batch-last columns (C·∏kernel, P·nb): narrow outputs and
        groups. Wide ones run one GEMM per image, (M, K+1) @ (K+1, P) with the bias folded in
        as a row of ones, straight into the NCHW top."""
        return self.group > 1 or self.out_spatial[-1] < BATCH_LAST_BELOW_WIDTH

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

    def compiled_columns(self, x):
        """Whether per-image columns come from the compiled kernel (conv_kernels.py): Numba
        installed, NumPy arrays, 2-D."""
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

    def columns(self, x, n0, n1, name, ws):
        if self.batch_last():
            return self.im2col_batch_last(x, n0, n1, name, ws)
        return self.im2col_per_image(x, n0, n1, name, ws)

    def split(self, function):
        """function(start, stop) over the batch, split among the threads when each thread's
        window copies are large; otherwise one range, whose GEMMs are split instead (many
        small NumPy calls in two threads spend their time handing the GIL back and forth)."""
        per_image = self.channels * prod(self.out_spatial)  # one window copy of one image
        parallel(function, self.num, min_items=max(1, PARALLEL_MIN_WORK // per_image))

    def forward(self, bottom, top):
        self.refresh_dft_product()
        for i in range(len(bottom)):
            self.split(lambda start, stop, i=i: self.forward_range(bottom[i], top[i], i, start,
                                                                  stop))

    def forward_range(self, bottom, top, i, start, stop):
        """top = W ⋆ bottom + b for images [start, stop), a chunk at a time."""
        if self.dft is not None:
            return self.forward_range_dft(bottom, top, i, start, stop)
        g, m, c = self.group, self.num_output, self.channels
        p, k = prod(self.out_spatial), c * prod(self.kernel)
        x = bottom.data.reshape((self.num, c) + self.in_spatial)
        xp, ws = get_array_module(x), self.workspace(start)
        y = top.data.reshape(self.num, m, p)
        spans = self.chunks(k * p, start, stop)
        self.cached[i, start, stop] = len(spans) == 1  # the columns stay for backward
        if not self.batch_last():  # (M, K+1): the weights and the bias column
            w = ws.scratch("w_bias", (m, k + 1), x.dtype, xp)
            w[:, :k] = self.blobs[0].data.reshape(m, k)
            w[:, k] = self.blobs[1].data if self.bias_term else 0
        else:
            w = self.blobs[0].data.reshape(g, m // g, k // g)
        for n0, n1 in spans:
            nb, name = n1 - n0, f"cols{i}" if len(spans) == 1 else "cols"
            if not self.batch_last():
                if not self.forward_per_image(x, w, y, n0, n1, name, ws):
                    self.cached[i, start, stop] = False
                continue
            cols = self.columns(x, n0, n1, name, ws)
            wx = grouped_matmul(w, cols.reshape(g, k // g, nb * p),
                                ws.scratch("gemm", (g, m // g, nb * p), x.dtype, xp))
            wx = wx.reshape(m, nb * p)
            if self.bias_term:
                wx += self.blobs[1].data[:, None]
            from_batch_last(wx.reshape(m, p, nb), y[n0:n1])  # (M, P, nb) -> (nb, M, P)

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

    def refresh_dft_product(self):
        """The DFT route's weight transform, rebuilt only when the weights changed (training
        changes them once per iteration; inference and backward reuse it)."""
        if self.dft is None:
            return
        w = self.blobs[0].data
        if (getattr(self, "dft_product_of", None) is not self.dft or
                not np.array_equal(self.dft_weights, w)):
            self.dft_weights, self.dft_product_of = w.copy(), self.dft
            self.dft_product = self.dft.product(self.dft.weights(w, self.ws), self.ws)
            self.dft_product_t = None  # made by the first backward that needs it

    def refresh_dft_adjoint(self, propagate_down):
        """The transposed weight transform for the input gradient, when one is needed."""
        if self.dft is not None and any(propagate_down) and self.dft_product_t is None:
            self.dft_product_t = self.dft.adjoint_product(self.dft_product, self.ws)

    def forward_range_dft(self, bottom, top, i, start, stop):
        """top = W ⋆ bottom + b for images [start, stop) through the DFT; the input spectrum
        stays in the range's workspace for backward."""
        x = bottom.data.reshape((self.num, self.channels) + self.in_spatial)[start:stop]
        y = top.data.reshape((self.num, self.num_output) + self.out_spatial)[start:stop]
        self.dft.forward(x, self.dft_product, y, self.workspace(start), f"spec{i}",
                         self.blobs[1].data if self.bias_term else None)
        self.cached[i, start, stop] = True

    def backward(self, top, propagate_down, bottom):
        need_w = self.param_propagate_down[0]
        need_b = self.bias_term and self.param_propagate_down[1]
        self.refresh_dft_product()
        self.refresh_dft_adjoint(propagate_down)
        for i in range(len(top)):
            if not (need_w or need_b or propagate_down[i]):
                continue
            parts = {}
            self.split(lambda start, stop, i=i, parts=parts: parts.update({
                start: self.backward_range(top[i], propagate_down[i], bottom[i], i, start,
                                           stop)}))
            ordered = [parts[start] for start in sorted(parts)]  # batch order: bit for bit
            dws = [dw for dw, _ in ordered if dw is not None]  # None: added to the blob
            if dws and self.dft is not None:  # the ranges' ∂A, summed and transformed once
                for da in dws[1:]:
                    dws[0] += da
                dws = [self.dft.weight_grad(dws[0], self.ws)]
            for dw in dws:
                self.blobs[0].diff += dw.reshape(self.blobs[0].shape)
            for _, db in ordered:
                if db is not None:
                    self.blobs[1].diff += db

    def backward_range(self, top, propagate_down, bottom, i, start, stop):
        """Bottom diff of images [start, stop) and their (weight, bias) gradient: into the
        blobs for the first range (params accumulate, returns (None, None)), else returned
        from this range's buffers."""
        if self.dft is not None:
            return self.backward_range_dft(top, propagate_down, bottom, i, start, stop)
        g, m, c = self.group, self.num_output, self.channels
        p, k = prod(self.out_spatial), c * prod(self.kernel)
        w = self.blobs[0].data.reshape(g, m // g, k // g)
        need_w = self.param_propagate_down[0]
        need_b = self.bias_term and self.param_propagate_down[1]
        dy = top.diff.reshape(self.num, m, p)
        xp, ws = get_array_module(dy), self.workspace(start)
        dw = db = None
        if need_w:
            dw = self.blobs[0].diff if start == 0 else ws.scratch("dw", w.shape, dy.dtype, xp)
            dw = dw.reshape(w.shape)
            if start:
                dw[...] = 0
        if need_b:
            db = self.blobs[1].diff if start == 0 else ws.scratch("db", (m,), dy.dtype, xp)
            if start:
                db[...] = 0
        x = bottom.data.reshape((self.num, c) + self.in_spatial)
        spans = self.chunks(k * p, start, stop)
        for n0, n1 in spans:
            keep = self.cached.get((i, start, stop), False) and len(spans) == 1
            if self.batch_last():
                if self.backward_batch_last(dy, x, bottom, dw, db, propagate_down, n0, n1, i,
                                            keep, ws):
                    self.cached[i, start, stop] = False  # the columns were overwritten
            else:
                self.backward_per_image(dy, x, bottom, dw, db, propagate_down, n0, n1, i,
                                        keep, ws)
        return (None if start == 0 else dw), (None if start == 0 else db)

    def backward_range_dft(self, top, propagate_down, bottom, i, start, stop):
        """backward_range through the DFT: ∂x by the adjoint transforms, and (∂A, ∂b) of the
        range from the spectra, returned for backward() to add in batch order (∂A, the
        gradient of the weights' transform, is summed over the ranges and then transformed
        back to ∂W once)."""
        shape = (self.num, self.channels) + self.in_spatial
        dy = top.diff.reshape((self.num, self.num_output) + self.out_spatial)[start:stop]
        ws = self.workspace(start)
        spec = None
        if self.param_propagate_down[0]:
            spec = (ws.scratch(f"spec{i}", (self.dft.bins, stop - start, self.channels),
                               self.dft.complex) if self.cached.get((i, start, stop))
                    else self.dft.forward_input(bottom.data.reshape(shape)[start:stop], ws,
                                                f"spec{i}"))
        dx = bottom.diff.reshape(shape)[start:stop] if propagate_down else None
        da, db = self.dft.backward(dy, self.dft_product_t, spec, dx, ws)
        return da, db if self.bias_term and self.param_propagate_down[1] else None

    def weight_grad(self, task, may_defer):
        """Run the weight-gradient GEMM now, or (whole batch, columns kept from forward, inside
        a net's backward) on the gradient thread while the input gradient goes on here."""
        if may_defer and getattr(self, "defer_param_grads", False):
            return defer(task)
        task()
        return False

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
