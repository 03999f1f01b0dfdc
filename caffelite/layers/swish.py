"""Swish: y = x * sigmoid(beta * x)."""
from ..layer import NeuronLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Swish")
class SwishLayer(NeuronLayer):
    """Swish (SiLU for beta = 1), any shape; safe in place.

    Forward keeps s = sigmoid(beta·x) (Caffe's sigmoid_output_); the gradient
    dy·(beta·y + s·(1 − beta·y)) then reads only s and the top.
    """

    def layer_setup(self, bottom, top):
        self.beta = float(self.layer_param.swish_param.beta)
        self._sigmoid = None

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        half = x.dtype.type(0.5)
        # The tanh form of the sigmoid, as Caffe's Sigmoid layer: no overflow for large |x|.
        self._sigmoid = half * xp.tanh(half * x.dtype.type(self.beta) * x) + half
        top[0].data[...] = x * self._sigmoid

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            s = self._sigmoid
            beta_y = top[0].data * top[0].data.dtype.type(self.beta)
            bottom[0].diff[...] = top[0].diff * (beta_y + s * (1 - beta_y))
