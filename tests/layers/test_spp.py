"""SPP: each level against Caffe's pooling loop with the level's kernel/pad; shapes; gradients."""
import math

import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.layer import TEST
from tests.gradient_check import blob_from, check_gradient, make_layer
from tests.reference.pool_naive import ave_pool_naive, max_pool_naive, stochastic_test_naive

F64 = np.float64


def spp_layer(height, method="MAX", phase=None):
    text = f"type: 'SPP' spp_param {{ pyramid_height: {height} pool: {method} }}"
    return make_layer(text) if phase is None else make_layer(text, phase=phase)


def run(layer, x):
    bottom, top = [blob_from(x)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return bottom, top


def level_geometry(size, level):
    """Caffe's GetPoolingParam: kernel = ceil(size/bins), pad = (kernel·bins − size + 1)/2."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


def reference(x, height, pool):
    parts = []
    for level in range(height):
        (kh, ph), (kw, pw) = level_geometry(x.shape[2], level), level_geometry(x.shape[3], level)
        parts.append(pool(x, (kh, kw), (ph, pw), (kh, kw)).reshape(x.shape[0], -1))
    return np.concatenate(parts, axis=1)


def test_caffe_setup_shape():
    """Caffe's TestSetup: 2x3x9x8, pyramid_height 3 -> (2, 3·(1 + 4 + 16))."""
    layer, top = spp_layer(3), [Blob(dtype=F64)]
    layer.setup([Blob((2, 3, 9, 8), F64)], top)
    assert top[0].shape == (2, 63)


def test_many_levels_give_fixed_length():
    for shape, height in (((1, 2, 64, 48), 5), ((1, 2, 63, 50), 4), ((3, 1, 100, 37), 4)):
        layer, top = spp_layer(height), [Blob(dtype=F64)]
        layer.setup([Blob(shape, F64)], top)
        assert top[0].shape == (shape[0], shape[1] * sum(4 ** lv for lv in range(height)))


@pytest.mark.parametrize("shape, height", [((2, 3, 9, 8), 3), ((1, 2, 7, 7), 3),
                                           ((2, 1, 13, 6), 2), ((1, 2, 5, 9), 1)])
def test_forward_max_and_ave_match_caffe_pooling(shape, height, rng):
    x = rng.normal(size=shape)
    for method, pool in (("MAX", lambda *a: max_pool_naive(*a)[0]), ("AVE", ave_pool_naive)):
        _, top = run(spp_layer(height, method), x)
        ref = reference(x, height, pool)
        if height == 1:  # Caffe hands the single level over unflattened
            assert top[0].shape == shape[:2] + (1, 1)
        np.testing.assert_allclose(top[0].data.reshape(ref.shape), ref, rtol=1e-13, atol=1e-14)


def test_pyramid_height_one_is_global_pooling(rng):
    x = rng.normal(size=(2, 3, 5, 4))
    _, top = run(spp_layer(1), x)
    np.testing.assert_array_equal(top[0].data[:, :, 0, 0], x.max(axis=(2, 3)))


def test_stochastic_test_phase(rng):
    x = rng.uniform(0, 1, size=(2, 2, 8, 8))  # 8 = 2·4: no level needs padding
    _, top = run(spp_layer(3, "STOCHASTIC", TEST), x)
    ref = reference(x, 3, lambda x, k, p, s: stochastic_test_naive(x, k, s))
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-13)


@pytest.mark.parametrize("method, shape, height", [("MAX", (2, 2, 5, 6), 2),
                                                   ("AVE", (2, 2, 5, 6), 2),
                                                   ("MAX", (1, 2, 4, 7), 3),
                                                   ("AVE", (1, 2, 4, 7), 3)])
def test_gradient(method, shape, height, rng):
    if method == "MAX":  # values 0.1 apart: a ±1e-2 step never moves a maximum
        x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1
    else:
        x = rng.normal(size=shape)
    check_gradient(spp_layer(height, method), [blob_from(x)], [Blob(dtype=F64)])


def test_gradient_stochastic(rng):
    check_gradient(spp_layer(2, "STOCHASTIC"), [blob_from(rng.uniform(0.1, 1, (1, 2, 4, 4)))],
                   [Blob(dtype=F64)], step=1e-4, threshold=1e-2)
    check_gradient(spp_layer(2, "STOCHASTIC", TEST),
                   [blob_from(rng.uniform(0.1, 1, (1, 2, 4, 4)))], [Blob(dtype=F64)])


@pytest.mark.parametrize("text, shape, message", [
    ("pyramid_height: 3", (1, 1, 2, 8), "too small for pyramid level 2"),
    ("pyramid_height: 5", (1, 1, 63, 50), "too small for pyramid level 4"),
    ("pool: MAX", (1, 1, 8, 8), "pyramid_height must be set"),
    ("pyramid_height: 2", (1, 8, 8), "4 axes"),
    ("pyramid_height: 2 pool: STOCHASTIC", (1, 1, 5, 5), "takes no padding"),
])
def test_errors_name_the_layer(text, shape, message):
    layer = make_layer("name: 'spp' type: 'SPP' spp_param { " + text + " }")
    with pytest.raises(NetError, match=message) as info:
        layer.setup([Blob(shape, F64)], [Blob(dtype=F64)])
    assert "layer 'spp' (SPP)" in str(info.value)
