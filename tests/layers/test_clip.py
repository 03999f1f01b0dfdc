"""Clip: forward vs np.clip and torch.clamp; gradient mask incl. both ends; errors; in place."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

TEXT = "type: 'Clip' clip_param { min: -1 max: 2 }"


def run(x, in_place=False, dtype=np.float64, text=TEXT):
    layer = make_layer(text, dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


def test_forward_formula(rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 2
    _, _, top = run(x)
    np.testing.assert_array_equal(top.data, np.where(x < -1, -1, np.where(x > 2, 2, x)))


def test_forward_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = (rng.normal(size=(6, 7)) * 2).astype(np.float32)
    _, _, top = run(x, dtype=np.float32, text="type: 'Clip' clip_param { min: -0.5 max: 0.7 }")
    expected = torch.clamp(torch.from_numpy(x), np.float32(-0.5), np.float32(0.7)).numpy()
    np.testing.assert_array_equal(top.data, expected)


def test_gradient(rng):
    x = rng.normal(size=(2, 3, 4, 5)) * 2
    # Keep x off the two kinks (-1 and 2) by more than the checker's step.
    for kink in (-1.0, 2.0):
        near = np.abs(x - kink) < 0.05
        x[near] = kink + np.where(x[near] >= kink, 0.05, -0.05)
    check_gradient(make_layer(TEXT), [blob_from(x)], [Blob(dtype=np.float64)])


def test_gradient_passes_at_both_ends_in_and_out_of_place():
    x = np.array([-3.0, -1.0, 0.5, 2.0, 4.0])
    dy = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), in_place)
        np.testing.assert_array_equal(top.data, [-1.0, -1.0, 0.5, 2.0, 2.0])
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        np.testing.assert_array_equal(bottom.diff, [0.0, 2.0, 3.0, 4.0, 0.0])


@pytest.mark.parametrize("param,message", [
    ("clip_param { min: -1 }", "max missing"),
    ("clip_param { max: 1 }", "min missing"),
    ("", "min and max missing"),
    ("clip_param { min: 2 max: 1 }", "greater than max"),
])
def test_bad_parameters(param, message):
    layer = make_layer(f"type: 'Clip' {param}")
    with pytest.raises(NetError, match=rf"layer 'test' \(Clip\).*{message}"):
        layer.setup([blob_from(np.ones(3))], [Blob(dtype=np.float64)])
