"""Eltwise: SUM (coeff), PROD, MAX with Caffe's tie rule vs NumPy; gradients; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64


def run(arrays, param=""):
    layer = make_layer(f"type: 'Eltwise' {param}")
    bottom = [blob_from(a) for a in arrays]
    top = [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def inputs(rng, n=3, shape=(2, 3, 4, 5)):
    return [rng.normal(size=shape) for _ in range(n)]


def test_sum_default_and_coeff(rng):
    a, b, c = inputs(rng)
    _, _, top = run([a, b, c])
    np.testing.assert_allclose(top[0].data, a + b + c, rtol=1e-14)
    _, _, top = run([a, b, c], "eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }")
    np.testing.assert_allclose(top[0].data, a - 0.5 * b + 2 * c, rtol=1e-14)


def test_prod(rng):
    a, b, c = inputs(rng)
    _, _, top = run([a, b, c], "eltwise_param { operation: PROD }")
    np.testing.assert_allclose(top[0].data, a * b * c, rtol=1e-14)


def test_max_values_and_tie_rule():
    a = np.array([1.0, 2.0, 3.0, 5.0, 0.0])
    b = np.array([1.0, 4.0, 3.0, 1.0, 0.0])
    c = np.array([0.0, 4.0, 7.0, 5.0, 0.0])
    layer, bottom, top = run([a, b, c], "eltwise_param { operation: MAX }")
    np.testing.assert_array_equal(top[0].data, [1.0, 4.0, 7.0, 5.0, 0.0])
    top[0].diff[...] = [10.0, 20.0, 30.0, 40.0, 50.0]
    layer.backward(top, [True] * 3, bottom)
    # bottom 0 vs 1: a tie goes to bottom 1; later bottoms must be strictly greater.
    np.testing.assert_array_equal(bottom[0].diff, [0, 0, 0, 40, 0])
    np.testing.assert_array_equal(bottom[1].diff, [10, 20, 0, 0, 50])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 30, 0, 0])


def test_max_matches_numpy_on_random_data(rng):
    arrays = inputs(rng, 4)
    _, _, top = run(arrays, "eltwise_param { operation: MAX }")
    np.testing.assert_array_equal(top[0].data, np.max(arrays, axis=0))
    # Caffe accepts (and ignores) coeff with MAX.
    _, _, top = run(arrays, "eltwise_param { operation: MAX coeff: 2 coeff: 2 coeff: 2 "
                            "coeff: 2 }")
    np.testing.assert_array_equal(top[0].data, np.max(arrays, axis=0))


@pytest.mark.parametrize("param", ["", "eltwise_param { coeff: 1 coeff: -0.5 coeff: 2 }",
                                   "eltwise_param { operation: PROD }",
                                   "eltwise_param { operation: PROD stable_prod_grad: false }"])
def test_gradient(param, rng):
    arrays = inputs(rng)
    if "PROD" in param:  # top/x_i needs x_i away from 0
        arrays = [np.sign(a) * (np.abs(a) + 0.5) for a in arrays]
    check_gradient(make_layer(f"type: 'Eltwise' {param}"), [blob_from(a) for a in arrays],
                   [Blob(dtype=F64)])


def test_max_gradient(rng):
    # Distinct values at least 0.1 apart, so ±step never changes which bottom is the max.
    values = rng.permutation(3 * 60) * 0.1
    arrays = list(values.reshape(3, 3, 4, 5))
    check_gradient(make_layer("type: 'Eltwise' eltwise_param { operation: MAX }"),
                   [blob_from(a) for a in arrays], [Blob(dtype=F64)])


def test_sum_in_place_backward(rng):
    a, b = inputs(rng, 2)
    layer = make_layer("type: 'Eltwise' eltwise_param { coeff: 2 coeff: 3 }")
    bottom = [blob_from(a), blob_from(b)]
    layer.setup(bottom, [bottom[0]])
    layer.forward(bottom, [bottom[0]])
    np.testing.assert_allclose(bottom[0].data, 2 * a + 3 * b, rtol=1e-14)
    dy = rng.normal(size=a.shape)
    bottom[0].diff[...] = dy
    layer.backward([bottom[0]], [True, True], bottom)
    np.testing.assert_allclose(bottom[0].diff, 2 * dy, rtol=1e-14)
    np.testing.assert_allclose(bottom[1].diff, 3 * dy, rtol=1e-14)


@pytest.mark.parametrize("arrays,param,message", [
    ([np.ones(3)] * 3, "eltwise_param { coeff: 1 coeff: 2 }",
     r"2 coeff value\(s\) for 3 bottoms"),
    ([np.ones(3)] * 2, "eltwise_param { operation: PROD coeff: 1 coeff: 2 }", r"SUM only"),
    ([np.ones((2, 3)), np.ones((3, 2))], "", r"bottom\[0\] is \(2, 3\), bottom\[1\] is \(3, 2\)"),
])
def test_bad_parameters(arrays, param, message):
    with pytest.raises(NetError, match=r"layer 'test' \(Eltwise\).*" + message):
        run(arrays, param)
