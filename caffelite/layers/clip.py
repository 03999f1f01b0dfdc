"""Clip: y = min(max(x, min), max)."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Clip")
class ClipLayer(NeuronLayer):
    """Clamp to [min, max], any shape; safe in place.

    clip_param.min and .max are both required (as in Caffe's schema). The gradient passes
    where min <= x <= max (both ends included, as Caffe). In place, forward keeps that mask,
    since y always lies inside the range.
    """

    def layer_setup(self, bottom, top):
        param = self.layer_param.clip_param
        missing = [f for f in ("min", "max") if not param.HasField(f)]
        if missing:
            raise self.error(f"clip_param needs both min and max; {' and '.join(missing)} "
                             f"missing (e.g. clip_param {{ min: -1 max: 1 }})")
        self.min, self.max = float(param.min), float(param.max)
        if self.min > self.max:
            raise self.error(f"clip_param.min ({self.min:g}) is greater than max "
                             f"({self.max:g})")
        self._mask = None

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        lo, hi = x.dtype.type(self.min), x.dtype.type(self.max)
        self._mask = ((x >= lo) & (x <= hi)) if top[0] is bottom[0] else None
        xp.clip(x, lo, hi, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self._mask is not None:
            mask = self._mask
        else:
            x = bottom[0].data
            mask = (x >= x.dtype.type(self.min)) & (x <= x.dtype.type(self.max))
        bottom[0].diff[...] = top[0].diff * mask
