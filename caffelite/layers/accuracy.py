"""Accuracy: mean over labelled positions of 1{#(other classes scoring >= the true one) < top_k}."""

from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module
from ._labels import bad_label, class_indices


@register_layer("Accuracy")
class AccuracyLayer(Layer):
    """Top-k classification accuracy (a metric: no gradient).

    bottom[0] scores (outer, C, inner...) with the classes on accuracy_param.axis (default 1);
    bottom[1] labels, outer·inner values. top[0] scalar accuracy (0 when nothing is counted);
    optional top[1] (C,) per-class accuracy (0 for classes absent from the batch). Ties count
    against: a position is correct when fewer than top_k *other* classes score >= the true
    class. Positions labelled ignore_label are skipped.
    """

    exact_num_bottom_blobs = 2
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        param = self.layer_param.accuracy_param
        self.top_k = int(param.top_k)
        self.has_ignore_label = param.HasField("ignore_label")
        self.ignore_label = param.ignore_label

    def reshape(self, bottom, top):
        try:
            self.axis = bottom[0].canonical_axis_index(self.layer_param.accuracy_param.axis)
        except IndexError as exc:
            raise self.error(f"accuracy_param.axis: {exc}") from None
        self.outer = bottom[0].count(0, self.axis)
        self.inner = bottom[0].count(self.axis + 1)
        self.channels = bottom[0].shape[self.axis]
        if self.top_k > self.channels:
            raise self.error(f"top_k ({self.top_k}) must be less than or equal to the number "
                             f"of classes ({self.channels})")
        if self.outer * self.inner != bottom[1].count():
            raise self.error(
                f"number of labels must match number of predictions: scores {bottom[0].shape} "
                f"with axis {self.axis} need {self.outer * self.inner} labels, label blob "
                f"{bottom[1].shape} has {bottom[1].count()}")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((self.channels,))

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        scores = bottom[0].data.reshape(self.outer, self.channels, self.inner)
        labels = class_indices(bottom[1].data.reshape(self.outer, 1, self.inner))
        valid = xp.ones(labels.shape, dtype=bool)
        if self.has_ignore_label:
            valid = labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= self.channels))
        if bool(bad.any()):
            raise self.error(bad_label(bottom[1].data, bad, self.channels))
        safe = xp.where(valid, labels, 0)
        true_score = xp.take_along_axis(scores, safe, axis=1)  # (outer, 1, inner)
        # The true class itself counts once when compared with >=, hence the - 1.
        better = (scores >= true_score).sum(axis=1, keepdims=True) - 1
        correct = (better < self.top_k) & valid  # (outer, 1, inner)
        count = int(valid.sum())
        top[0].data[...] = float(correct.sum()) / count if count else 0.0
        if len(top) > 1:
            per_label = xp.bincount(safe[valid], minlength=self.channels)
            per_correct = xp.bincount(safe[correct], minlength=self.channels)
            top[1].data[...] = xp.where(per_label > 0, per_correct / xp.maximum(per_label, 1), 0)

    def backward(self, top, propagate_down, bottom):
        pass  # a metric; Caffe's Backward is NOT_IMPLEMENTED and the net never needs it

    def allow_force_backward(self, bottom_index):
        return False
