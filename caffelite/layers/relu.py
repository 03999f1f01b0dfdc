"""ReLU: y = max(x, 0) + negative_slope * min(x, 0)."""
from ..backend import get_array_module
from ..layer import NeuronLayer
from ..registry import register_layer


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    """Leaky rectifier, any shape; safe in place (top == bottom).

    Gradient 1 for x > 0 and negative_slope for x <= 0 (Caffe's choice at the kink).
    """

    def layer_setup(self, bottom, top):
        self.negative_slope = float(self.layer_param.relu_param.negative_slope)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        if self.negative_slope == 0:
            xp.maximum(x, 0, out=top[0].data)
        else:
            slope = x.dtype.type(self.negative_slope)
            top[0].data[...] = xp.maximum(x, 0) + slope * xp.minimum(x, 0)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        # In place, bottom.data already holds y; sign(y) == sign(x) for slope >= 0, so the mask
        # read from it is the same.
        positive = bottom[0].data > 0
        dy = top[0].diff
        if self.negative_slope == 0:
            xp.multiply(dy, positive, out=bottom[0].diff)  # elementwise: safe in place
        else:
            slope = xp.where(positive, dy.dtype.type(1), dy.dtype.type(self.negative_slope))
            bottom[0].diff[...] = dy * slope
