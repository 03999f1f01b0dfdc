"""SoftmaxWithLoss: loss = -Σ_valid log(max(softmax(x)[label], FLT_MIN)) / normalizer."""
import numpy as np

from ..layer import LossLayer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import get_array_module
from ._labels import bad_label, class_indices
from .softmax import softmax, softmax_axis

FLT_MIN = float(np.finfo(np.float32).tiny)
NORM = pb.LossParameter


def loss_normalization(loss_param, default=None):
    """Caffe's rule: deprecated `normalize` decides only when `normalization` is unset; with
    neither set, `default` (a layer's own default) or the schema's VALID."""
    if not loss_param.HasField("normalization"):
        if loss_param.HasField("normalize"):
            return NORM.VALID if loss_param.normalize else NORM.BATCH_SIZE
        if default is not None:
            return default
    return loss_param.normalization


def setup_loss_param(layer, default_normalization=None):
    """Read a loss layer's LossParameter: has_ignore_label, ignore_label, normalization."""
    loss_param = layer.layer_param.loss_param
    layer.has_ignore_label = loss_param.HasField("ignore_label")
    layer.ignore_label = loss_param.ignore_label
    layer.normalization = loss_normalization(loss_param, default_normalization)


def loss_normalizer(mode, outer, inner, valid_count):
    """Caffe's LossLayer::GetNormalizer, clamped to >= 1."""
    if mode == NORM.FULL:
        value = outer * inner
    elif mode == NORM.VALID:
        value = outer * inner if valid_count < 0 else valid_count
    elif mode == NORM.BATCH_SIZE:
        value = outer
    else:  # NONE
        value = 1
    return max(1.0, float(value))


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLossLayer(LossLayer):
    """Multinomial logistic loss of the softmax of bottom[0], the scores.

    bottom[0] (outer, C, inner...) scores with the classes on softmax_param.axis (default 1);
    bottom[1] labels, outer·inner values (stored as floats; truncated to int as Caffe does).
    top[0] scalar loss (loss_weight 1); optional top[1] the probabilities, bottom[0]'s shape.
    loss_param: ignore_label skips positions; normalization VALID (default) / FULL /
    BATCH_SIZE / NONE, normalizer clamped to >= 1. No gradient to the labels.
    """

    exact_num_bottom_blobs = 2
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        setup_loss_param(self)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.axis = softmax_axis(self, bottom[0], self.layer_param.softmax_param.axis)
        self.outer = bottom[0].count(0, self.axis)
        self.inner = bottom[0].count(self.axis + 1)
        self.channels = bottom[0].shape[self.axis]
        if self.outer * self.inner != bottom[1].count():
            raise self.error(
                f"number of labels must match number of predictions: scores {bottom[0].shape} "
                f"with softmax axis {self.axis} need {self.outer * self.inner} labels, label "
                f"blob {bottom[1].shape} has {bottom[1].count()} "
                f"(values in 0..{self.channels - 1})")
        if len(top) > 1:
            top[1].reshape_like(bottom[0])

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        shape3 = (self.outer, self.channels, self.inner)
        self.prob = softmax(bottom[0].data.reshape(shape3), 1)  # (outer, C, inner)
        labels = class_indices(bottom[1].data.reshape(self.outer, 1, self.inner))
        valid = xp.ones(labels.shape, dtype=bool)
        if self.has_ignore_label:
            valid = labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= self.channels))
        if bool(bad.any()):
            raise self.error(bad_label(bottom[1].data, bad, self.channels) + " "
                             "(set loss_param.ignore_label to skip a label value)")
        self.labels = xp.where(valid, labels, 0)  # (outer, 1, inner)
        self.valid = valid
        p = xp.take_along_axis(self.prob, self.labels, axis=1)  # (outer, 1, inner)
        log_p = xp.log(xp.maximum(p.astype(np.float64), FLT_MIN))
        self.valid_count = int(valid.sum())
        self.normalizer = loss_normalizer(self.normalization, self.outer, self.inner,
                                          self.valid_count)
        top[0].data[...] = -float((log_p * valid).sum()) / self.normalizer
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(bottom[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("SoftmaxWithLoss cannot backpropagate to the label input")
        if not propagate_down[0]:
            return
        xp = get_array_module(self.prob)
        grad = bottom[0].diff.reshape(self.outer, self.channels, self.inner)  # (outer, C, inner)
        grad[...] = self.prob
        onehot_at = xp.take_along_axis(grad, self.labels, axis=1) - 1
        xp.put_along_axis(grad, self.labels, onehot_at, axis=1)
        grad *= self.valid  # ignored positions get no gradient
        grad *= float(top[0].diff) / self.normalizer
