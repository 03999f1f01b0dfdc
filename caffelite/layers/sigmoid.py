"""Sigmoid: y = 1 / (1 + exp(-x)), computed as 0.5 * tanh(0.5 * x) + 0.5."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Sigmoid")
class SigmoidLayer(NeuronLayer):
    """Logistic function, any shape; safe in place (top == bottom).

    Caffe's tanh form never overflows for large |x|. The gradient y·(1 − y) reads only the top,
    so in-place use is exact. `sigmoid_param.engine` is accepted and ignored.
    """

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        half = x.dtype.type(0.5)
        top[0].data[...] = half * xp.tanh(half * x) + half

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * y * (1 - y)
