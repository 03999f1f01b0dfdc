"""MVN: y = (x - mean) / (sqrt(var) + eps) over H·W per (n, c), or over C·H·W per n."""
from ..layer import Layer
from ..registry import register_layer


@register_layer("MVN")
class MVNLayer(Layer):
    """Mean-variance normalisation (Caffe's MVNLayer); top has bottom's shape, may run in place.

    Groups: each (n, c) over the remaining axes, or each n with `across_channels`. Without
    `normalize_variance` only the mean is subtracted. eps (1e-9) is added after the square
    root, as Caffe does. Backward is Caffe's: with y the output and σ' = sqrt(var) + eps,
    dx = (dy - mean(dy) - y·mean(dy·y)) / σ' (exact up to eps); mean only: dx = dy - mean(dy).
    """

    allow_in_place = True

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.mvn_param
        self.normalize_variance = bool(param.normalize_variance)
        self.across_channels = bool(param.across_channels)
        self.eps = float(param.eps)

    def reshape(self, bottom, top):
        if bottom[0].num_axes < 1:
            raise self.error("bottom must have at least one axis (num)")
        groups = bottom[0].count(0, 1 if self.across_channels else 2)
        self.groups = (groups, bottom[0].count() // groups if groups else 0)
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.groups)  # (groups, dim)
        y = top[0].data.reshape(self.groups)
        centred = x - x.mean(axis=1, keepdims=True)
        if self.normalize_variance:
            std = (centred * centred).mean(axis=1, keepdims=True) ** 0.5
            self.sigma = std + self.eps  # (groups, 1)
            y[...] = centred / self.sigma
        else:
            y[...] = centred

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.groups)
        dx = bottom[0].diff.reshape(self.groups)
        if self.normalize_variance:
            y = top[0].data.reshape(self.groups)
            mean_dy_y = (dy * y).mean(axis=1, keepdims=True)
            dx[...] = (dy - dy.mean(axis=1, keepdims=True) - y * mean_dy_y) / self.sigma
        else:
            dx[...] = dy - dy.mean(axis=1, keepdims=True)
