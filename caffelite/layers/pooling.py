"""Pooling: top[n, c, y, x] = max | mean | sampled a over the window at (y, x)·stride − pad."""
import numpy as np

from ..kernels.im2col import Workspace, pool_out_size
from ..kernels.pool_ave import ave_pool, ave_pool_backward
from ..kernels.pool_compiled import max_pool_backward as max_pool_backward_kernel
from ..kernels.pool_compiled import max_pool_forward as max_pool_forward_kernel
from ..kernels.pool_max import (
    caffe_mask,
    max_pool,
    max_pool_backward,
    max_pool_tracked,
    phased,
    planes,
    scatter_to_mask,
)
from ..kernels.pool_stochastic import (
    stochastic_pool_test,
    stochastic_pool_test_backward,
    stochastic_pool_train,
)
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import compiled_for, parallel

P = pb.PoolingParameter
# The batch is split among threads when each thread's part holds this many input cells.
PARALLEL_MIN_WORK = 1 << 17  # LeNet b64 pool1 splits: -4 % per iteration, 2 threads
# A compiled kernel is one call per thread, without the GIL: even small batches split.
COMPILED_MIN_WORK = 1 << 13


def _pair(param, name, default, layer):
    """(h, w) from `name` or `name_h`+`name_w` (Caffe accepts one form, not both)."""
    has = param.HasField
    field = "kernel_size" if name == "kernel" else name
    if has(f"{name}_h") or has(f"{name}_w"):
        if has(field) or not (has(f"{name}_h") and has(f"{name}_w")):
            raise layer.error(f"pooling_param: give {field}, or both {name}_h and {name}_w")
        return int(getattr(param, f"{name}_h")), int(getattr(param, f"{name}_w"))
    if not has(field) and default is None:
        raise layer.error("pooling_param needs kernel_size (or kernel_h and kernel_w), "
                          "or global_pooling: true")
    value = int(getattr(param, field)) if has(field) else default
    return value, value


