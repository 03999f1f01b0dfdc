"""HingeLoss: t_k = max(0, 1 + s_k·x_k), s = -1 at the true class else +1; L1 Σt/N, L2 Σt²/N."""

from ..layer import LossLayer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import get_array_module
from ._labels import bad_label, class_indices


@register_layer("HingeLoss")
class HingeLossLayer(LossLayer):
    """One-vs-all hinge loss (Caffe's HingeLossLayer), norm L1 (default) or L2.

    bottom[0] (N, ...) scores, dim = count/N classes per item; bottom[1] N labels in
    [0, dim). top[0] a scalar. Gradient: L1 w/N·s_k·1{t_k > 0}; L2 2w/N·s_k·t_k (w the loss
    weight). No gradient to the labels.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        self.l2 = self.layer_param.hinge_loss_param.norm == pb.HingeLossParameter.L2

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.num = bottom[0].shape[0]
        self.dim = bottom[0].count() // self.num if self.num else 0
        if bottom[1].count() != self.num:
            raise self.error(f"needs one label per item: scores {bottom[0].shape}, labels "
                             f"{bottom[1].shape}")

    def _signs(self, bottom, xp):
        """s_k: -1 at the true class, +1 elsewhere, (N, dim)."""
        labels = class_indices(bottom[1].data.reshape(-1))
        bad = (labels < 0) | (labels >= self.dim)
        if bool(bad.any()):
            raise self.error(bad_label(bottom[1].data, bad, self.dim))
        signs = xp.ones((self.num, self.dim), dtype=bottom[0].data.dtype)
        signs[xp.arange(self.num), labels] = -1
        return signs

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        self.signs = self._signs(bottom, xp)
        self.margins = xp.maximum(0, 1 + self.signs * bottom[0].data.reshape(self.num, self.dim))
        m = self.margins.reshape(-1)
        total = float(m @ m) if self.l2 else float(m.sum())
        top[0].data[...] = total / self.num

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("HingeLoss cannot backpropagate to the label input")
        if not propagate_down[0]:
            return
        xp = get_array_module(self.margins)
        weight = float(top[0].diff) / self.num
        if self.l2:
            grad = (2 * weight) * self.signs * self.margins
        else:
            grad = weight * self.signs * xp.sign(self.margins)  # sign(0) = 0, as caffe_cpu_sign
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)
