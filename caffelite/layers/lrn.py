"""LRN: y = x · s^(-beta), s = k + alpha/n · Σ_window x² (across) or 1 + alpha/n² · Σ x²"""
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import get_array_module


def window_sum(a, size, axis):
    """Σ of a over a centred window of odd `size` along axis, zero-padded at the borders.

    A sum of `size` shifted slices (no cumulative sums, so float32 keeps its precision). The
    window is symmetric, so this operator is its own adjoint (backward reuses it).
    """
    xp = get_array_module(a)
    length = a.shape[axis]
    # A window wider than 2·length − 1 covers the whole axis from every position, as that one
    # does: the same sums without a local_size of 2^32 − 1 worth of padding and slices.
    size = min(size, max(1, 2 * length - 1))
    pad = (size - 1) // 2
    widths = [(0, 0)] * a.ndim
    widths[axis] = (pad, pad)
    padded = xp.pad(a, widths)
    index = [slice(None)] * a.ndim
    out = None
    for offset in range(size):
        index[axis] = slice(offset, offset + length)
        out = padded[tuple(index)].copy() if out is None else out + padded[tuple(index)]
    return out


@register_layer("LRN")
class LRNLayer(Layer):
    """Local response normalisation of a 4-D bottom (N, C, H, W); top the same shape.

    ACROSS_CHANNELS: s = k + alpha/n · Σ_{n channels centred on c} x² (zero beyond the edges).
    WITHIN_CHANNEL: Caffe builds it from square -> AVE pool (n x n, pad (n-1)/2, the divisor n²
    counts the padding) -> power, so s = 1 + alpha/n² · Σ_{n x n window} x²; `k` is ignored.
    Both: y = x · s^(-beta), and dx = dy · s^(-beta) - 2·alpha·beta/D · x · Σ_window(dy·y/s)
    with D = n (across) or n² (within). local_size must be odd. No blobs.
    """

    allow_in_place = True

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.lrn_param
        self.size = int(param.local_size)
        if self.size % 2 != 1:
            raise self.error(f"lrn_param.local_size must be odd (a window centred on each "
                             f"position), got {self.size}")
        self.alpha = float(param.alpha)
        self.beta = float(param.beta)
        self.k = float(param.k)
        self.within = param.norm_region == pb.LRNParameter.WITHIN_CHANNEL

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got "
                             f"shape {bottom[0].shape}")
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def _window(self, a):
        if self.within:
            return window_sum(window_sum(a, self.size, 2), self.size, 3)
        return window_sum(a, self.size, 1)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.within:
            self.scale = 1.0 + (self.alpha / self.size ** 2) * self._window(x * x)
        else:
            self.scale = self.k + (self.alpha / self.size) * self._window(x * x)
        self.x = x.copy() if top[0] is bottom[0] else x  # in place, y overwrites x
        self.scale_pow = self.scale ** -self.beta
        top[0].data[...] = x * self.scale_pow

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, y, x = top[0].diff, top[0].data, self.x
        divisor = self.size ** 2 if self.within else self.size
        ratio = self._window(dy * y / self.scale)
        bottom[0].diff[...] = (dy * self.scale_pow
                               - (2.0 * self.alpha * self.beta / divisor) * x * ratio)
