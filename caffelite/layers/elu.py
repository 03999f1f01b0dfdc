"""ELU: y = max(x, 0) + alpha * (exp(min(x, 0)) - 1)."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("ELU")
class ELULayer(NeuronLayer):
    """Exponential linear unit, any shape; safe in place (top == bottom) for alpha >= 0.

    Gradient, as Caffe writes it: dy·(1{x > 0} + (alpha + y)·1{x <= 0}), since
    alpha·exp(x) = y + alpha for x <= 0. In place, x > 0 exactly where y > 0, so the mask read
    from the shared data is unchanged.
    """

    def layer_setup(self, bottom, top):
        self.alpha = float(self.layer_param.elu_param.alpha)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        alpha = x.dtype.type(self.alpha)
        top[0].data[...] = xp.maximum(x, 0) + alpha * xp.expm1(xp.minimum(x, 0))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        y = top[0].data
        dy = top[0].diff
        bottom[0].diff[...] = dy * xp.where(bottom[0].data > 0, 1, y + y.dtype.type(self.alpha))
