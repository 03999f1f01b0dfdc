"""Reshape: top = bottom with axes [axis, axis + num_axes) replaced by reshape_param.shape."""
from ..layer import ViewLayer
from ..registry import register_layer


@register_layer("Reshape")
class ReshapeLayer(ViewLayer):
    """Change the shape without touching the data; the top shares the bottom's data and diff.

    reshape_param.shape: a 0 copies the bottom's dim at that position, one -1 is inferred from
    the count. axis (default 0; negative counts from the end, -1 = after the last axis) and
    num_axes (default -1 = all remaining) select the bottom axes that are replaced. In-place use
    is an error, as in Caffe.
    """

    def layer_setup(self, bottom, top):
        self.dims = [int(d) for d in self.layer_param.reshape_param.shape.dim]
        if sum(d == -1 for d in self.dims) > 1:
            raise self.error(f"new shape {self.dims} contains multiple -1 dims; at most one "
                             "may be inferred")
        if any(d < -1 for d in self.dims):
            raise self.error(f"new shape {self.dims} has a dimension < -1")

    def top_shape(self, bottom):
        shape = bottom.shape
        """The top shape for a bottom of `shape` (Caffe's ReshapeLayer::Reshape)."""
        param = self.layer_param.reshape_param
        n = len(shape)
        start = param.axis if param.axis >= 0 else n + param.axis + 1
        if not 0 <= start <= n:
            raise self.error(f"reshape_param.axis {param.axis} out of range for a {n}-D bottom")
        if param.num_axes < -1:
            raise self.error("reshape_param.num_axes must be >= 0, or -1 for all")
        end = n if param.num_axes == -1 else start + param.num_axes
        if end > n:
            raise self.error(f"axis + num_axes = {end} is out of range for a {n}-D bottom")
        new = list(self.dims)
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= n:
                    raise self.error(f"new shape {self.dims} contains a 0 at position {i}, but "
                                     f"the bottom {shape} has no axis {start + i} to copy")
                new[i] = shape[start + i]
        count = 1
        for d in shape:
            count *= d
        if -1 in new:
            known = 1
            for d in list(shape[:start]) + list(shape[end:]) + [d for d in new if d != -1]:
                known *= d
            if known == 0 or count % known:
                raise self.error(f"bottom count ({count}) of shape {shape} must be divisible "
                                 f"by the product of the specified dimensions ({known})")
            new[new.index(-1)] = count // known
        result = tuple(shape[:start]) + tuple(new) + tuple(shape[end:])
        total = 1
        for d in result:
            total *= d
        if total != count:
            raise self.error(f"output count must match input count: bottom {shape} "
                             f"({count}) cannot become {result} ({total})")
        return result
