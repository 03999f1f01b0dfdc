"""Slice: the bottom cut along `axis` at slice_point(s) (or into equal parts), one top each."""
import itertools

from ..layer import Layer
from ..registry import register_layer


@register_layer("Slice")
class SliceLayer(Layer):
    """Bottom (..., C, ...) -> tops (..., C_j, ...) along slice_param.axis (default 1).

    slice_point: len(top) − 1 strictly increasing cut positions inside (0, C); without them
    C must divide evenly by len(top). The deprecated `slice_dim` is still read; giving both
    it and `axis` is an error. With one top it shares the bottom's data and diff, as Caffe.
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.slice_param
        if param.HasField("axis") and param.HasField("slice_dim"):
            raise self.error("give either slice_param.axis or the deprecated slice_dim, "
                             "not both")
        self.slice_points = [int(p) for p in param.slice_point]

    def reshape(self, bottom, top):
        param = self.layer_param.slice_param
        axis = param.slice_dim if param.HasField("slice_dim") else param.axis
        try:
            self.axis = bottom[0].canonical_axis_index(axis)
        except IndexError:
            raise self.error(f"slice axis {axis} is out of range for bottom shape "
                             f"{bottom[0].shape}") from None
        size = bottom[0].shape[self.axis]
        points = self.slice_points
        if points:
            if len(points) != len(top) - 1:
                raise self.error(f"{len(points)} slice_point(s) make {len(points) + 1} tops, "
                                 f"but the layer has {len(top)}")
            bounds = [0] + points + [size]
            if any(a >= b for a, b in itertools.pairwise(bounds)):
                raise self.error(f"slice_point {points} must increase strictly and lie inside "
                                 f"(0, {size}) for axis {self.axis} of bottom shape "
                                 f"{bottom[0].shape}")
        else:
            if size % len(top):
                raise self.error(f"axis {self.axis} of bottom shape {bottom[0].shape} "
                                 f"({size}) does not split into {len(top)} equal parts; give "
                                 f"slice_point")
            step = size // len(top)
            bounds = [step * j for j in range(len(top) + 1)]
        self.bounds = bounds
        for j, blob in enumerate(top):
            shape = list(bottom[0].shape)
            shape[self.axis] = bounds[j + 1] - bounds[j]
            blob.reshape(shape)
        if len(top) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def _index(self, j, ndim):
        index = [slice(None)] * ndim
        index[self.axis] = slice(self.bounds[j], self.bounds[j + 1])
        return tuple(index)

    def forward(self, bottom, top):
        if len(top) == 1:
            return
        x = bottom[0].data
        for j, blob in enumerate(top):
            blob.data[...] = x[self._index(j, x.ndim)]

    def backward(self, top, propagate_down, bottom):
        if len(top) == 1 or not propagate_down[0]:
            return
        diff = bottom[0].diff
        for j, blob in enumerate(top):
            diff[self._index(j, diff.ndim)] = blob.diff
