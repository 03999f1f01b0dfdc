"""ReLU: forward vs the formula and torch leaky_relu; gradient with Caffe's kink skip; in place."""
import numpy as np
import pytest

from caffelite import runtime
from caffelite.blob import Blob
from caffelite.layers import relu
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, slope=None, in_place=False, dtype=np.float64):
    text = "type: 'ReLU'" + (f" relu_param {{ negative_slope: {slope} }}" if slope is not None
                             else "")
    layer = make_layer(text, dtype=dtype)
    bottom = blob_from(x, dtype=dtype)
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    return layer, bottom, top


@pytest.mark.parametrize("slope", [None, 0.0, 0.1, 2.0])
def test_forward_formula(slope, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    _, _, top = run(x, slope)
    s = float(np.float32(slope or 0.0))  # the proto field is a float
    np.testing.assert_array_equal(top.data, np.where(x > 0, x, s * x))


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3])
def test_forward_matches_torch(slope, rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(4, 7)).astype(np.float32)
    _, _, top = run(x, slope, dtype=np.float32)
    expected = torch.nn.functional.leaky_relu(torch.from_numpy(x), slope).numpy()
    np.testing.assert_allclose(top.data, expected, rtol=1e-6, atol=0)
    assert top.data.dtype == np.float32


@pytest.mark.parametrize("slope", [None, 0.01, 0.5])
def test_gradient(slope, rng):
    text = "type: 'ReLU'" + (f" relu_param {{ negative_slope: {slope} }}" if slope else "")
    x = rng.normal(size=(2, 3, 4, 5))
    check_gradient(make_layer(text), [blob_from(x)], [Blob()], kink=0.0, kink_range=0.01)


def test_backward_values(rng):
    x = rng.normal(size=(3, 4))
    layer, bottom, top = run(x, 0.2)
    dy = rng.normal(size=x.shape)
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    np.testing.assert_array_equal(bottom.diff, dy * np.where(x > 0, 1.0, float(np.float32(0.2))))


@pytest.mark.parametrize("slope", [0.0, 0.25])
def test_in_place_equals_out_of_place(slope, rng):
    x = rng.normal(size=(2, 3, 5))
    dy = rng.normal(size=x.shape)
    results = []
    for in_place in (False, True):
        layer, bottom, top = run(x.copy(), slope, in_place=in_place)
        y = top.data.copy()
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        results.append((y, bottom.diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_no_propagate_down_leaves_diff(rng):
    layer, bottom, top = run(rng.normal(size=(3,)))
    bottom.diff[...] = 5
    layer.backward([top], [False], [bottom])
    assert np.all(bottom.diff == 5)


@pytest.mark.parametrize("slope", [0.0, 0.25])
def test_split_among_threads_gives_the_same_values(slope, rng, monkeypatch):
    x = rng.normal(size=(4, 3, 5, 7))
    dy = rng.normal(size=x.shape)
    results, saved = [], runtime.num_threads()
    monkeypatch.setattr(runtime.pool, "ELEMENTWISE_MIN", 16)  # split even these 420 values
    splits, parallel = [], runtime.parallel
    monkeypatch.setattr(runtime.pool, "parallel", lambda *args, **kw: (splits.append(args[1]),
                                                                  parallel(*args, **kw)))
    for threads in (1, 2):
        runtime.set_num_threads(threads)
        try:
            layer, bottom, top = run(x.copy(), slope, in_place=True)
            y = top.data.copy()
            top.diff[...] = dy
            layer.backward([top], [True], [bottom])
            results.append((y, bottom.diff.copy()))
        finally:
            runtime.set_num_threads(saved)
    assert splits == [x.size, x.size] * 2  # forward and backward, in both runs
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[1][0], np.where(x > 0, x, np.float32(slope) * x))


@pytest.mark.parametrize("slope", [0.0, 0.25])
@pytest.mark.parametrize("in_place", [False, True])
def test_rectifies_block_by_block(in_place, slope, rng, monkeypatch):
    """Against a block of zeros shorter than the blob: every block and the short last one."""
    monkeypatch.setattr(relu, "ZEROS_BLOCK", 16)
    x = rng.normal(size=(5, 7)).astype(np.float32)  # 35 values: blocks of 16, 16 and 3
    x[0, :3] = [-0.0, np.inf, -np.inf]
    x[4, 6] = np.nan
    layer, _, top = run(x.copy(), slope, in_place=in_place, dtype=np.float32)
    assert layer.zeros.size == 16
    zero, s = np.float32(0), np.float32(slope)
    expected = np.maximum(x, zero)  # NaN stays NaN
    if slope:
        expected += s * np.minimum(x, zero)
    assert top.data.tobytes() == expected.tobytes()  # bit for bit: max(−0, 0) is +0


def test_empty_blob():
    _, _, top = run(np.zeros((0, 3)), dtype=np.float32)
    assert top.shape == (0, 3)
