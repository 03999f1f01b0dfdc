"""Flatten: top = bottom reshaped with axes [axis, end_axis] merged into one (shared memory)."""
from ..layer import ViewLayer
from ..registry import register_layer


@register_layer("Flatten")
class FlattenLayer(ViewLayer):
    """(d_0 .. d_{a-1}, d_a .. d_e, d_{e+1} ..) -> (d_0 .. d_{a-1}, d_a·..·d_e, d_{e+1} ..).

    flatten_param: axis (default 1), end_axis (default -1, the last). The top shares the
    bottom's data and diff (re-shared in every reshape), so forward and backward copy nothing.
    In-place use is an error, as in Caffe.
    """

    def top_shape(self, bottom):
        param = self.layer_param.flatten_param
        try:
            start = bottom.canonical_axis_index(param.axis)
            end = bottom.canonical_axis_index(param.end_axis)
        except IndexError as exc:
            raise self.error(f"flatten_param: {exc}") from None
        shape = bottom.shape
        if end < start:
            raise self.error(f"flatten_param.end_axis ({param.end_axis}) comes before axis "
                             f"({param.axis}) for a bottom of shape {shape}")
        return shape[:start] + (bottom.count(start, end + 1),) + shape[end + 1:]
