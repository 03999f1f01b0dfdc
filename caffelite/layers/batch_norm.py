"""BatchNorm: y = (x - mean_c) / sqrt(var_c + eps), batch or running statistics per channel."""
from ..layer import TEST, Layer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("BatchNorm")
class BatchNormLayer(Layer):
    """Normalisation only; the learned affine part is a following Scale {bias_term: true}.

    bottom (N, C, ...) (C = 1 for a 1-axis bottom), top the same shape; may run in place.
    blobs: [0] running sum of means (C,), [1] running sum of variances (C,), [2] the scale
    factor s (1,). Each TRAIN forward (use_global_stats false) updates, with
    maf = moving_average_fraction: s = maf·s + 1, b0 = maf·b0 + mean,
    b1 = maf·b1 + m/(m-1)·var, m = N·H·W (the factor is 1 when m == 1). Global statistics are
    b0/s and b1/s (0 when s == 0). use_global_stats defaults to phase == TEST.

    The statistics are not learnable: layer_setup appends a ParamSpec {lr_mult: 0
    decay_mult: 0} to layer_param.param for each of the 3 blobs without one (the net reads
    layer.layer_param.param after setup) and refuses an lr_mult != 0, as Caffe does.
    Backward in training is (dy - mean(dy) - mean(dy·y)·y) / sqrt(var + eps); with global
    statistics it is dy / sqrt(var + eps). No parameter gradients.
    """

    allow_in_place = True

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.batch_norm_param
        self.moving_average_fraction = float(param.moving_average_fraction)
        self.use_global_stats = self.phase == TEST
        if param.HasField("use_global_stats"):
            self.use_global_stats = bool(param.use_global_stats)
        self.eps = float(param.eps)
        if bottom[0].num_axes == 0:
            raise self.error("bottom is a scalar (0 axes); BatchNorm normalises each channel "
                             "over a batch: give the bottom at least one axis")
        self.channels = 1 if bottom[0].num_axes == 1 else bottom[0].shape[1]
        if not self.blobs:
            self.blobs = [self.new_param_blob((self.channels,)),
                          self.new_param_blob((self.channels,)),
                          self.new_param_blob((1,))]
        # Mask the statistics from the solver (Caffe's "fixed_param_spec").
        for i in range(len(self.blobs)):
            if i < len(self.layer_param.param):
                spec = self.layer_param.param[i]
                if spec.lr_mult != 0:
                    raise self.error(
                        f"param {{ lr_mult: {spec.lr_mult:g} }} for blob {i}: the batch "
                        "statistics (mean, variance, scale factor) are not learnable; remove "
                        "the param entries or set lr_mult: 0")
            else:
                self.layer_param.param.add(lr_mult=0.0, decay_mult=0.0)
        self.param_propagate_down = [False] * len(self.blobs)

    def reshape(self, bottom, top):
        if bottom[0].num_axes > 1 and bottom[0].shape[1] != self.channels:
            raise self.error(f"bottom has {bottom[0].shape[1]} channels (shape "
                             f"{bottom[0].shape}), the statistics blobs have {self.channels}")
        if bottom[0].count() == 0 and self.channels and not self.use_global_stats:
            raise self.error(f"bottom shape {bottom[0].shape} has no values to compute batch "
                             "statistics from (Caffe would divide by zero)")
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def _view(self, blob_array):
        """(N, C, S): the channel axis in the middle, all spatial axes flattened."""
        n = blob_array.shape[0] if blob_array.ndim else 1
        return blob_array.reshape(n, self.channels, -1)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        if bottom[0].count() == 0:
            return  # nothing to normalise: 0 channels, or global statistics on no values
        x = self._view(bottom[0].data)  # (N, C, S)
        if self.use_global_stats:
            s = float(self.blobs[2].data[0])
            factor = 0.0 if s == 0 else 1.0 / s
            centred = x - (self.blobs[0].data * factor)[:, None]
            var = self.blobs[1].data * factor  # (C,)
        else:
            mean = x.mean(axis=(0, 2))  # (C,)
            centred = x - mean[:, None]
            var = (centred * centred).mean(axis=(0, 2))  # biased batch variance
            maf = self.moving_average_fraction
            m = x.shape[0] * x.shape[2]
            correction = m / (m - 1) if m > 1 else 1.0
            self.blobs[2].data[...] = self.blobs[2].data * maf + 1
            self.blobs[0].data[...] = self.blobs[0].data * maf + mean
            self.blobs[1].data[...] = self.blobs[1].data * maf + correction * var
        self.std = xp.sqrt(var + self.eps)[:, None]  # (C, 1)
        y = self._view(top[0].data)
        y[...] = centred / self.std
        # Keep y for backward: a later in-place layer (Scale) overwrites top.data (Caffe's
        # x_norm_). Global-stats backward does not need it.
        self.x_norm = None if self.use_global_stats else y.copy()

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] or bottom[0].count() == 0:
            return
        dy = self._view(top[0].diff)
        dx = self._view(bottom[0].diff)
        if self.use_global_stats:
            dx[...] = dy / self.std
            return
        y = self.x_norm
        mean_dy = dy.mean(axis=(0, 2), keepdims=True)
        mean_dy_y = (dy * y).mean(axis=(0, 2), keepdims=True)
        dx[...] = (dy - mean_dy - mean_dy_y * y) / self.std
