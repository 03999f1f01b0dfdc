"""SigmoidCrossEntropyLoss: loss = -Σ [t·log σ(x) + (1 - t)·log(1 - σ(x))] / normalizer."""
import numpy as np

from ..layer import LossLayer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import get_array_module
from .softmax_with_loss import loss_normalizer, setup_loss_param


@register_layer("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(LossLayer):
    """Cross-entropy of independent sigmoid predictions against targets in [0, 1].

    bottom[0] (N, ...) scores x, bottom[1] targets t of the same count; top[0] a scalar.
    Computed in Caffe's stable form -[x·(t - 1{x>=0}) - log(1 + exp(-|x|))].
    Normalisation: BATCH_SIZE (N) unless loss_param.normalization is set, or the deprecated
    `normalize` (true: VALID, false: BATCH_SIZE) is; VALID counts non-ignored targets.
    loss_param.ignore_label skips targets whose int() equals it (their gradient is 0).
    Gradient: (σ(x) - t)·w/normalizer. No gradient to the targets.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        setup_loss_param(self, pb.LossParameter.BATCH_SIZE)  # unlike SoftmaxWithLoss

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count() != bottom[1].count():
            raise self.error(f"scores {bottom[0].shape} and targets {bottom[1].shape} must "
                             "have the same count")
        self.outer = bottom[0].shape[0]
        self.inner = bottom[0].count(1)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data.reshape(-1)
        t = bottom[1].data.reshape(-1)
        losses = x * (t - (x >= 0)) - xp.log1p(xp.exp(-xp.abs(x)))
        self.valid = None
        valid_count = -1
        if self.has_ignore_label:
            self.valid = t.astype(np.int64) != self.ignore_label  # Caffe's static_cast<int>
            losses = losses * self.valid
            valid_count = int(self.valid.sum())
        self.normalizer = loss_normalizer(self.normalization, self.outer, self.inner,
                                          valid_count)
        top[0].data[...] = -float(losses.sum()) / self.normalizer

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("SigmoidCrossEntropyLoss cannot backpropagate to the target input")
        if not propagate_down[0]:
            return
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data
        sigmoid = 0.5 * xp.tanh(0.5 * x) + 0.5  # Caffe's SigmoidLayer
        grad = sigmoid - bottom[1].data.reshape(x.shape)
        if self.valid is not None:
            grad *= self.valid.reshape(x.shape)
        bottom[0].diff[...] = grad * (float(top[0].diff) / self.normalizer)
