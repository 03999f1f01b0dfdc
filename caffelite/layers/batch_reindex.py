"""BatchReindex: top[i] = bottom[0][index[i]] (a gather along the first axis)."""
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("BatchReindex")
class BatchReindexLayer(Layer):
    """Bottoms (data (N, ...), index (M,)) -> top (M, ...). No parameter message.

    Indices are floats holding whole numbers in [0, N); they may repeat or skip items.
    Backward sums the top diffs of each source item (repeats add up, skipped items get 0);
    no gradient to the indices.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        if bottom[0].num_axes == 0:
            raise self.error("bottom[0] is a scalar; BatchReindex picks items along its first "
                             "axis")
        if bottom[1].num_axes != 1:
            raise self.error(f"the index bottom must be 1-D, got shape {bottom[1].shape}")
        top[0].reshape(bottom[1].shape[:1] + bottom[0].shape[1:])

    def _indices(self, bottom):
        xp = get_array_module(bottom[1].data)
        raw = bottom[1].data
        index = raw.astype(xp.int64)
        bad = (index != raw) | (index < 0) | (index >= bottom[0].shape[0])
        if bad.any():
            raise self.error(f"index {float(raw[bad][0]):g} is not a whole number in [0, "
                             f"{bottom[0].shape[0]}) (the batch size of bottom[0])")
        return index

    def forward(self, bottom, top):
        self._index = self._indices(bottom)
        top[0].data[...] = bottom[0].data[self._index]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to BatchReindex's index bottom")
        if propagate_down[0]:
            xp = get_array_module(top[0].diff)
            bottom[0].diff[...] = 0
            # add.at sums the rows of repeated indices (fancy assignment would keep one).
            xp.add.at(bottom[0].diff, self._index, top[0].diff)

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0
