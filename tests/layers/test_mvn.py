"""MVN: mean/variance normalisation vs a NumPy formula per mode, Caffe's eps, gradients."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, params=""):
    layer = make_layer(f"type: 'MVN' {params}")
    bottom, top = [blob_from(x)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def formula(x, across_channels=False, normalize_variance=True, eps=1e-9):
    axes = (1, 2, 3) if across_channels else (2, 3)
    centred = x - x.mean(axis=axes, keepdims=True)
    if not normalize_variance:
        return centred
    # eps is added after the square root, as Caffe does.
    return centred / (np.sqrt((centred ** 2).mean(axis=axes, keepdims=True)) + eps)


@pytest.fixture
def x(rng):
    return rng.normal(loc=3.0, scale=2.0, size=(2, 3, 4, 5))


@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_forward_matches_formula(across, normalize, x):
    params = (f"mvn_param {{ across_channels: {str(across).lower()} "
              f"normalize_variance: {str(normalize).lower()} }}")
    _, _, top = run(x, params)
    np.testing.assert_allclose(top[0].data, formula(x, across, normalize), rtol=1e-12,
                               atol=1e-13)
    groups = (0,) if across else (0, 1)
    axes = tuple(a for a in range(4) if a not in groups)
    np.testing.assert_allclose(top[0].data.mean(axis=axes), 0, atol=1e-12)
    if normalize:
        np.testing.assert_allclose(top[0].data.std(axis=axes), 1, rtol=1e-9)


def test_eps_is_added_after_the_square_root():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 0] = 1e-6
    _, _, top = run(x, "mvn_param { eps: 0.5 }")
    centred = x - x.mean()
    np.testing.assert_allclose(top[0].data, centred / (np.sqrt((centred ** 2).mean()) + 0.5))


def test_matches_torch_layer_norm_when_across_channels(x):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    _, _, top = run(x, "mvn_param { across_channels: true eps: 0 }")
    expected = torch.nn.functional.layer_norm(torch.from_numpy(x), x.shape[1:], eps=0.0)
    np.testing.assert_allclose(top[0].data, expected.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("params", [
    "", "mvn_param { across_channels: true }", "mvn_param { normalize_variance: false }",
    "mvn_param { normalize_variance: false across_channels: true }",
])
def test_gradient(params, rng):
    layer = make_layer(f"type: 'MVN' {params}")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 3, 2, 3)))], [Blob(dtype=np.float64)])


def test_in_place(x, rng):
    layer, bottom, top = run(x)
    dy = rng.normal(size=x.shape)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    layer2 = make_layer("type: 'MVN'")
    blob = blob_from(x)
    layer2.setup([blob], [blob])
    layer2.forward([blob], [blob])
    blob.diff[...] = dy
    layer2.backward([blob], [True], [blob])
    np.testing.assert_allclose(blob.data, top[0].data, rtol=1e-14)
    np.testing.assert_allclose(blob.diff, bottom[0].diff, rtol=1e-12)
