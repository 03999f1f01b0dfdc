"""Flatten: top = bottom reshaped with axes [axis, end_axis] merged into one (shared memory)."""
from ..layer import Layer
from ..registry import register_layer


@register_layer("Flatten")
class FlattenLayer(Layer):
    """(d_0 .. d_{a-1}, d_a .. d_e, d_{e+1} ..) -> (d_0 .. d_{a-1}, d_a·..·d_e, d_{e+1} ..).

    flatten_param: axis (default 1), end_axis (default -1, the last). The top shares the
    bottom's data and diff (re-shared in every reshape), so forward and backward copy nothing.
    In-place use is an error, as in Caffe.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("Flatten does not allow in-place computation; name the top "
                             "differently from the bottom")
        param = self.layer_param.flatten_param
        try:
            start = bottom[0].canonical_axis_index(param.axis)
            end = bottom[0].canonical_axis_index(param.end_axis)
        except IndexError as exc:
            raise self.error(f"flatten_param: {exc}") from None
        shape = bottom[0].shape
        if end < start:
            raise self.error(f"flatten_param.end_axis ({param.end_axis}) comes before axis "
                             f"({param.axis}) for a bottom of shape {shape}")
        top[0].reshape(shape[:start] + (bottom[0].count(start, end + 1),) + shape[end + 1:])
        top[0].share_data(bottom[0])
        top[0].share_diff(bottom[0])

    def forward(self, bottom, top):
        pass  # top shares the bottom's data

    def backward(self, top, propagate_down, bottom):
        pass  # top shares the bottom's diff