@register_layer("Pooling")
class PoolingLayer(Layer):
    """MAX, AVE or STOCHASTIC pooling of a 4-D bottom (N, C, H, W) -> top (N, C, oh, ow).

    oh = ceil((H + 2·pad − kernel)/stride) + 1 (floor with round_mode FLOOR), minus one when
    pad > 0 and the last window would start at or past H + pad. MAX may have top[1], the
    argmax mask h·W + w as float. AVE divides by the window clipped to H + pad (padding counts,
    the ceil overhang does not). STOCHASTIC (GPU-only in Caffe; no padding) samples in TRAIN
    and takes Σa²/Σa in TEST, whose exact gradient backward gives. global_pooling sets the
    kernel to H×W at every reshape. With Numba installed, MAX pooling runs compiled loops
    (kernels/pool_compiled.py) instead of NumPy passes; the NumPy routes are
    kernels/pool_max.py, pool_ave.py and pool_stochastic.py, with the same results.
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        param = self.layer_param.pooling_param
        self.method = param.pool
        if len(top) > 1 and self.method != P.MAX:
            raise self.error("only MAX pooling has a second top (the argmax mask)")
        self.global_pooling = param.global_pooling
        if self.global_pooling:
            if any(param.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")):
                raise self.error("with global_pooling the kernel is the input size: remove "
                                 "kernel_size/kernel_h/kernel_w")
            self.kernel = None
        else:
            self.kernel = _pair(param, "kernel", None, self)
            if min(self.kernel) <= 0:
                raise self.error(f"kernel dimensions must be nonzero, got {self.kernel}")
        self.pad = _pair(param, "pad", 0, self)
        self.stride = self.param_stride = _pair(param, "stride", 1, self)
        if min(self.stride) <= 0:
            raise self.error(f"stride must be nonzero, got {self.stride}")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("global_pooling needs pad 0 and stride 1")
        if max(self.pad) > 0:
            if self.method not in (P.MAX, P.AVE):
                raise self.error("padding is implemented only for MAX and AVE pooling")
            if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
        self.ceil_mode = param.round_mode == P.CEIL
        self.ws = Workspace()
        self.range_ws = {}  # batch range start -> Workspace of the thread working on it
        self.mask, self.tracks = None, {}

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width); got "
                             f"{bottom[0].shape}")
        num, channels, height, width = bottom[0].shape
        self.num = num
        if self.global_pooling:
            self.kernel = (height, width)
        # A stride beyond the padded input plus the kernel leaves the same single window:
        # bound it so the kernels never step by, e.g., 2^32 - 1 (the output is unchanged).
        self.stride = tuple(min(s, size + 2 * p + k) for s, size, p, k in zip(
            self.param_stride, (height, width), self.pad, self.kernel))
        self.out_size = tuple(pool_out_size(size, k, p, s, self.ceil_mode) for size, k, p, s
                              in zip((height, width), self.kernel, self.pad, self.stride))
        if min(self.out_size) <= 0:
            raise self.error(f"kernel {self.kernel} does not fit the input {height}x{width} "
                             f"with pad {self.pad} and stride {self.stride}")
        for blob in top:
            blob.reshape((num, channels) + self.out_size)

    def workspace(self, start):
        return self.ws if start == 0 else self.range_ws.setdefault(start, Workspace())

    def split(self, function, count, min_work=PARALLEL_MIN_WORK):
        """function(start, stop) over the batch, split among the threads when each thread's
        arrays are large (many small NumPy calls in two threads mostly wait for the GIL)."""
        per_image = max(1, count // max(1, self.num))
        parallel(function, self.num, min_items=max(1, min_work // per_image))

    def forward(self, bottom, top):
        x, geometry = bottom[0].data, (self.kernel, self.pad, self.stride, self.out_size)
        self.mask, self.tracks = None, {}
        if x.size == 0:
            return  # no images or no channels: the top is empty too, as in Caffe
        if self.method == P.MAX and compiled_for(x):
            self.mask = self.compiled_max(x, top[0].data, self.phase == pb.TRAIN or len(top) > 1)
            if len(top) > 1:
                top[1].data[...] = self.mask
        elif self.method == P.MAX and phased(self.kernel, self.out_size) and len(top) == 1:
            # A TEST net seldom runs backward; if it does, backward finds the maxima again.
            track = self.phase == pb.TRAIN

            def pool(start, stop):
                self.tracks[start, stop] = max_pool_tracked(
                    x[start:stop], *geometry, self.workspace(start), track,
                    out=top[0].data[start:stop])[1]
            self.split(pool, x.size)
        elif self.method == P.MAX and phased(self.kernel, self.out_size):
            _, self.tracks[0, self.num] = max_pool_tracked(x, *geometry, self.ws,
                                                           out=top[0].data)
            top[1].data[...] = caffe_mask(self.tracks[0, self.num], x.shape, *geometry)
        elif self.method == P.MAX:
            top[0].data[...], self.mask = max_pool(x, *geometry, ws=self.ws)
            if len(top) > 1:
                top[1].data[...] = self.mask
        elif self.method == P.AVE:
            self.split(lambda start, stop: ave_pool(
                x[start:stop], *geometry, ws=self.workspace(start),
                out=top[0].data[start:stop]), x.size)
        elif self.phase == pb.TRAIN:
            top[0].data[...], self.mask = stochastic_pool_train(
                x, self.kernel, self.stride, self.out_size, self.rng, ws=self.ws)
        else:
            top[0].data[...] = stochastic_pool_test(x, self.kernel, self.stride, self.out_size,
                                                    ws=self.ws)

    def compiled_max(self, x, top, track):
        """MAX pooling of x into top by the kernel; returns Caffe's mask with track, else None
        (without the mask the kernel does a third less: a TEST net seldom runs backward)."""
        mask = self.ws.scratch("mask", top.shape, np.int32)
        self.split(lambda start, stop: max_pool_forward_kernel(
            planes(x[start:stop]), *self.kernel, *self.pad, *self.stride, track,
            planes(top[start:stop]), planes(mask[start:stop])), x.size, COMPILED_MIN_WORK)
        return mask if track else None

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] or bottom[0].count() == 0:
            return
        dtop, shape, dx = top[0].diff, bottom[0].shape, bottom[0].diff
        geometry = (self.kernel, self.pad, self.stride)
        if self.method == P.MAX and self.mask is None and compiled_for(dx):  # no mask kept
            self.mask = self.compiled_max(bottom[0].data, self.ws.scratch(
                "top_again", dtop.shape, dtop.dtype), True)
        if self.method == P.MAX and self.mask is None:
            def route(start, stop):
                track = self.tracks.get((start, stop))
                ws = self.workspace(start)
                if track is None:  # no forward, a TEST-phase forward, or another split
                    track = max_pool_tracked(bottom[0].data[start:stop], *geometry,
                                             self.out_size, ws)[1]
                max_pool_backward(dtop[start:stop], track, (stop - start,) + shape[1:],
                                  *geometry, ws, out=dx[start:stop])
            self.split(route, dx.size)
        elif self.mask is not None and compiled_for(dx):  # MAX, STOCHASTIC in TRAIN
            self.split(lambda start, stop: max_pool_backward_kernel(
                planes(dtop[start:stop]), planes(self.mask[start:stop]),
                planes(dx[start:stop])), dx.size, COMPILED_MIN_WORK)
        elif self.method == P.AVE:
            self.split(lambda start, stop: ave_pool_backward(
                dtop[start:stop], (stop - start,) + shape[1:], *geometry,
                ws=self.workspace(start), out=dx[start:stop]), dx.size)
        elif self.method == P.STOCHASTIC and self.phase != pb.TRAIN:
            dx[...] = stochastic_pool_test_backward(dtop, bottom[0].data, self.kernel,
                                                    self.stride, ws=self.ws)
        else:
            dx[...] = scatter_to_mask(dtop, self.mask, shape)
