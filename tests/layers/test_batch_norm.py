"""BatchNorm: batch and running statistics vs torch batch_norm, Caffe's sums, gradients, errors."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.layer import TEST, TRAIN
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(x, params="", phase=TRAIN, layer=None):
    layer = layer or make_layer(f"type: 'BatchNorm' {params}", phase=phase)
    bottom, top = [blob_from(x)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.fixture
def x(rng):
    return rng.normal(loc=1.5, scale=2.0, size=(4, 3, 5, 2))


def test_training_matches_torch_and_running_stats(x):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    layer, _, top = run(x)
    tx = torch.from_numpy(x)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    # momentum 1 makes torch's running stats the batch mean and the unbiased (m/(m-1)) variance.
    expected = torch.nn.functional.batch_norm(tx, rm, rv, training=True, momentum=1.0, eps=1e-5)
    np.testing.assert_allclose(top[0].data, expected.numpy(), rtol=1e-10, atol=1e-12)
    s = layer.blobs[2].data[0]
    assert s == 1.0
    np.testing.assert_allclose(layer.blobs[0].data / s, rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].data / s, rv.numpy(), rtol=1e-12)
    assert [b.shape for b in layer.blobs] == [(3,), (3,), (1,)]


def test_moving_average_sums_over_batches(rng):
    maf = 0.875  # exact in the proto's float32
    layer = make_layer(f"type: 'BatchNorm' batch_norm_param {{ moving_average_fraction: {maf} }}")
    batches = [rng.normal(size=(3, 2, 4)) * (i + 1) for i in range(3)]
    for b in batches:
        run(b, layer=layer)
    m = 3 * 4
    s = b0 = b1 = 0.0
    for b in batches:
        s = maf * s + 1
        b0 = maf * b0 + b.mean(axis=(0, 2))
        b1 = maf * b1 + b.var(axis=(0, 2)) * m / (m - 1)
    np.testing.assert_allclose(layer.blobs[2].data, [s], rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].data, b0, rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].data, b1, rtol=1e-12)


def test_global_stats_matches_torch_eval(x):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    layer = make_layer("type: 'BatchNorm' batch_norm_param { eps: 1e-3 }", phase=TEST)
    bottom, top = [blob_from(x)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    assert layer.use_global_stats
    layer.blobs[0].data[...] = [0.5, -1.0, 2.0]
    layer.blobs[1].data[...] = [4.0, 0.5, 9.0]
    layer.blobs[2].data[...] = 2.0
    layer.forward(bottom, top)
    tx = torch.from_numpy(x).requires_grad_()
    expected = torch.nn.functional.batch_norm(
        tx, torch.tensor([0.25, -0.5, 1.0], dtype=torch.float64),
        torch.tensor([2.0, 0.25, 4.5], dtype=torch.float64), training=False,
        eps=float(np.float32(1e-3)))  # the proto field is a float32
    np.testing.assert_allclose(top[0].data, expected.detach().numpy(), rtol=1e-12)
    dy = np.random.default_rng(3).normal(size=x.shape)
    expected.backward(torch.from_numpy(dy))
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(layer.blobs[2].data, [2.0])  # not updated with global stats


def test_global_stats_zero_scale_factor_means_zero_stats(x):
    _, _, top = run(x, phase=TEST)
    np.testing.assert_allclose(top[0].data, x / np.sqrt(1e-5))


def test_training_backward_matches_torch(x):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    layer, bottom, top = run(x)
    tx = torch.from_numpy(x).requires_grad_()
    y = torch.nn.functional.batch_norm(tx, None, None, training=True, eps=1e-5)
    dy = np.random.default_rng(5).normal(size=x.shape)
    y.backward(torch.from_numpy(dy))
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (6, 4), (5,)])
def test_gradient_training(shape, rng):
    layer = make_layer("type: 'BatchNorm'")
    check_gradient(layer, [blob_from(rng.normal(size=shape))], [Blob(dtype=np.float64)])


def test_in_place_equals_out_of_place(x):
    _, _, top = run(x)
    layer = make_layer("type: 'BatchNorm'")
    blob = blob_from(x)
    layer.setup([blob], [blob])
    layer.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, top[0].data)
    dy = np.random.default_rng(2).normal(size=x.shape)
    blob.data[...] *= 3  # a later in-place layer (Scale) overwrites y; backward keeps its copy
    blob.diff[...] = dy
    layer.backward([blob], [True], [blob])
    ref, b2, t2 = run(x)
    t2[0].diff[...] = dy
    ref.backward(t2, [True], b2)
    np.testing.assert_allclose(blob.diff, b2[0].diff, rtol=1e-12)


def test_use_global_stats_default_and_override(x):
    assert not run(x, phase=TRAIN)[0].use_global_stats
    assert run(x, phase=TEST)[0].use_global_stats
    assert run(x, "batch_norm_param { use_global_stats: true }", TRAIN)[0].use_global_stats
    assert not run(x, "batch_norm_param { use_global_stats: false }", TEST)[0].use_global_stats


def test_statistics_are_masked_from_the_solver(x):
    layer, _, _ = run(x, "param { lr_mult: 0 }")
    specs = [(p.lr_mult, p.decay_mult) for p in layer.layer_param.param]
    assert specs == [(0.0, 1.0), (0.0, 0.0), (0.0, 0.0)]
    assert layer.param_propagate_down == [False] * 3


def test_nonzero_lr_mult_is_an_error(x):
    with pytest.raises(NetError, match=r"layer 'bn1' \(BatchNorm\).*lr_mult"):
        run(x, "name: 'bn1' param { lr_mult: 0 } param { lr_mult: 1 }")


def test_channel_mismatch_is_an_error(x):
    layer, _, _ = run(x)
    with pytest.raises(NetError, match="channels"):
        layer.reshape([blob_from(np.zeros((2, 4, 1, 1)))], [Blob(dtype=np.float64)])
