"""BNLL: y = log(1 + exp(x)) (binomial normal log likelihood, a stable softplus)."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("BNLL")
class BNLLLayer(NeuronLayer):
    """Softplus, any shape; safe in place (top == bottom). BNLL has no parameter message.

    Forward as Caffe: x + log(1 + exp(−x)) for x > 0, log(1 + exp(x)) otherwise, so exp never
    overflows. Gradient sigmoid(x) = 1 − exp(−y), read from the top (exact in place; Caffe
    reads the bottom and is wrong in place).
    """

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        # log1p(exp(-|x|)) + max(x, 0) is both of Caffe's branches at once.
        top[0].data[...] = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = get_array_module(top[0].diff)
            bottom[0].diff[...] = top[0].diff * -xp.expm1(-top[0].data)
