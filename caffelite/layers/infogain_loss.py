"""InfogainLoss: loss = -Σ_i Σ_l H[label_i, l]·log(max(softmax(x_i)_l, 1e-20)) / normalizer."""
import os

import numpy as np

from ..layer import LossLayer
from ..registry import register_layer
from ..runtime import get_array_module
from ._labels import bad_label, class_indices
from .softmax import softmax
from .softmax_with_loss import loss_normalizer, setup_loss_param

LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD


@register_layer("InfogainLoss")
class InfogainLossLayer(LossLayer):
    """Multinomial logistic loss weighted by an infogain matrix H (L x L), on softmax(x).

    bottom[0] scores with the L classes on infogain_loss_param.axis (default 1), (outer, L,
    inner...); bottom[1] outer·inner labels; optional bottom[2] H (L·L values), else H is read
    from infogain_loss_param.source (a .binaryproto). top[0] a scalar; optional top[1] the
    probabilities. H = identity gives SoftmaxWithLoss. loss_param: ignore_label,
    normalization (default VALID). Gradient: (p_k·Σ_l H[y, l] - H[y, k])·w/normalizer;
    none to the labels or to H.
    """

    min_bottom_blobs = 2
    max_bottom_blobs = 3
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        setup_loss_param(self)
        self.infogain = None
        if len(bottom) < 3:
            source = self.layer_param.infogain_loss_param.source
            if not source:
                raise self.error("infogain_loss_param.source must name the H matrix "
                                 "(.binaryproto) when there is no third bottom")
            if not os.path.isfile(source):
                raise self.error(f"infogain_loss_param.source '{source}': no such file")
            from ..formats.binary import read_binaryproto

            self.infogain = np.asarray(read_binaryproto(source), dtype=self.dtype)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        try:
            self.axis = bottom[0].canonical_axis_index(self.layer_param.infogain_loss_param.axis)
        except IndexError as exc:
            raise self.error(f"infogain_loss_param.axis: {exc}") from None
        self.outer = bottom[0].count(0, self.axis)
        self.inner = bottom[0].count(self.axis + 1)
        self.num_labels = bottom[0].shape[self.axis]
        if self.outer * self.inner != bottom[1].count():
            raise self.error(f"number of labels must match number of predictions: scores "
                             f"{bottom[0].shape} with axis {self.axis} need "
                             f"{self.outer * self.inner} labels, got {bottom[1].count()}")
        h_count = bottom[2].count() if len(bottom) > 2 else self.infogain.size
        if h_count != self.num_labels ** 2:
            raise self.error(f"the infogain matrix H must be {self.num_labels}x"
                             f"{self.num_labels} ({self.num_labels ** 2} values), got {h_count}")
        if len(top) > 1:
            top[1].reshape_like(bottom[0])

    def _matrix(self, bottom):
        h = bottom[2].data if len(bottom) > 2 else self.infogain
        return h.reshape(self.num_labels, self.num_labels)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        shape3 = (self.outer, self.num_labels, self.inner)
        self.prob = softmax(bottom[0].data.reshape(shape3), 1)  # (outer, L, inner)
        labels = class_indices(bottom[1].data.reshape(self.outer, self.inner))
        valid = xp.ones(labels.shape, dtype=bool)
        if self.has_ignore_label:
            valid = labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= self.num_labels))
        if bool(bad.any()):
            raise self.error(bad_label(bottom[1].data, bad, self.num_labels))
        self.labels, self.valid = xp.where(valid, labels, 0), valid
        rows = self._matrix(bottom)[self.labels]  # (outer, inner, L): H[label, :]
        log_p = xp.log(xp.maximum(self.prob, LOG_THRESHOLD)).transpose(0, 2, 1)
        total = float((rows * log_p * valid[:, :, None]).sum())
        self.normalizer = loss_normalizer(self.normalization, self.outer, self.inner,
                                          int(valid.sum()))
        top[0].data[...] = -total / self.normalizer
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(bottom[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("InfogainLoss cannot backpropagate to the label input")
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error("InfogainLoss cannot backpropagate to the infogain matrix")
        if not propagate_down[0]:
            return
        h = self._matrix(bottom)
        rows = h[self.labels].transpose(0, 2, 1)  # (outer, L, inner): H[label, k]
        row_sums = h.sum(axis=1)[self.labels][:, None, :]  # (outer, 1, inner)
        grad = (self.prob * row_sums - rows) * self.valid[:, None, :]
        grad *= float(top[0].diff) / self.normalizer
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0
