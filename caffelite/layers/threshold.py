"""Threshold: y = 1 if x > threshold else 0."""
from ..layer import NeuronLayer
from ..registry import register_layer


@register_layer("Threshold")
class ThresholdLayer(NeuronLayer):
    """Step function, any shape; safe in place. Strict `>`: x == threshold gives 0.

    No backward (Caffe's is NOT_IMPLEMENTED): a net that needs a gradient through it fails
    with a clear error instead.
    """

    def layer_setup(self, bottom, top):
        self.threshold = float(self.layer_param.threshold_param.threshold)

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = x > x.dtype.type(self.threshold)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("Threshold has no gradient; it cannot sit between a loss and a "
                             "layer that learns (use Sigmoid or a loss on its input instead)")
