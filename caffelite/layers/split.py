"""Split: top_i = bottom (shared memory); bottom.diff = Σ_i top_i.diff."""
from ..layer import Layer
from ..registry import register_layer


@register_layer("Split")
class SplitLayer(Layer):
    """One bottom fanned out to N tops of its shape (the net inserts these for blob reuse).

    The tops share the bottom's data array (re-shared in every reshape, since a bottom reshape
    allocates new memory); each top has its own diff, summed into the bottom's in backward.
    In-place use is an error, as in Caffe.
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def reshape(self, bottom, top):
        for blob in top:
            if blob is bottom[0]:
                raise self.error("Split does not allow in-place computation; give each top "
                                 "its own name")
            blob.reshape_like(bottom[0])
            blob.share_data(bottom[0])

    def forward(self, bottom, top):
        for blob in top:  # as Caffe's Forward: (re)share, a view costs nothing
            blob.share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff[...] = top[0].diff
        for blob in top[1:]:
            diff += blob.diff
