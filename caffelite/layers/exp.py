"""Exp: y = base ^ (shift + scale * x), base e when base is -1."""
import math

import numpy as np

from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Exp")
class ExpLayer(NeuronLayer):
    """Elementwise exponential, any shape; safe in place (the gradient reads only the top).

    As Caffe: y = base^shift · exp(ln(base)·scale·x); dx = dy·y·ln(base)·scale.
    `base` must be -1 (meaning e) or positive.
    """

    def layer_setup(self, bottom, top):
        param = self.layer_param.exp_param
        base = float(param.base)
        if base != -1 and base <= 0:
            raise self.error(f"exp_param.base must be -1 (for e) or positive, got {base:g}")
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner_scale = log_base * float(param.scale)
        shift = float(param.shift)
        try:
            self.outer_scale = 1.0 if shift == 0 else (
                math.exp(shift) if base == -1 else base ** shift)
        except OverflowError:
            self.outer_scale = math.inf
        largest = float(np.finfo(self.dtype).max)
        for name, value in (("base^shift", self.outer_scale),
                            ("ln(base)·scale", self.inner_scale)):
            if not abs(value) <= largest:  # NaN too
                raise self.error(f"exp_param: {name} = {value:g} does not fit a "
                                 f"{self.dtype.name} (base {base:g}, shift {shift:g}, scale "
                                 f"{float(param.scale):g}); every output would be inf or NaN")

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        y = xp.exp(x.dtype.type(self.inner_scale) * x)
        if self.outer_scale != 1:
            y *= y.dtype.type(self.outer_scale)
        top[0].data[...] = y

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].diff
            bottom[0].diff[...] = dy * top[0].data * dy.dtype.type(self.inner_scale)
