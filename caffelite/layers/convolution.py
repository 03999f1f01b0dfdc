"""Convolution: y[n, o] = Σ_c W[o, c] ⋆ x[n, group(o)·C/G + c] + b[o], by im2col and one GEMM
(or per-frequency GEMMs through the DFT)."""
from math import prod

from ..fillers import fill
from ..kernels.conv_route_batch_last import BatchLastRoute
from ..kernels.conv_route_dft import DftRoute
from ..kernels.conv_route_per_image import PerImageRoute
from ..kernels.im2col import Workspace, conv_out_size, im2col
from ..layer import Layer
from ..registry import register_layer
from ..runtime import defer, get_array_module, parallel

# Column buffers above this many elements (256 MiB of float32) are filled a batch chunk at a time.
COL_BUFFER_ELEMENTS = 1 << 26
# Outputs narrower than this run in the batch-last layout (see im2col.py): NumPy copies short
# NCHW window rows slowly, while wide ones (a first layer's) are cheaper without transposes.
BATCH_LAST_BELOW_WIDTH = 20
# The batch is split among threads when one window copy of a thread's part has this many cells.
PARALLEL_MIN_WORK = 1 << 12
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
class ConvolutionLayer(BatchLastRoute, PerImageRoute, DftRoute, Layer):
    """N-D convolution (2-D and 3-D alike) with groups; bottom i -> top i with the same weights.

    bottom (N…, C, *spatial) with C on `axis` (default 1); top (N…, num_output, *out),
    out = (in + 2·pad − (dilation·(k−1)+1)) / stride + 1. blobs: [0] weight
    (num_output, C/group, *kernel), [1] bias (num_output,) when bias_term; default fillers
    constant 0. This class keeps the layer contract and picks a route per reshape; each route
    is a mixin in kernels/: one window copy and one GEMM call per batch chunk (chunks only
    past COL_BUFFER_ELEMENTS, and one per thread), either a GEMM per image with the bias
    folded in for wide outputs (conv_route_per_image.py; with Numba a compiled window copy,
    a few images at a time while their columns are in cache) or one GEMM on batch-last
    columns for narrow outputs and groups (conv_route_batch_last.py). The columns stay for
    backward. 2-D layers with stride 1 and no groups or dilation run through the DFT instead
    where that needs under half the multiply-adds (many channels, small images:
    conv_route_dft.py). force_nd_im2col is ignored.
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
        """top = W ⋆ bottom + b for images [start, stop), a chunk at a time, on this layer's
        route (DFT, per image, or batch-last columns)."""
        if self.dft is not None:
            return self.forward_range_dft(bottom, top, i, start, stop)
        m, c = self.num_output, self.channels
        p, k = prod(self.out_spatial), c * prod(self.kernel)
        x = bottom.data.reshape((self.num, c) + self.in_spatial)
        ws = self.workspace(start)
        y = top.data.reshape(self.num, m, p)
        spans = self.chunks(k * p, start, stop)
        self.cached[i, start, stop] = len(spans) == 1  # the columns stay for backward
        w = None if self.batch_last() else self.weights_with_bias(x.dtype, ws)
        for n0, n1 in spans:
            name = f"cols{i}" if len(spans) == 1 else "cols"
            if self.batch_last():
                self.forward_batch_last(x, y, n0, n1, name, ws)
            elif not self.forward_per_image(x, w, y, n0, n1, name, ws):
                self.cached[i, start, stop] = False

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

    def weight_grad(self, task, may_defer):
        """Run the weight-gradient GEMM now, or (whole batch, columns kept from forward, inside
        a net's backward) on the gradient thread while the input gradient goes on here."""
        if may_defer and getattr(self, "defer_param_grads", False):
            return defer(task)
        task()
        return False
