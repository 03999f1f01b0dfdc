"""MultinomialLogisticLoss: loss = -Σ_n log(max(p[n, label_n], 1e-20)) / N."""

from ..layer import LossLayer
from ..registry import register_layer
from ..runtime import get_array_module
from ._labels import bad_label, class_indices

LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD


@register_layer("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(LossLayer):
    """Log loss of probabilities that are already normalised (e.g. a Softmax layer's output).

    bottom[0] (N, ...) probabilities, dim = count/N classes per item; bottom[1] N labels in
    [0, dim). top[0] a scalar. Gradient: -w/(N·max(p, 1e-20)) at the true class, 0
    elsewhere (w the loss weight). No gradient to the labels.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.num = bottom[0].shape[0]
        self.dim = bottom[0].count() // self.num if self.num else 0
        if bottom[1].count() != self.num:
            raise self.error(f"needs one label per item: probabilities {bottom[0].shape}, "
                             f"labels {bottom[1].shape}")

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        labels = class_indices(bottom[1].data.reshape(-1))
        bad = (labels < 0) | (labels >= self.dim)
        if bool(bad.any()):
            raise self.error(bad_label(bottom[1].data, bad, self.dim))
        self.rows = xp.arange(self.num)
        self.labels = labels
        p = bottom[0].data.reshape(self.num, self.dim)[self.rows, labels]
        self.prob = xp.maximum(p, LOG_THRESHOLD)
        top[0].data[...] = -float(xp.log(self.prob).sum()) / self.num

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("MultinomialLogisticLoss cannot backpropagate to the label input")
        if not propagate_down[0]:
            return
        grad = bottom[0].diff.reshape(self.num, self.dim)
        grad[...] = 0
        grad[self.rows, self.labels] = -float(top[0].diff) / self.num / self.prob
