"""Dropout: kept fraction and scaling, TEST identity, seeded repeatability, gradient, in place."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.layer import TEST, TRAIN
from tests.gradient_check import blob_from, check_gradient, make_layer


def build(x, ratio=None, phase=TRAIN, seed=1701, in_place=False, dtype=np.float32):
    text = "type: 'Dropout'" + (f" dropout_param {{ dropout_ratio: {ratio} }}"
                                if ratio is not None else "")
    layer = make_layer(text, phase=phase, dtype=dtype, seed=seed)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    return layer, bottom, top


@pytest.mark.parametrize("ratio", [None, 0.2, 0.8])
def test_train_statistics_and_scaling(ratio, rng):
    x = rng.uniform(1.0, 2.0, size=(200, 500)).astype(np.float32)  # no zeros in the input
    layer, bottom, top = build(x, ratio)
    layer.forward([bottom], [top])
    r = 0.5 if ratio is None else float(np.float32(ratio))
    kept = top.data != 0
    n = x.size
    # Bernoulli(1 − r) over 100k units: the kept fraction is within 5 standard deviations.
    assert abs(kept.mean() - (1 - r)) < 5 * np.sqrt(r * (1 - r) / n)
    np.testing.assert_allclose(top.data[kept], x[kept] / (1 - r), rtol=1e-6)
    # Inverted dropout keeps the expectation: the mean of y / x is close to 1.
    assert abs((top.data / x).mean() - 1) < 5 * np.sqrt(r / (1 - r) / n)


def test_test_phase_is_identity(rng):
    x = rng.normal(size=(4, 5, 6)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    for in_place in (False, True):
        layer, bottom, top = build(x.copy(), 0.7, phase=TEST, in_place=in_place)
        layer.forward([bottom], [top])
        np.testing.assert_array_equal(top.data, x)
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        np.testing.assert_array_equal(bottom.diff, dy)


def test_seeded_repeatability(rng):
    x = rng.normal(size=(8, 50)).astype(np.float32)
    outputs = []
    for seed in (5, 5, 6):
        layer, bottom, top = build(x, 0.5, seed=seed)
        layer.forward([bottom], [top])
        first = top.data.copy()
        layer.forward([bottom], [top])
        outputs.append((first, top.data.copy()))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])  # same seed, same masks
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])
    assert not np.array_equal(outputs[0][0], outputs[0][1])  # a fresh mask every forward
    assert not np.array_equal(outputs[0][0], outputs[2][0])  # another seed, other masks


def test_backward_uses_the_forward_mask_in_and_out_of_place(rng):
    x = rng.uniform(1.0, 2.0, size=(6, 40)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    results = []
    for in_place in (False, True):
        layer, bottom, top = build(x.copy(), 0.4, seed=11, in_place=in_place)
        layer.forward([bottom], [top])
        y = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        kept = y != 0
        np.testing.assert_allclose(bottom.diff, np.where(kept, dy / np.float32(0.6), 0),
                                   rtol=1e-6)
        results.append((y, bottom.diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_gradient(rng):
    # The checker reseeds the layer's rng before every forward, so the mask repeats.
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer("type: 'Dropout'"), [blob_from(x)], [Blob(dtype=np.float64)])


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(NetError, match=r"layer 'test' \(Dropout\).*dropout_ratio"):
        build(np.ones(3), ratio)
