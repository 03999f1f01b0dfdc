"""TanH: y = tanh(x)."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("TanH")
class TanHLayer(NeuronLayer):
    """Hyperbolic tangent, any shape; safe in place (top == bottom).

    The gradient 1 − y² reads only the top, so in-place use is exact. `tanh_param.engine` is
    accepted and ignored.
    """

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        xp.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * (1 - y * y)
