"""SPP: top = concat over levels l of flatten(pool(bottom)), 2^l bins, kernel = ceil(H/2^l)."""
from math import ceil

from ..kernels.im2col import Workspace, pool_out_size
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from .pooling import (
    ave_pool,
    ave_pool_backward,
    max_pool,
    scatter_to_mask,
    stochastic_pool_test,
    stochastic_pool_test_backward,
    stochastic_pool_train,
)

P = pb.SPPParameter


@register_layer("SPP")
class SPPLayer(Layer):
    """Spatial pyramid pooling of (N, C, H, W) into a fixed-length (N, C·Σ_l bins_l²).

    Level l: bins = 2^l, kernel = stride = ceil(H/bins), pad = (kernel·bins − H + 1)/2 (the
    same for W), pooled with Pooling's rules. Caffe quirk kept: pyramid_height 1 gives the
    single level unflattened, (N, C, 1, 1). Padding needs pad < kernel: inputs smaller than
    the finest grid are an error, as in Caffe.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.spp_param
        self.height = int(param.pyramid_height)
        if self.height < 1:
            raise self.error("spp_param.pyramid_height must be set (>= 1)")
        self.method = param.pool
        # No input reaches level 33 (2^32 bins a side exceed any blob dimension, and reshape
        # refuses a level whose bins outnumber the pixels), so pyramid_height 2^31 - 1 never
        # builds its lists.
        self.ws = [Workspace() for _ in range(min(self.height, 33))]
        self.masks = [None] * min(self.height, 33)

    def _level(self, level, height, width):
        """(kernel, pad, stride, out_size) of one pyramid level."""
        bins = 2 ** level
        kernel = (ceil(height / bins), ceil(width / bins))
        pad = tuple((k * bins - size + 1) // 2 for k, size in zip(kernel, (height, width)))
        if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
            raise self.error(f"input {height}x{width} is too small for pyramid level {level} "
                             f"({bins}x{bins} bins): pad {pad} >= kernel {kernel}")
        if max(pad) > 0 and self.method == P.STOCHASTIC:
            raise self.error(f"pyramid level {level} needs pad {pad} for {height}x{width}; "
                             f"STOCHASTIC pooling takes no padding")
        out = tuple(pool_out_size(s, k, p, k) for s, k, p in zip((height, width), kernel, pad))
        return kernel, pad, kernel, out

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width); got "
                             f"{bottom[0].shape}")
        num, channels, height, width = bottom[0].shape
        if min(height, width) == 0:
            raise self.error(f"bottom {bottom[0].shape} has an empty image ({height}x{width}); "
                             "a pyramid level pools at least one pixel per bin")
        self.levels = [self._level(level, height, width) for level in range(self.height)]
        if self.height == 1:
            top[0].reshape((num, channels) + self.levels[0][3])
        else:
            top[0].reshape(num, sum(channels * o[0] * o[1] for *_, o in self.levels))

    def forward(self, bottom, top):
        if bottom[0].count() == 0:
            return  # no images or no channels: an empty top
        x, num = bottom[0].data, bottom[0].shape[0]
        y, start = top[0].data.reshape(num, -1), 0
        for level, (kernel, pad, stride, out) in enumerate(self.levels):
            ws = self.ws[level]
            if self.method == P.MAX:
                pooled, self.masks[level] = max_pool(x, kernel, pad, stride, out, ws=ws)
            elif self.method == P.AVE:
                pooled = ave_pool(x, kernel, pad, stride, out, ws=ws)
            elif self.phase == pb.TRAIN:
                pooled, self.masks[level] = stochastic_pool_train(x, kernel, stride, out,
                                                                  self.rng, ws=ws)
            else:
                pooled = stochastic_pool_test(x, kernel, stride, out, ws=ws)
            y[:, start:start + pooled[0].size] = pooled.reshape(num, -1)
            start += pooled[0].size

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] or bottom[0].count() == 0:
            return
        shape, num = bottom[0].shape, bottom[0].shape[0]
        dy, start = top[0].diff.reshape(num, -1), 0
        bottom[0].diff[...] = 0
        for level, (kernel, pad, stride, out) in enumerate(self.levels):
            size = shape[1] * out[0] * out[1]
            dtop = dy[:, start:start + size].reshape(shape[:2] + out)
            start += size
            if self.method == P.AVE:
                dx = ave_pool_backward(dtop, shape, kernel, pad, stride, ws=self.ws[level])
            elif self.method == P.STOCHASTIC and self.phase != pb.TRAIN:
                dx = stochastic_pool_test_backward(dtop, bottom[0].data, kernel, stride,
                                                   ws=self.ws[level])
            else:
                dx = scatter_to_mask(dtop, self.masks[level], shape)
            bottom[0].diff[...] += dx  # the levels' gradients sum, as Caffe's Split does
