"""ReLU: y = max(x, 0) + negative_slope * min(x, 0)."""
import numpy as np

from ..kernels.im2col import Workspace
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import elementwise, get_array_module

# np.maximum and np.minimum run their SIMD loops only on two array operands: against the
# scalar 0 they take scalar loops 2-3x slower. The rectifier compares with a block of zeros
# this long instead (which also keeps the leaky form's temporaries in the cache).
ZEROS_BLOCK = 1 << 16


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    """Leaky rectifier, any shape; safe in place (top == bottom).

    Gradient 1 for x > 0 and negative_slope for x <= 0 (Caffe's choice at the kink).
    """

    def layer_setup(self, bottom, top):
        self.negative_slope = float(self.layer_param.relu_param.negative_slope)
        self.ws = Workspace()

    def forward(self, bottom, top):
        x = bottom[0].data
        xp, slope = get_array_module(x), x.dtype.type(self.negative_slope)
        zeros = self.zeros_block(x) if xp is np else None

        def rectify(x, y, zero):
            if slope == 0:
                xp.maximum(x, zero, out=y)
            else:
                y[...] = xp.maximum(x, zero) + slope * xp.minimum(x, zero)

        def by_blocks(x, y):
            if zeros is None:
                return rectify(x, y, 0)
            for start in range(0, x.size, zeros.size):
                part = slice(start, start + zeros.size)
                rectify(x[part], y[part], zeros[:x[part].size])
        elementwise(by_blocks, x, top[0].data)

    def zeros_block(self, x):
        """Kept zeros of x's dtype, 1 to ZEROS_BLOCK long (an empty x takes no block, but the
        loop's step must not be 0)."""
        self.zeros = self.ws.padded("zeros", (max(1, min(x.size, ZEROS_BLOCK)),), x.dtype, 0)
        return self.zeros

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        xp, slope = get_array_module(dy), dy.dtype.type(self.negative_slope)

        # In place, bottom.data already holds y; sign(y) == sign(x) for slope >= 0, so the mask
        # read from it is the same. Each value is read before it is written: safe in place.
        def gradient(x, dy, dx):
            if slope == 0:
                xp.multiply(dy, x > 0, out=dx)
            else:
                dx[...] = dy * xp.where(x > 0, dy.dtype.type(1), slope)
        elementwise(gradient, bottom[0].data, dy, bottom[0].diff)
