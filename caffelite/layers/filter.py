"""Filter: top_i = bottom_i[selector != 0] along the first axis; the last bottom selects."""
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Filter")
class FilterLayer(Layer):
    """Bottoms (x_0 (N, ...), ..., x_{k-1} (N, ...), selector (N, 1, ...)) -> k tops (M, ...).

    M is the number of non-zero selector entries; each reshape (before every forward) counts
    them again. As Caffe, the first reshape (at setup, before any data) keeps all N items so
    the layers above can be set up. Backward scatters each top diff into the kept rows and
    zeroes the dropped ones; the selector gets no gradient. No parameter message.
    """

    min_bottom_blobs = 2
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise self.error(f"needs one top per filtered bottom: {len(bottom) - 1} bottoms "
                             f"before the selector, {len(top)} tops")
        self._first_reshape = True
        self._kept = None

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if any(d != 1 for d in selector.shape[1:]):
            raise self.error(f"the selector (last bottom) must have shape (N,) or (N, 1, ...), "
                             f"got {selector.shape}")
        n = selector.shape[0] if selector.num_axes else 1
        for i, blob in enumerate(bottom[:-1]):
            if not blob.num_axes or blob.shape[0] != n:
                raise self.error(f"bottom[{i}] has shape {blob.shape}; its first axis must "
                                 f"equal the selector's ({n})")
        xp = get_array_module(selector.data)
        self._kept = xp.flatnonzero(selector.data.reshape(-1))
        kept = n if self._first_reshape else len(self._kept)
        self._first_reshape = False
        for blob, out in zip(bottom, top):
            out.reshape((kept,) + blob.shape[1:])

    def forward(self, bottom, top):
        for blob, out in zip(bottom, top):
            out.data[...] = blob.data[self._kept]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[-1]:
            raise self.error("cannot backpropagate to Filter's selector (the last bottom)")
        for i, out in enumerate(top):
            if propagate_down[i]:
                bottom[i].diff[...] = 0
                bottom[i].diff[self._kept] = out.diff

    def allow_force_backward(self, bottom_index):
        return bottom_index != len(self.layer_param.bottom) - 1
