"""Tile: forward vs np.tile and torch repeat; gradient sums the copies; errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

F64 = np.float64


def run(x, param):
    layer = make_layer(f"type: 'Tile' tile_param {{ {param} }}")
    bottom, top = [blob_from(x)], [Blob(dtype=F64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize("axis,tiles", [(1, 3), (0, 2), (3, 4), (-2, 2)])
def test_forward_matches_numpy(axis, tiles, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    _, _, top = run(x, f"axis: {axis} tiles: {tiles}")
    reps = [1, 1, 1, 1]
    reps[axis] = tiles
    np.testing.assert_array_equal(top[0].data, np.tile(x, reps))


def test_forward_matches_torch_repeat(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x = rng.normal(size=(2, 3, 4))
    _, _, top = run(x, "tiles: 3")
    np.testing.assert_array_equal(top[0].data, torch.from_numpy(x).repeat(1, 3, 1).numpy())


@pytest.mark.parametrize("param", ["tiles: 3", "axis: 0 tiles: 2", "axis: -1 tiles: 2"])
def test_gradient(param, rng):
    x = rng.normal(size=(2, 3, 4, 2))
    check_gradient(make_layer(f"type: 'Tile' tile_param {{ {param} }}"), [blob_from(x)],
                   [Blob(dtype=F64)])


def test_backward_sums_copies(rng):
    x = rng.normal(size=(2, 3))
    layer, bottom, top = run(x, "axis: 1 tiles: 2")
    dy = rng.normal(size=(2, 6))
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, dy[:, :3] + dy[:, 3:], rtol=1e-14)


@pytest.mark.parametrize("param,message", [("axis: 1", "tiles must be given"),
                                           ("tiles: 0", "must be positive"),
                                           ("axis: 4 tiles: 2", "axis 4 is out of range")])
def test_bad_parameters(param, message):
    with pytest.raises(NetError, match=r"layer 'test' \(Tile\).*" + message):
        run(np.ones((2, 3, 4, 5)), param)
