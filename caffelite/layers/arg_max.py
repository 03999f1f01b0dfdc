"""ArgMax: top = the indices (and optionally values) of the top_k largest entries."""
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("ArgMax")
class ArgMaxLayer(Layer):
    """Bottom (N, ...) -> indices of the top_k maxima, largest first, as floats.

    Without `axis`: the maximum over each item's count(1) values; top (N, 1, top_k), or
    (N, 2, top_k) with out_max_val (row 0 the indices, row 1 the values), padded with
    trailing 1s to the bottom's number of axes. With `axis`: top = bottom shape with
    shape[axis] = top_k, holding the values if out_max_val, else the indices.
    Ties, as Caffe's partial_sort of (value, index) pairs: the larger index ranks first.
    No backward.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.argmax_param
        self.top_k = int(param.top_k)
        self.out_max_val = bool(param.out_max_val)
        self.has_axis = param.HasField("axis")
        if self.top_k < 1:
            raise self.error(f"top_k must be at least 1, got {self.top_k}")

    def reshape(self, bottom, top):
        param = self.layer_param.argmax_param
        shape = bottom[0].shape
        if not shape:
            raise self.error("bottom is a scalar (0 axes); ArgMax ranks the values of each "
                             "item along an axis: give the bottom at least one axis")
        if self.has_axis:
            try:
                self.axis = bottom[0].canonical_axis_index(param.axis)
            except IndexError:
                raise self.error(f"axis {param.axis} is out of range for bottom shape "
                                 f"{shape}") from None
            size = shape[self.axis]
            top_shape = list(shape)
            top_shape[self.axis] = self.top_k
        else:
            size = bottom[0].count(1)
            top_shape = [1] * max(3, len(shape))
            top_shape[0] = shape[0]
            top_shape[1] = 2 if self.out_max_val else 1
            top_shape[2] = self.top_k
        if self.top_k > size:
            raise self.error(f"top_k ({self.top_k}) exceeds the {size} values to rank in "
                             f"bottom shape {shape}")
        top[0].reshape(top_shape)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        if x.size == 0:
            return  # an empty batch: an empty top
        if not self.has_axis:
            x = x.reshape(x.shape[0], -1)  # (N, count(1))
        axis = self.axis if self.has_axis else 1
        # A stable ascending sort keeps equal values in index order; reversing it ranks the
        # larger index first among ties, as std::greater on (value, index) pairs does.
        order = xp.argsort(x, axis=axis, kind="stable")
        order = xp.flip(order, axis=axis)
        index = xp.take(order, xp.arange(self.top_k), axis=axis)
        values = xp.take_along_axis(x, index, axis=axis)
        if self.has_axis:
            top[0].data[...] = values if self.out_max_val else index
        elif self.out_max_val:
            top[0].data[...] = xp.stack([index, values], axis=1).reshape(top[0].shape)
        else:
            top[0].data[...] = index.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("ArgMax has no gradient; nothing that learns may sit below it")
