"""Silence: consumes its bottoms so they are not net outputs; forward does nothing."""
from ..layer import Layer
from ..registry import register_layer


@register_layer("Silence")
class SilenceLayer(Layer):
    """Any number (>= 1) of bottoms of any shape, no tops. Silence has no parameter message.

    Backward zeroes the diff of each bottom that propagates down: nothing above it uses them.
    """

    min_bottom_blobs = 1
    exact_num_top_blobs = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for blob, down in zip(bottom, propagate_down):
            if down:
                blob.diff[...] = 0
