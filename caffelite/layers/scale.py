"""Scale: y = x · s (+ b), s (and b) broadcast over bottom[0]'s axes [axis, axis + s.num_axes)."""
from ..fillers import fill
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from .bias import broadcast_dims, operand_shape


@register_layer("Scale")
class ScaleLayer(Layer):
    """Multiplies by a learned blob, or by bottom[1], broadcast over bottom[0] (Caffe's ScaleLayer).

    bottom[0] any shape; bottom[1] (optional) shape = bottom[0].shape[axis:axis+k]; top as
    bottom[0], may run in place (forward then keeps a copy of x for the scale gradient).
    blobs: [0] the scale (one bottom only): shape bottom[0].shape[axis:axis+num_axes]
    (num_axes -1: to the end; 0: a 0-axis scalar), filler default constant 1; then, with
    bias_term, the bias of the same shape (bias_filler default constant 0), appended as
    Caffe's internal Bias layer appends it. A 0-axis scale applies at axis 0 whatever `axis` is.
    ds accumulates into the blob, or overwrites bottom[1].diff.
    """

    allow_in_place = True

    min_bottom_blobs = 1
    max_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.scale_param
        where = f"layer '{self.name}' (Scale)"
        if len(bottom) == 1 and not self.blobs:
            shape = operand_shape(self, bottom[0], param.axis, param.num_axes, "scale_param")
            self.blobs = [self.new_param_blob(shape)]
            filler = param.filler if param.HasField("filler") else pb.FillerParameter(
                type="constant", value=1.0)
            fill(self.blobs[0], filler, self.rng, where=f"{where} filler")
        self.bias_term = bool(param.bias_term)
        if self.bias_term and len(self.blobs) + len(bottom) < 3:
            num_axes = bottom[1].num_axes if len(bottom) > 1 else param.num_axes
            shape = operand_shape(self, bottom[0], param.axis, num_axes, "scale_param")
            bias = self.new_param_blob(shape)
            fill(bias, param.bias_filler, self.rng, where=f"{where} bias_filler")
            self.blobs.append(bias)
        self._bottom_copy = None

    def reshape(self, bottom, top):
        axis = self.layer_param.scale_param.axis
        scale = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.dims = broadcast_dims(self, bottom[0], scale, axis, "scale_param", "scale")
        if self.bias_term:
            self.bias_dims = broadcast_dims(self, bottom[0], self.blobs[-1], axis,
                                            "scale_param", "bias")
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def forward(self, bottom, top):
        outer, dim, inner = self.dims
        x = bottom[0].data.reshape(outer, dim, inner)
        # In place, top.data overwrites x, which the scale gradient needs.
        self._bottom_copy = x.copy() if top[0] is bottom[0] else None
        y = top[0].data.reshape(outer, dim, inner)
        y[...] = x * self._scale(bottom).data.reshape(1, dim, 1)
        if self.bias_term:
            outer_b, dim_b, inner_b = self.bias_dims
            top[0].data.reshape(outer_b, dim_b, inner_b)[...] += (
                self.blobs[-1].data.reshape(1, dim_b, 1))

    def backward(self, top, propagate_down, bottom):
        if self.bias_term and self.param_propagate_down[-1]:
            outer_b, dim_b, inner_b = self.bias_dims
            dy_b = top[0].diff.reshape(outer_b, dim_b, inner_b)
            self.blobs[-1].diff[...] += dy_b.sum(axis=(0, 2)).reshape(self.blobs[-1].shape)
        outer, dim, inner = self.dims
        dy = top[0].diff.reshape(outer, dim, inner)
        scale = self._scale(bottom)
        learned = len(bottom) == 1
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            x = self._bottom_copy if self._bottom_copy is not None else (
                bottom[0].data.reshape(outer, dim, inner))
            ds = (dy * x).sum(axis=(0, 2)).reshape(scale.shape)
            if learned:
                scale.diff[...] += ds  # parameter diffs accumulate
            else:
                scale.diff[...] = ds
        # Last: in place, bottom[0].diff is top.diff, read above.
        if propagate_down[0]:
            bottom[0].diff.reshape(outer, dim, inner)[...] = dy * scale.data.reshape(1, dim, 1)
