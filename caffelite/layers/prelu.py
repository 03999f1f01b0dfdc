"""PReLU: y = max(x, 0) + a_c * min(x, 0), a learned slope per channel (or one shared)."""
from ..fillers import fill
from ..layer import NeuronLayer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("PReLU")
class PReLULayer(NeuronLayer):
    """Parametric rectifier; bottom (N, C, ...) with at least 2 axes, top the same shape.

    blobs[0]: the slopes, shape (C,), or a 0-axis scalar with `channel_shared` (as Caffe's
    `Blob(vector<int>(0))`, so caffemodels load). Filler default: constant 0.25.
    Gradients: da_c += Σ dy·x·1{x <= 0}; dx = dy·(1{x > 0} + a_c·1{x <= 0}).
    In place, forward keeps a copy of x (Caffe's bottom_memory_) because backward needs it.
    """

    def layer_setup(self, bottom, top):
        param = self.layer_param.prelu_param
        if bottom[0].num_axes < 2:
            raise self.error(f"bottom must have at least 2 axes (N, C, ...), got shape "
                             f"{bottom[0].shape}")
        self.channel_shared = bool(param.channel_shared)
        if not self.blobs:
            shape = () if self.channel_shared else (bottom[0].shape[1],)
            self.blobs = [self.new_param_blob(shape)]
            if param.HasField("filler"):
                filler = param.filler
            else:
                filler = pb.FillerParameter(type="constant", value=0.25)
            fill(self.blobs[0], filler, self.rng, where=f"layer '{self.name}' (PReLU) filler")
        self._bottom_copy = None

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        expected = 1 if self.channel_shared else bottom[0].shape[1] if bottom[0].num_axes > 1 else 0
        if bottom[0].num_axes < 2 or self.blobs[0].count() != expected:
            raise self.error(f"bottom shape {bottom[0].shape} does not fit the slope blob of "
                             f"shape {self.blobs[0].shape} (channel_shared: "
                             f"{self.channel_shared})")

    def _slope(self, x):
        """The slopes shaped to broadcast against x: (C, 1, ..., 1), or a scalar."""
        a = self.blobs[0].data
        if self.channel_shared:
            return a.reshape(())
        return a.reshape((-1,) + (1,) * (x.ndim - 2))

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        self._bottom_copy = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = xp.maximum(x, 0) + self._slope(x) * xp.minimum(x, 0)

    def backward(self, top, propagate_down, bottom):
        xp = get_array_module(top[0].diff)
        x = self._bottom_copy if self._bottom_copy is not None else bottom[0].data
        dy = top[0].diff
        negative = x <= 0
        # The slope gradient first: in place, bottom.diff is top.diff and is overwritten below.
        if self.param_propagate_down[0]:
            contrib = dy * x * negative
            if self.channel_shared:
                self.blobs[0].diff[...] += contrib.sum()
            else:
                axes = (0,) + tuple(range(2, x.ndim))
                self.blobs[0].diff[...] += contrib.sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * xp.where(negative, self._slope(x), 1)
