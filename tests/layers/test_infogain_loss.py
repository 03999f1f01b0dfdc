"""InfogainLoss: H-weighted log loss of softmax vs a NumPy loop and torch, H from file or bottom."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.proto import caffelite_pb2 as pb
from tests.gradient_check import blob_from, check_gradient, make_layer


def run(arrays, params="", tops=1):
    layer = make_layer(f"type: 'InfogainLoss' {params}")
    bottom = [blob_from(a) for a in arrays]
    top = [Blob(dtype=np.float64) for _ in range(tops)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def loop_loss(x, labels, H, axis=1, ignore=None, mode="VALID"):
    """The formula, one position at a time (classes moved to the last axis)."""
    outer = int(np.prod(x.shape[:axis]))
    scores = np.moveaxis(x, axis, -1).reshape(outer, -1, x.shape[axis])
    lab = labels.reshape(outer, -1).astype(int)
    total, valid = 0.0, 0
    for i in range(outer):
        for j in range(lab.shape[1]):
            if lab[i, j] == ignore:
                continue
            e = np.exp(scores[i, j] - scores[i, j].max())
            p = e / e.sum()
            total -= sum(H[lab[i, j], k] * np.log(max(p[k], 1e-20)) for k in range(len(p)))
            valid += 1
    norm = {"FULL": lab.size, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(norm, 1)


def write_h(path, H, legacy=True):
    proto = pb.BlobProto()
    if legacy:  # Caffe's own infogain files carry the 4-D header (1, 1, L, L)
        proto.num, proto.channels, proto.height, proto.width = 1, 1, *H.shape
    else:
        proto.shape.dim.extend(H.shape)
    proto.data.extend(H.astype(np.float32).ravel().tolist())
    path.write_bytes(proto.SerializeToString())
    return str(path)


@pytest.fixture
def data(rng):
    x = rng.normal(size=(3, 4, 2, 2)) * 2
    labels = rng.integers(0, 4, size=(3, 1, 2, 2)).astype(np.float64)
    labels[0, 0, 0, 0] = 1
    H = rng.uniform(0, 1, size=(4, 4)).astype(np.float32).astype(np.float64)
    return x, labels, H


def test_source_file_matches_loop(data, tmp_path):
    x, labels, H = data
    source = write_h(tmp_path / "H.binaryproto", H)
    _, _, top = run([x, labels], f"infogain_loss_param {{ source: '{source}' }}")
    np.testing.assert_allclose(float(top[0].data), loop_loss(x, labels, H), rtol=1e-12)


def test_third_bottom_axis_ignore_and_modes(data):
    x, labels, H = data
    xt = np.moveaxis(x, 1, 3)  # classes on the last axis
    for mode in ("FULL", "VALID", "BATCH_SIZE", "NONE"):
        params = (f"infogain_loss_param {{ axis: -1 }} loss_param {{ ignore_label: 1 "
                  f"normalization: {mode} }}")
        _, _, top = run([xt, labels, H], params)
        np.testing.assert_allclose(float(top[0].data),
                                   loop_loss(xt, labels, H, 3, ignore=1, mode=mode), rtol=1e-12)


def test_identity_h_is_softmax_cross_entropy(data):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x, labels, _ = data
    _, _, top = run([x, labels, np.eye(4)], tops=2)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(x),
                                                 torch.from_numpy(labels[:, 0]).long())
    np.testing.assert_allclose(float(top[0].data), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(top[1].data, torch.softmax(torch.from_numpy(x), 1).numpy(),
                               rtol=1e-12)


def test_backward_matches_torch(data):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x, labels, H = data
    layer, bottom, top = run([x, labels, H], "loss_weight: 3")
    tx = torch.from_numpy(x).requires_grad_()
    logp = torch.log_softmax(tx, 1)  # (N, L, h, w)
    rows = torch.from_numpy(H)[torch.from_numpy(labels[:, 0]).long()]  # (N, h, w, L)
    loss = -3 * (rows.permute(0, 3, 1, 2) * logp).sum() / labels.size
    loss.backward()
    layer.backward(top, [True, False, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_gradient(data):
    x, labels, H = data
    layer = make_layer("type: 'InfogainLoss' loss_param { ignore_label: 2 }")
    check_gradient(layer, [blob_from(x), blob_from(labels), blob_from(H)],
                   [Blob(dtype=np.float64)], check_bottom=[0], threshold=1e-2)


def test_errors(data, tmp_path):
    x, labels, H = data
    with pytest.raises(NetError, match=r"layer 'ig' \(InfogainLoss\).*source"):
        run([x, labels], "name: 'ig'")
    with pytest.raises(NetError, match="no such file"):
        run([x, labels], f"infogain_loss_param {{ source: '{tmp_path / 'missing'}' }}")
    with pytest.raises(NetError, match="4x4"):
        run([x, labels, np.eye(3)])
    bad = labels.copy()
    bad[1, 0, 1, 1] = 7
    with pytest.raises(NetError, match="label 7 out of range"):
        run([x, bad, H])
