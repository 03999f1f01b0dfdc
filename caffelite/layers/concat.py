"""Concat: top = the bottoms joined along `axis` (all other axes equal)."""
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Concat")
class ConcatLayer(Layer):
    """Bottoms (..., C_i, ...) -> top (..., Σ C_i, ...) along concat_param.axis (default 1).

    The deprecated `concat_dim` (a non-negative axis) is still read; giving both is an error.
    With one bottom the top shares its data and diff, as Caffe. Backward splits the top diff
    back into the bottoms that propagate down.
    """

    min_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.concat_param
        if param.HasField("axis") and param.HasField("concat_dim"):
            raise self.error("give either concat_param.axis or the deprecated concat_dim, "
                             "not both")

    def _axis(self, blob):
        param = self.layer_param.concat_param
        axis = param.concat_dim if param.HasField("concat_dim") else param.axis
        try:
            return blob.canonical_axis_index(axis)
        except IndexError:
            raise self.error(f"concat axis {axis} is out of range for bottom shape "
                             f"{blob.shape}") from None

    def reshape(self, bottom, top):
        self.axis = axis = self._axis(bottom[0])
        first = bottom[0].shape
        for i, blob in enumerate(bottom[1:], start=1):
            shape = blob.shape
            if len(shape) != len(first) or any(
                    a != b for k, (a, b) in enumerate(zip(shape, first)) if k != axis):
                raise self.error(
                    f"bottom[{i}] '{self._bottom_name(i)}' has shape {shape} but bottom[0] "
                    f"'{self._bottom_name(0)}' has {first}; all axes except the concat axis "
                    f"{axis} must match")
        sizes = [blob.shape[axis] for blob in bottom]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        shape = list(first)
        shape[axis] = self.offsets[-1]
        top[0].reshape(shape)
        if len(bottom) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def _bottom_name(self, i):
        names = self.layer_param.bottom
        return names[i] if i < len(names) else f"#{i}"

    def forward(self, bottom, top):
        if len(bottom) == 1:
            return
        xp = get_array_module(bottom[0].data)
        xp.concatenate([blob.data for blob in bottom], axis=self.axis, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            return
        index = [slice(None)] * top[0].num_axes
        for i, blob in enumerate(bottom):
            if propagate_down[i]:
                index[self.axis] = slice(self.offsets[i], self.offsets[i + 1])
                blob.diff[...] = top[0].diff[tuple(index)]
