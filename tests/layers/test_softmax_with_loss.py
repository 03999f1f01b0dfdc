"""SoftmaxWithLoss: loss and gradient vs torch cross_entropy and a NumPy formula, per mode."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import CaffeliteError
from tests.gradient_check import blob_from, check_gradient, make_layer

FLT_MIN = float(np.finfo(np.float32).tiny)  # 2**-126


def run(x, labels, params="", tops=1):
    layer = make_layer(f"type: 'SoftmaxWithLoss' {params}")
    bottom = [blob_from(x), blob_from(labels)]
    top = [Blob(dtype=np.float64) for _ in range(tops)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def numpy_loss(x, labels, ignore=None, mode="VALID", axis=1):
    """The formula, written out: x moved to (outer, inner, C)."""
    x = np.moveaxis(x, axis, -1)
    outer = int(np.prod(x.shape[:axis]))
    x = x.reshape(outer, -1, x.shape[-1])
    lab = labels.reshape(outer, -1).astype(int)
    e = np.exp(x - x.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    total, valid = 0.0, 0
    for i in range(outer):
        for j in range(lab.shape[1]):
            if lab[i, j] == ignore:
                continue
            total -= np.log(max(p[i, j, lab[i, j]], FLT_MIN))
            valid += 1
    norm = {"FULL": lab.size, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(norm, 1)


@pytest.fixture
def spatial(rng):
    x = rng.normal(size=(3, 5, 2, 4)) * 2
    labels = rng.integers(0, 5, size=(3, 1, 2, 4)).astype(np.float64)
    labels[0, 0, 0, :3] = 2  # make sure the ignored label occurs
    return x, labels


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_normalization_matches_torch(mode, spatial):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    F = torch.nn.functional
    x, labels = spatial
    _, _, top = run(x, labels, f"loss_param {{ ignore_label: 2 normalization: {mode} }}")
    tx, tl = torch.from_numpy(x), torch.from_numpy(labels[:, 0]).long()
    summed = F.cross_entropy(tx, tl, ignore_index=2, reduction="sum").item()
    expected = {"FULL": summed / labels.size, "VALID": F.cross_entropy(
        tx, tl, ignore_index=2, reduction="mean").item(), "BATCH_SIZE": summed / 3,
        "NONE": summed}[mode]
    np.testing.assert_allclose(float(top[0].data), expected, rtol=1e-12)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_normalization_matches_formula(mode, spatial):
    x, labels = spatial
    _, _, top = run(x, labels, f"loss_param {{ ignore_label: 2 normalization: {mode} }}")
    np.testing.assert_allclose(float(top[0].data), numpy_loss(x, labels, 2, mode), rtol=1e-12)


@pytest.mark.parametrize("params, mode", [
    ("loss_param { normalize: false }", "BATCH_SIZE"),
    ("loss_param { normalize: true }", "VALID"),
    ("loss_param { normalize: false normalization: FULL }", "FULL"),
    ("", "VALID"),
])
def test_deprecated_normalize(params, mode, spatial):
    x, labels = spatial
    _, _, top = run(x, labels, params)
    np.testing.assert_allclose(float(top[0].data), numpy_loss(x, labels, None, mode), rtol=1e-12)


def test_all_ignored_clamps_normalizer_to_one(rng):
    x = rng.normal(size=(4, 3))
    layer, bottom, top = run(x, np.full(4, 1.0), "loss_param { ignore_label: 1 }")
    assert float(top[0].data) == 0.0
    layer.backward(top, [True, False], bottom)
    assert np.all(bottom[0].diff == 0)


def test_softmax_axis(rng):
    x = rng.normal(size=(2, 3, 4))
    labels = rng.integers(0, 4, size=(2, 3)).astype(np.float64)
    _, _, top = run(x, labels, "softmax_param { axis: 2 }")
    np.testing.assert_allclose(float(top[0].data), numpy_loss(x, labels, axis=2), rtol=1e-12)


def test_probability_top_and_flt_min_clamp():
    x = np.array([[0.0, 2000.0, 0.0], [1.0, 1.0, 1.0]])
    _, _, top = run(x, np.array([0.0, 2.0]), tops=2)
    np.testing.assert_allclose(top[1].data[1], [1 / 3] * 3, rtol=1e-12)
    assert top[1].data[0, 0] == 0.0
    # p = 0 is clamped to FLT_MIN: -log(FLT_MIN) = 87.336...
    expected = (-np.log(FLT_MIN) + np.log(3.0)) / 2
    np.testing.assert_allclose(float(top[0].data), expected, rtol=1e-12)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_gradient(mode, spatial):
    x, labels = spatial
    layer = make_layer(f"type: 'SoftmaxWithLoss' loss_param {{ ignore_label: 2 "
                       f"normalization: {mode} }}")
    check_gradient(layer, [blob_from(x), blob_from(labels)], [Blob(dtype=np.float64)],
                   check_bottom=[0])


def test_gradient_axis_2(rng):
    labels = rng.integers(0, 4, size=(2, 3)).astype(np.float64)
    layer = make_layer("type: 'SoftmaxWithLoss' softmax_param { axis: 2 }")
    check_gradient(layer, [blob_from(rng.normal(size=(2, 3, 4))), blob_from(labels)],
                   [Blob(dtype=np.float64)], check_bottom=[0])


def test_gradient_scaled_by_loss_weight_matches_torch(spatial):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x, labels = spatial
    layer = make_layer("type: 'SoftmaxWithLoss' loss_weight: 3 loss_param { ignore_label: 2 }")
    bottom, top = [blob_from(x), blob_from(labels)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    assert float(top[0].diff) == 3.0
    layer.forward(bottom, top)
    layer.backward(top, [True, False], bottom)
    tx = torch.from_numpy(x).requires_grad_()
    loss = 3 * torch.nn.functional.cross_entropy(tx, torch.from_numpy(labels[:, 0]).long(),
                                                 ignore_index=2)
    loss.backward()
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_label_errors(rng):
    with pytest.raises(CaffeliteError, match="out of range"):
        run(rng.normal(size=(2, 3)), np.array([0.0, 3.0]))
    with pytest.raises(CaffeliteError, match="number of labels"):
        run(rng.normal(size=(2, 3, 2)), np.array([0.0, 1.0]))
    layer, bottom, top = run(rng.normal(size=(2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(CaffeliteError, match="label"):
        layer.backward(top, [True, True], bottom)
