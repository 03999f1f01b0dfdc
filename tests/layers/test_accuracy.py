"""Accuracy: hand-computed cases (ties, top_k, ignore_label, per class, axis) and a naive loop."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import blob_from, make_layer


def accuracy(scores, labels, params="", tops=1):
    layer = make_layer(f"type: 'Accuracy' accuracy_param {{ {params} }}")
    bottom = [blob_from(scores), blob_from(labels)]
    top = [Blob(dtype=np.float64) for _ in range(tops)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return [t.data.copy() for t in top]


def naive(scores, labels, top_k=1, ignore=None):
    """Caffe's loop: correct when fewer than top_k other classes score >= the true class."""
    correct = count = 0
    for s, label in zip(scores, labels.astype(int)):
        if label == ignore:
            continue
        others = [k for k in range(len(s)) if k != label and s[k] >= s[label]]
        correct += len(others) < top_k
        count += 1
    return correct / count if count else 0.0


SCORES = np.array([
    [0.1, 0.7, 0.2],  # label 1: clear top-1
    [0.5, 0.5, 0.0],  # label 1: tie with class 0 -> wrong at top-1, right at top-2
    [0.3, 0.3, 0.3],  # label 2: three-way tie -> right only at top-3
    [0.6, 0.1, 0.3],  # label 2: second -> right at top-2
    [0.2, 0.3, 0.5],  # label 0: last
])
LABELS = np.array([1.0, 1.0, 2.0, 2.0, 0.0])


@pytest.mark.parametrize("top_k, expected", [(1, 1 / 5), (2, 3 / 5), (3, 5 / 5)])
def test_ties_count_against(top_k, expected):
    (acc,) = accuracy(SCORES, LABELS, f"top_k: {top_k}")
    assert float(acc) == pytest.approx(expected, abs=1e-15)


def test_per_class_accuracy():
    acc, per_class = accuracy(SCORES, LABELS, "top_k: 2", tops=2)
    assert float(acc) == pytest.approx(3 / 5)
    # class 0: 0/1, class 1: 2/2, class 2: 1/2
    np.testing.assert_allclose(per_class, [0.0, 1.0, 0.5])


def test_per_class_absent_class_is_zero():
    _, per_class = accuracy(SCORES[:2], LABELS[:2], tops=2)
    np.testing.assert_allclose(per_class, [0.0, 0.5, 0.0])


def test_ignore_label():
    (acc,) = accuracy(SCORES, LABELS, "ignore_label: 2")
    assert float(acc) == pytest.approx(1 / 3)
    (acc,) = accuracy(SCORES[2:3], LABELS[2:3], "ignore_label: 2")
    assert float(acc) == 0.0  # nothing counted


def test_matches_naive_loop(rng):
    # Rounded scores make ties common.
    scores = np.round(rng.normal(size=(200, 6)), 1)
    labels = rng.integers(0, 6, size=200).astype(np.float64)
    for top_k in (1, 2, 4):
        (acc,) = accuracy(scores, labels, f"top_k: {top_k} ignore_label: 3")
        assert float(acc) == pytest.approx(naive(scores, labels, top_k, 3), abs=1e-15)


def test_axis(rng):
    scores = rng.normal(size=(2, 3, 5))  # classes on axis 2
    labels = rng.integers(0, 5, size=(2, 3)).astype(np.float64)
    (acc,) = accuracy(scores, labels, "axis: 2")
    assert float(acc) == pytest.approx(naive(scores.reshape(6, 5), labels.ravel()))
    spatial = np.moveaxis(scores, 2, 1)  # (2, 5, 3): classes on axis 1, inner 3
    (acc1,) = accuracy(spatial, labels, "")
    assert float(acc1) == float(acc)


def test_errors(rng):
    with pytest.raises(CaffeliteError, match="top_k"):
        accuracy(SCORES, LABELS, "top_k: 4")
    with pytest.raises(CaffeliteError, match="number of labels"):
        accuracy(SCORES, LABELS[:4])
    with pytest.raises(CaffeliteError, match="out of range"):
        accuracy(SCORES, np.array([0.0, 1, 2, 3, 0]))


def test_no_forced_backward():
    layer = make_layer("type: 'Accuracy'")
    assert not layer.allow_force_backward(0) and not layer.allow_force_backward(1)
