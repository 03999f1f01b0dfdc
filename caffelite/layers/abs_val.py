"""AbsVal: y = |x|."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("AbsVal")
class AbsValLayer(NeuronLayer):
    """Absolute value, any shape. Gradient dy·sign(x) (0 at x = 0, as Caffe's caffe_sign).

    Not in place: the sign of x is lost once y overwrites it, so Caffe refuses top == bottom
    and so do we. AbsVal has no parameter message.
    """

    allow_in_place = False

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        xp.abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = get_array_module(top[0].diff)
            bottom[0].diff[...] = top[0].diff * xp.sign(bottom[0].data)
