"""Reduction: SUM/ASUM/SUMSQ/MEAN from each axis with coeff vs NumPy; gradients; shapes."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64
OPS = {
    "SUM": lambda x, axes: x.sum(axis=axes),
    "ASUM": lambda x, axes: np.abs(x).sum(axis=axes),
    "SUMSQ": lambda x, axes: (x * x).sum(axis=axes),
    "MEAN": lambda x, axes: x.mean(axis=axes),
}


def text(op, axis=None, coeff=None):
    fields = f"operation: {op}"
    fields += f" axis: {axis}" if axis is not None else ""
    fields += f" coeff: {coeff}" if coeff is not None else ""
    return f"type: 'Reduction' reduction_param {{ {fields} }}"


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("axis,coeff", [(None, None), (1, 2.5), (2, None), (-1, -0.5)])
def test_forward_formula(op, axis, coeff, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    layer = make_layer(text(op, axis, coeff))
    bottom, top = [blob_from(x)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    a = 0 if axis is None else axis % 4
    expected = OPS[op](x, tuple(range(a, 4))) * float(np.float32(coeff or 1.0))
    assert top[0].shape == x.shape[:a]
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("axis,coeff", [(None, None), (1, 2.5), (-1, -0.5)])
def test_gradient(op, axis, coeff, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer(text(op, axis, coeff)), [blob_from(x)], [Blob(dtype=F64)],
                   kink=0.0, kink_range=0.01 if op == "ASUM" else -1.0)


def test_bad_axis():
    layer = make_layer(text("SUM", 3))
    with pytest.raises(NetError, match=r"layer 'test' \(Reduction\).*axis 3 is out of range"):
        layer.setup([blob_from(np.ones((2, 3)))], [Blob(dtype=F64)])
