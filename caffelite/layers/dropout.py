"""Dropout: y = x * mask / (1 - ratio) in TRAIN, mask ~ Bernoulli(1 - ratio); y = x in TEST."""
import numpy as np

from ..layer import TRAIN, NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Dropout")
class DropoutLayer(NeuronLayer):
    """Inverted dropout, any shape; safe in place (backward reads only the mask and top diff).

    TRAIN draws a fresh mask from `self.rng` each forward (seeded by the net, so runs repeat)
    and scales kept units by 1/(1 − dropout_ratio), so TEST is the identity.
    """

    def layer_setup(self, bottom, top):
        self.ratio = float(self.layer_param.dropout_param.dropout_ratio)
        if not 0 <= self.ratio < 1:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio:g}")
        self.scale = 1.0 / (1.0 - self.ratio)
        self._mask = None

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.phase != TRAIN:
            if top[0] is not bottom[0]:
                top[0].data[...] = x
            return
        xp = get_array_module(x)
        # Kept with probability 1 − ratio, as Caffe's caffe_rng_bernoulli(1 − ratio).
        draw_dtype = np.float32 if x.dtype == np.float32 else np.float64
        keep = self.rng.random(x.shape, dtype=draw_dtype) >= self.ratio
        # The mask holds 0 or 1/(1 − ratio), so forward and backward are one multiply each.
        self._mask = xp.asarray(keep * x.dtype.type(self.scale), dtype=x.dtype)
        top[0].data[...] = x * self._mask

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if self.phase != TRAIN:
            if top[0] is not bottom[0]:
                bottom[0].diff[...] = dy
            return
        bottom[0].diff[...] = dy * self._mask
