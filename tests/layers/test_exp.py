"""Exp: forward vs base^(shift + scale·x) in float64; gradient; in place; bad base."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64
CASES = [(-1.0, 1.0, 0.0), (-1.0, 0.5, 1.2), (2.0, 1.0, 0.0), (2.0, -0.7, 1.5), (0.5, 2.0, -1.0)]


def text(base, scale, shift):
    return f"type: 'Exp' exp_param {{ base: {base} scale: {scale} shift: {shift} }}"


def f32(v):
    return float(np.float32(v))


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
    x = rng.normal(size=(2, 3, 4, 5))
    _, _, top = run(x, case)
    b = np.e if base == -1 else f32(base)
    np.testing.assert_allclose(top.data, b ** (f32(shift) + f32(scale) * x), rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_gradient(case, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer(text(*case)), [blob_from(x)], [Blob(dtype=F64)])


def test_backward_values_in_and_out_of_place(rng):
    x = rng.normal(size=(3, 4))
    dy = rng.normal(size=x.shape)
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), (2.0, -0.7, 1.5), in_place)
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        y = 2.0 ** (1.5 + f32(-0.7) * x)
        np.testing.assert_allclose(bottom.diff, dy * y * np.log(2.0) * f32(-0.7), rtol=1e-12)


@pytest.mark.parametrize("base", [0.0, -2.0])
def test_bad_base(base):
    layer = make_layer(f"type: 'Exp' exp_param {{ base: {base} }}")
    with pytest.raises(NetError, match=r"layer 'test' \(Exp\).*base"):
        layer.setup([blob_from(np.ones(3))], [Blob(dtype=F64)])
