"""Log: y = log_base(shift + scale * x), the natural log when base is -1."""
import math

from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Log")
class LogLayer(NeuronLayer):
    """Elementwise logarithm of an affine map, any shape; safe in place.

    dx = dy·scale / (ln(base)·(shift + scale·x)). `base` must be -1 (meaning e) or positive.
    In place, forward keeps a copy of x because backward needs it.
    """

    def layer_setup(self, bottom, top):
        param = self.layer_param.log_param
        base = float(param.base)
        if base != -1 and base <= 0:
            raise self.error(f"log_param.base must be -1 (for e) or positive, got {base:g}")
        log_base = 1.0 if base == -1 else math.log(base)
        if log_base == 0:
            raise self.error("log_param.base must not be 1 (log base 1 is undefined)")
        self.base_scale = 1.0 / log_base
        self.scale = float(param.scale)
        self.shift = float(param.shift)
        self._bottom_copy = None

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        self._bottom_copy = x.copy() if top[0] is bottom[0] else None
        y = xp.log(self.shift + self.scale * x)
        if self.base_scale != 1:
            y *= y.dtype.type(self.base_scale)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = self._bottom_copy if self._bottom_copy is not None else bottom[0].data
        dy = top[0].diff
        # (shift + scale·x) keeps x's dtype: the Python floats are weak scalars in NumPy 2.
        bottom[0].diff[...] = dy * (self.scale * self.base_scale) / (self.shift + self.scale * x)
