"""Power: forward vs (shift + scale·x)^power in float64; Caffe's special cases; gradients."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64
# (power, scale, shift) as in Caffe's test_power_layer.cpp
CASES = [(0.37, 0.83, -2.4), (0.37, 0.83, 0.0), (2.0, 0.34, -2.4), (2.0, 0.5, 0.0),
         (1.0, 0.83, -2.4), (0.0, 0.83, -2.4), (-1.5, 1.2, 0.0), (3.0, -0.7, 0.5)]


def text(power, scale, shift):
    return f"type: 'Power' power_param {{ power: {power} scale: {scale} shift: {shift} }}"


def inputs(rng, power, scale, shift):
    """Keep shift + scale·x away from 0 and (for non-integer powers) positive, as Caffe's test."""
    x = rng.normal(size=(2, 3, 4, 5))
    if power not in (0.0, 1.0, 2.0, 3.0):
        base = np.abs(shift + scale * x) + 0.2
        x = (base - shift) / scale
    return x


def f32(v):
    return float(np.float32(v))  # the proto fields are floats


@pytest.mark.parametrize("power,scale,shift", CASES)
def test_forward_formula(power, scale, shift, rng):
    x = inputs(rng, power, scale, shift)
    layer = make_layer(text(power, scale, shift))
    bottom, top = blob_from(x), Blob(dtype=F64)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    expected = (f32(shift) + f32(scale) * x) ** f32(power)
    np.testing.assert_allclose(top.data, expected, rtol=1e-12)


@pytest.mark.parametrize("power,scale,shift", CASES)
def test_gradient(power, scale, shift, rng):
    x = inputs(rng, power, scale, shift)
    check_gradient(make_layer(text(power, scale, shift)), [blob_from(x)], [Blob(dtype=F64)],
                   threshold=1e-2)


def test_zero_scale_gives_a_constant_and_no_gradient(rng):
    x = rng.normal(size=(3, 4))
    for power, expected in ((0.0, 1.0), (2.0, 4.0)):
        layer = make_layer(text(power, 0.0, 2.0))
        bottom, top = blob_from(x), Blob(dtype=F64)
        layer.setup([bottom], [top])
        layer.forward([bottom], [top])
        np.testing.assert_array_equal(top.data, expected)
        top.diff[...] = 1
        layer.backward([top], [True], [bottom])
        np.testing.assert_array_equal(bottom.diff, 0)


def test_gradient_is_finite_at_zero_without_shift():
    # Caffe's power·y/x is 0/0 here; the direct form gives power·scale^power·x^(power-1).
    x = np.array([0.0, 1.0, 2.0])
    layer = make_layer(text(3.0, 1.0, 0.0))
    bottom, top = blob_from(x), Blob(dtype=F64)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    top.diff[...] = 1
    layer.backward([top], [True], [bottom])
    np.testing.assert_allclose(bottom.diff, [0.0, 3.0, 12.0])


def test_in_place_equals_out_of_place(rng):
    x = inputs(rng, 0.37, 0.83, -2.4)
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer = make_layer(text(0.37, 0.83, -2.4))
        bottom = blob_from(x.copy())
        top = bottom if in_place else Blob(dtype=F64)
        layer.setup([bottom], [top])
        layer.forward([bottom], [top])
        y = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        results.append((y, bottom.diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
