"""Power: y = (shift + scale * x) ^ power."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Power")
class PowerLayer(NeuronLayer):
    """Elementwise power of an affine map, any shape; safe in place.

    Gradient dy·power·scale·(shift + scale·x)^(power − 1). Caffe's special cases are kept:
    power·scale == 0 gives a constant top (1 for power 0, shift^power otherwise) and a zero
    gradient; power == 1 gives the constant gradient scale. Caffe writes the general case as
    power·y/x, which is 0/0 at x = 0 when shift is 0; the direct form here is finite there.
    In place, forward keeps a copy of x because backward needs it.
    """

    def layer_setup(self, bottom, top):
        param = self.layer_param.power_param
        self.power = float(param.power)
        self.scale = float(param.scale)
        self.shift = float(param.shift)
        self.diff_scale = self.power * self.scale
        self._bottom_copy = None

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        if self.diff_scale == 0:
            top[0].data[...] = 1.0 if self.power == 0 else self.shift ** self.power
            return
        self._bottom_copy = x.copy() if top[0] is bottom[0] else None
        t = self.shift + self.scale * x
        top[0].data[...] = t if self.power == 1 else xp.power(t, x.dtype.type(self.power))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dy = top[0].diff
        if self.diff_scale == 0 or self.power == 1:
            bottom[0].diff[...] = dy * dy.dtype.type(self.diff_scale)
            return
        x = self._bottom_copy if self._bottom_copy is not None else bottom[0].data
        t = self.shift + self.scale * x
        if self.power == 2:
            grad = t
        else:
            grad = xp.power(t, x.dtype.type(self.power - 1))
        bottom[0].diff[...] = dy * (self.diff_scale * grad)
