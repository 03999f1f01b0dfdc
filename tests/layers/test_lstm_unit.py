"""LSTMUnit: one cell step vs the NumPy formula (gates i, f, o, g), cont, gradients, errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient_exhaustive, make_layer


def formula(c_prev, gates, cont):
    d = c_prev.shape[-1]
    sig = 1 / (1 + np.exp(-gates))
    i, f, o = sig[..., :d], sig[..., d:2 * d], sig[..., 2 * d:3 * d]
    g = np.tanh(gates[..., 3 * d:])
    c = cont[..., None] * f * c_prev + i * g
    return c, o * np.tanh(c)


def run(c_prev, gates, cont):
    layer = make_layer("type: 'LSTMUnit'")
    bottom = [blob_from(c_prev), blob_from(gates), blob_from(cont)]
    top = [Blob(dtype=np.float64), Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.fixture
def data(rng):
    c_prev = rng.normal(size=(1, 4, 3))
    gates = rng.normal(size=(1, 4, 12)) * 2
    cont = np.array([[1.0, 0.0, 1.0, 0.0]])
    return c_prev, gates, cont


def test_forward_matches_formula(data):
    _, _, top = run(*data)
    c, h = formula(*data)
    np.testing.assert_allclose(top[0].data, c, rtol=1e-13)
    np.testing.assert_allclose(top[1].data, h, rtol=1e-13)
    assert top[0].shape == top[1].shape == (1, 4, 3)


def test_cont_zero_forgets_the_previous_cell():
    gates = np.zeros((1, 1, 4))
    gates[0, 0, 3] = np.log(3)  # g = tanh(log 3) = 0.8; i = f = o = 0.5
    _, _, top = run(np.full((1, 1, 1), 10.0), gates, np.zeros((1, 1)))
    assert top[0].data[0, 0, 0] == pytest.approx(0.4)
    assert top[1].data[0, 0, 0] == pytest.approx(0.5 * np.tanh(0.4))
    _, _, top = run(np.full((1, 1, 1), 10.0), gates, np.ones((1, 1)))
    assert top[0].data[0, 0, 0] == pytest.approx(5.4)


def test_gradient(data):
    layer = make_layer("type: 'LSTMUnit'")
    bottom = [blob_from(a) for a in data]
    check_gradient_exhaustive(layer, bottom, [Blob(dtype=np.float64), Blob(dtype=np.float64)],
                              check_bottom=[0, 1])


def test_no_gradient_to_cont(data):
    layer, bottom, top = run(*data)
    assert not layer.allow_force_backward(2)
    with pytest.raises(NetError, match="cont"):
        layer.backward(top, [True, True, True], bottom)


def test_shape_errors(data):
    c_prev, gates, cont = data
    with pytest.raises(NetError, match=r"\(LSTMUnit\).*4·D = 12"):
        run(c_prev, gates[..., :8], cont)
    with pytest.raises(NetError, match=r"bottom\[2\] \(cont\)"):
        run(c_prev, gates, cont[:, :3])
