"""Fillers: statistics of large seeded draws, exact bilinear values, Caffe's CHECK errors."""
import math

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from caffelite.fillers import fan_in_out, fill
from caffelite.proto import caffelite_pb2 as pb
from caffelite.registry import FILLERS


def filled(shape, text, seed=1701, dtype=np.float64):
    blob = Blob(shape, dtype=dtype)
    fill(blob, text_format.Parse(text, pb.FillerParameter()), np.random.default_rng(seed))
    return blob.data


def test_registry_has_caffes_seven_fillers():
    assert set(FILLERS.names()) >= {"constant", "uniform", "gaussian", "positive_unitball",
                                     "xavier", "msra", "bilinear"}


def test_default_is_constant_zero():
    blob = Blob((3, 4))
    blob.data[...] = 7
    fill(blob, pb.FillerParameter(), np.random.default_rng(0))
    assert np.all(blob.data == 0)
    fill(blob, None, np.random.default_rng(0))
    assert np.all(blob.data == 0)


def test_constant_value_and_dtype():
    data = filled((2, 3, 4), "type: 'constant' value: 2.5", dtype=np.float32)
    assert data.dtype == np.float32
    assert np.all(data == 2.5)


def test_uniform_bounds_and_moments():
    data = filled((200, 500), "type: 'uniform' min: -3 max: 5")
    assert data.min() >= -3 and data.max() <= 5
    assert data.min() < -2.99 and data.max() > 4.99
    assert abs(data.mean() - 1.0) < 0.02
    assert abs(data.std() - 8 / math.sqrt(12)) < 0.02


def test_gaussian_moments():
    data = filled((200, 500), "type: 'gaussian' mean: 1.5 std: 0.25")
    assert abs(data.mean() - 1.5) < 0.005
    assert abs(data.std() - 0.25) < 0.005


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    # Caffe: Bernoulli(sparse / shape[0]) mask, so each input keeps ~`sparse` outputs.
    data = filled((50, 4000), "type: 'gaussian' std: 1 sparse: 5")
    nonzero = data != 0
    assert abs(nonzero.mean() - 5 / 50) < 0.005
    assert abs(nonzero.sum(axis=0).mean() - 5) < 0.1
    assert abs(data[nonzero].std() - 1.0) < 0.02


def test_positive_unitball_rows_sum_to_one():
    data = filled((10, 3, 4, 5), "type: 'positive_unitball'")
    assert data.min() >= 0 and data.max() <= 1
    np.testing.assert_allclose(data.reshape(10, -1).sum(axis=1), np.ones(10), rtol=1e-12)


def test_fans_follow_caffe():
    assert fan_in_out((20, 3, 5, 5)) == (75, 500)  # conv (O, I, k, k): I·k·k, O·k·k
    assert fan_in_out((500, 800)) == (800, 500)  # InnerProduct (N_out, K): K, N_out
    assert fan_in_out((7,)) == (1, 7)


@pytest.mark.parametrize("norm", ["FAN_IN", "FAN_OUT", "AVERAGE"])
def test_xavier_scale(norm):
    data = filled((400, 3, 5, 5), f"type: 'xavier' variance_norm: {norm}")
    n = {"FAN_IN": 75, "FAN_OUT": 400 * 25, "AVERAGE": (75 + 400 * 25) / 2}[norm]
    s = math.sqrt(3.0 / n)
    assert np.abs(data).max() <= s
    assert np.abs(data).max() > 0.99 * s
    assert abs(data.mean()) < 0.01 * s
    assert abs(data.std() - s / math.sqrt(3)) < 0.02 * s


@pytest.mark.parametrize("norm", ["FAN_IN", "FAN_OUT", "AVERAGE"])
def test_msra_std(norm):
    data = filled((300, 200), f"type: 'msra' variance_norm: {norm}")
    n = {"FAN_IN": 200, "FAN_OUT": 300, "AVERAGE": 250}[norm]
    std = math.sqrt(2.0 / n)
    assert abs(data.mean()) < 0.01 * std
    assert abs(data.std() - std) < 0.01 * std


def bilinear_reference(k):
    """Caffe's loop, element by element."""
    f = math.ceil(k / 2.0)
    c = (k - 1) / (2.0 * f)
    w = np.empty((k, k))
    for y in range(k):
        for x in range(k):
            w[y, x] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return w


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7])
def test_bilinear_exact(k):
    data = filled((3, 2, k, k), "type: 'bilinear'")
    for o in range(3):
        for i in range(2):
            np.testing.assert_allclose(data[o, i], bilinear_reference(k), rtol=0, atol=1e-15)


def test_bilinear_4x4_hand_values():
    # k = 4: f = 2, c = 0.75; ramp = 1 - |x/2 - .75| = [.25, .75, .75, .25]
    ramp = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(filled((1, 1, 4, 4), "type: 'bilinear'")[0, 0],
                               np.outer(ramp, ramp))


def test_same_seed_same_draw_other_seed_other_draw():
    a = filled((5, 6), "type: 'gaussian'", seed=3)
    b = filled((5, 6), "type: 'gaussian'", seed=3)
    c = filled((5, 6), "type: 'gaussian'", seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("text, message", [
    ("type: 'gausian'", "did you mean 'gaussian'"),
    ("type: 'xavier' sparse: 3", "sparse"),
    ("type: 'constant' sparse: 0", "sparse"),
    ("type: 'uniform' min: 2 max: 1", "min <= max"),
])
def test_errors(text, message):
    with pytest.raises(CaffeliteError, match=message):
        filled((4, 5), text)


@pytest.mark.parametrize("shape, message", [((2, 3, 3), "4-D"), ((1, 1, 3, 4), "square")])
def test_bilinear_errors(shape, message):
    with pytest.raises(CaffeliteError, match=message):
        filled(shape, "type: 'bilinear'")


def test_error_names_the_owner():
    blob = Blob((2, 2))
    with pytest.raises(CaffeliteError, match="layer 'ip1'.*weight_filler.*msra"):
        fill(blob, pb.FillerParameter(type="mrsa"), np.random.default_rng(0),
             where="layer 'ip1' (InnerProduct) weight_filler")
