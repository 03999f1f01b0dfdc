"""EuclideanLoss: loss = Σ‖a - b‖² / (2N)."""
from ..layer import LossLayer
from ..registry import register_layer


@register_layer("EuclideanLoss")
class EuclideanLossLayer(LossLayer):
    """Half the mean squared distance between two blobs of N items each.

    bottom[0] (N, ...) and bottom[1] (N, ...) with the same count per item; top[0] a scalar
    (loss_weight 1). Both bottoms get gradients, with opposite signs:
    da = w·(a - b)/N, db = -w·(a - b)/N with w the loss weight (top diff).
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count(1) != bottom[1].count(1):
            raise self.error(f"inputs must have the same dimension per item: {bottom[0].shape} "
                             f"vs {bottom[1].shape}")

    def forward(self, bottom, top):
        self.delta = bottom[0].data - bottom[1].data.reshape(bottom[0].shape)
        flat = self.delta.reshape(-1)
        top[0].data[...] = float(flat @ flat) / bottom[0].shape[0] / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                alpha = sign * float(top[0].diff) / bottom[i].shape[0]
                bottom[i].diff[...] = (alpha * self.delta).reshape(bottom[i].shape)

    def allow_force_backward(self, bottom_index):
        return True  # both inputs are predictions (Caffe's EuclideanLossLayer)
