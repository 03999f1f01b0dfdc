"""Softmax: y_c = exp(x_c - max_c x) / Σ_c' exp(x_c' - max_c x) along `axis`."""
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


def softmax_axis(layer, blob, axis):
    """Canonical index of softmax_param.axis for blob, or a NetError naming the layer."""
    try:
        return blob.canonical_axis_index(axis)
    except IndexError as exc:
        raise layer.error(f"softmax_param.axis: {exc}") from None


def softmax(x, axis, out=None):
    """Max-subtracted softmax of x along axis (into `out` when given; out may be x)."""
    xp = get_array_module(x)
    if x.size == 0:  # an axis of length 0: nothing to normalise (a max has no identity)
        return x.copy() if out is None else out
    shifted = x - x.max(axis=axis, keepdims=True)
    if out is None:
        out = shifted
    else:
        out[...] = shifted
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


@register_layer("Softmax")
class SoftmaxLayer(Layer):
    """Softmax over one axis (default 1, the channels) of any blob; top has the bottom's shape.

    Safe in place: backward reads only the top data, dx = (dy - Σ_c dy·y) · y.
    """

    allow_in_place = True

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        self.axis = softmax_axis(self, bottom[0], self.layer_param.softmax_param.axis)
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def forward(self, bottom, top):
        softmax(bottom[0].data, self.axis, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y, dy = top[0].data, top[0].diff
        dot = (dy * y).sum(axis=self.axis, keepdims=True)
        bottom[0].diff[...] = (dy - dot) * y
