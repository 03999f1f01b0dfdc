"""ContrastiveLoss: loss = Σ [y·d² + (1 - y)·max(margin - d, 0)²] / (2N), d = ‖a - b‖."""
import numpy as np

from ..layer import LossLayer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("ContrastiveLoss")
class ContrastiveLossLayer(LossLayer):
    """Siamese loss (Caffe's ContrastiveLossLayer) on pairs of feature vectors.

    bottom[0], bottom[1] (N, C) features (trailing 1-dims allowed, as Caffe's (N, C, 1, 1));
    bottom[2] N similarity labels, int(y) != 0 meaning similar. top[0] a scalar.
    contrastive_loss_param: margin (1); legacy_version uses max(margin - d², 0) for dissimilar
    pairs instead of max(margin - d, 0)². Gradients (w the loss weight, ±: a / b):
    similar ±w/N·(a - b); dissimilar, where the hinge is active, ∓w/N·(a - b) (legacy) or
    ∓w/N·(margin - d)/(d + 1e-4)·(a - b) (Caffe's 1e-4 guards d = 0). No gradient to y.
    """

    exact_num_bottom_blobs = 3
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.contrastive_loss_param
        self.margin = float(param.margin)
        self.legacy = bool(param.legacy_version)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        n = bottom[0].shape[0]
        if bottom[0].shape != bottom[1].shape or bottom[0].count(2) != 1:
            raise self.error(f"the two feature blobs must both be (N, C) (or (N, C, 1, 1)); got "
                             f"{bottom[0].shape} and {bottom[1].shape}")
        if bottom[2].count() != n:
            raise self.error(f"needs one similarity label per pair: features "
                             f"{bottom[0].shape}, labels {bottom[2].shape}")
        self.num, self.channels = n, bottom[0].count(1)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        shape = (self.num, self.channels)
        self.delta = bottom[0].data.reshape(shape) - bottom[1].data.reshape(shape)  # (N, C)
        self.dist_sq = (self.delta * self.delta).sum(axis=1)  # (N,)
        self.similar = bottom[2].data.reshape(-1).astype(np.int64) != 0
        if self.legacy:
            dissimilar = xp.maximum(self.margin - self.dist_sq, 0)
        else:
            dissimilar = xp.maximum(self.margin - xp.sqrt(self.dist_sq), 0) ** 2
        per_pair = xp.where(self.similar, self.dist_sq, dissimilar)
        top[0].data[...] = float(per_pair.sum()) / self.num / 2.0

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise self.error("ContrastiveLoss cannot backpropagate to the similarity labels")
        xp = get_array_module(self.delta)
        if self.legacy:
            mdist = self.margin - self.dist_sq
            dissimilar = -1.0 * (mdist > 0)
        else:
            dist = xp.sqrt(self.dist_sq)
            mdist = self.margin - dist
            dissimilar = xp.where(mdist > 0, -mdist / (dist + 1e-4), 0.0)
        coeff = xp.where(self.similar, 1.0, dissimilar).astype(self.delta.dtype)[:, None]  # (N, 1)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                alpha = sign * float(top[0].diff) / self.num
                bottom[i].diff[...] = (alpha * coeff * self.delta).reshape(bottom[i].shape)

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2
