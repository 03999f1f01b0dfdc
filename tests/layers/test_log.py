"""Log: forward vs log_base(shift + scale·x) in float64; gradient; in place; bad base."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64
CASES = [(-1.0, 1.0, 0.0), (-1.0, 0.5, 1.2), (2.0, 1.0, 0.0), (10.0, -0.7, 1.5),
         (0.5, 2.0, 0.3)]


def text(base, scale, shift):
    return f"type: 'Log' log_param {{ base: {base} scale: {scale} shift: {shift} }}"


def f32(v):
    return float(np.float32(v))


def inputs(rng, case):
    """x with shift + scale·x in [0.5, 3]: inside the domain, away from the pole at 0."""
    _, scale, shift = case
    t = rng.uniform(0.5, 3.0, size=(2, 3, 4, 5))
    return (t - f32(shift)) / f32(scale)


def run(x, case, in_place=False):
    layer = make_layer(text(*case))
    bottom = blob_from(x)
    top = bottom if in_place else Blob(dtype=F64)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


@pytest.mark.parametrize("case", CASES)
def test_forward_formula(case, rng):
    base, scale, shift = case
    x = inputs(rng, case)
    _, _, top = run(x, case)
    log_base = 1.0 if base == -1 else np.log(f32(base))
    expected = np.log(f32(shift) + f32(scale) * x) / log_base
    np.testing.assert_allclose(top.data, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case", CASES)
def test_gradient(case, rng):
    x = inputs(rng, case)
    # Caffe's test_neuron_layer.cpp checks Log with threshold 1e-2 too: the curvature of
    # log near the pole makes the central difference itself inexact at 1e-3.
    check_gradient(make_layer(text(*case)), [blob_from(x)], [Blob(dtype=F64)], threshold=1e-2)


def test_in_place_equals_out_of_place(rng):
    case = (10.0, -0.7, 1.5)
    x = inputs(rng, case)
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), case, in_place)
        y = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        results.append((y, bottom.diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    expected = dy * f32(-0.7) / (np.log(10.0) * (1.5 + f32(-0.7) * x))
    np.testing.assert_allclose(results[1][1], expected, rtol=1e-6)


@pytest.mark.parametrize("base", [0.0, -3.0, 1.0])
def test_bad_base(base):
    layer = make_layer(f"type: 'Log' log_param {{ base: {base} }}")
    with pytest.raises(NetError, match=r"layer 'test' \(Log\).*base"):
        layer.setup([blob_from(np.ones(3))], [Blob(dtype=F64)])
