"""Bias: y = x + b, b broadcast over bottom[0]'s axes [axis, axis + b.num_axes)."""
from ..fillers import fill
from ..layer import Layer
from ..registry import register_layer


def operand_shape(layer, blob, axis, num_axes, field):
    """Shape of a learned operand covering blob's axes [axis, axis+num_axes) (-1: to the end)."""
    if num_axes < -1:
        raise layer.error(f"{field}.num_axes must be non-negative, or -1 to extend to the end "
                          f"of bottom[0], got {num_axes}")
    try:
        axis = blob.canonical_axis_index(axis)
    except IndexError as exc:
        raise layer.error(f"{field}.axis: {exc}") from None
    end = blob.num_axes if num_axes == -1 else axis + num_axes
    if end > blob.num_axes:
        raise layer.error(f"{field}: the operand's {num_axes} axes starting at axis {axis} "
                          f"extend past bottom[0]'s shape {blob.shape}")
    return blob.shape[axis:end]


def broadcast_dims(layer, blob, operand, axis, field, name):
    """(outer, dim, inner) so that blob viewed as (outer, dim, inner) meets operand as (dim,).

    A 0-axis operand is a scalar: axis is then 0 whatever the parameter says (as Caffe).
    """
    if operand.num_axes == 0:
        axis = 0
    else:
        try:
            axis = blob.canonical_axis_index(axis)
        except IndexError as exc:
            raise layer.error(f"{field}.axis: {exc}") from None
    end = axis + operand.num_axes
    if end > blob.num_axes or blob.shape[axis:end] != operand.shape:
        raise layer.error(f"{name} of shape {operand.shape} does not match bottom[0] "
                          f"{blob.shape} at axes {axis}..{end - 1} ({field}.axis = {axis}); "
                          f"its dims must equal bottom[0]'s dims from that axis")
    return blob.count(0, axis), operand.count(), blob.count(end)


@register_layer("Bias")
class BiasLayer(Layer):
    """Adds a learned blob, or bottom[1], broadcast over bottom[0] (Caffe's BiasLayer).

    bottom[0] any shape; bottom[1] (optional) shape = bottom[0].shape[axis:axis+k]; top as
    bottom[0], may run in place. blobs[0] (when one bottom): shape
    bottom[0].shape[axis:axis+num_axes] (num_axes -1: to the end; 0: a scalar), filler
    default constant 0. db accumulates into the blob, or overwrites bottom[1].diff.
    """

    allow_in_place = True

    min_bottom_blobs = 1
    max_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.bias_param
        if len(bottom) == 1 and not self.blobs:
            shape = operand_shape(self, bottom[0], param.axis, param.num_axes, "bias_param")
            self.blobs = [self.new_param_blob(shape)]
            fill(self.blobs[0], param.filler, self.rng, where=f"layer '{self.name}' (Bias) filler")

    def reshape(self, bottom, top):
        bias = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.dims = broadcast_dims(self, bottom[0], bias, self.layer_param.bias_param.axis,
                                   "bias_param", "bias")
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def forward(self, bottom, top):
        outer, dim, inner = self.dims
        bias = (bottom[1] if len(bottom) > 1 else self.blobs[0]).data.reshape(1, dim, 1)
        x = bottom[0].data.reshape(outer, dim, inner)
        top[0].data.reshape(outer, dim, inner)[...] = x + bias

    def backward(self, top, propagate_down, bottom):
        outer, dim, inner = self.dims
        dy = top[0].diff.reshape(outer, dim, inner)
        if len(bottom) == 1:
            if self.param_propagate_down[0]:
                self.blobs[0].diff[...] += dy.sum(axis=(0, 2)).reshape(self.blobs[0].shape)
        elif propagate_down[1]:
            bottom[1].diff[...] = dy.sum(axis=(0, 2)).reshape(bottom[1].shape)
        if propagate_down[0] and bottom[0] is not top[0]:
            bottom[0].diff[...] = top[0].diff
