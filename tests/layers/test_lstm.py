"""LSTM: forward/backward vs torch LSTMCell (gates remapped), cont, x_static, expose_hidden."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, check_gradient, make_layer

T, N, K, KS, D = 4, 3, 5, 2, 3
FILLERS = ("weight_filler { type: 'uniform' min: -0.6 max: 0.6 } "
           "bias_filler { type: 'uniform' min: -0.3 max: 0.3 }")


def make(expose=False, num_output=D):
    return make_layer(f"type: 'LSTM' recurrent_param {{ num_output: {num_output} {FILLERS} "
                      f"expose_hidden: {str(expose).lower()} }}")


def setup(arrays, expose=False):
    layer = make(expose)
    bottom = [blob_from(a) for a in arrays]
    top = [Blob(dtype=np.float64) for _ in range(3 if expose else 1)]
    layer.setup(bottom, top)
    return layer, bottom, top


def caffe_to_torch_gates(w):
    """Caffe orders the 4D gate rows i, f, o, g; torch orders them i, f, g, o."""
    i, f, o, g = np.split(w, 4, axis=0)
    return np.concatenate([i, f, g, o], axis=0)


def torch_reference(layer, x, cont, static=None, h0=None, c0=None):
    """Step nn.LSTMCell with Caffe's weights; cont = 0 restarts a stream from zero state.

    Returns (torch, outputs (T, N, D), h_T, c_T, leaf tensors for gradients).
    """
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    blobs = [b.data for b in layer.blobs]
    w_ih = blobs[0] if static is None else np.concatenate([blobs[0], blobs[2]], axis=1)
    cell = torch.nn.LSTMCell(w_ih.shape[1], D, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(caffe_to_torch_gates(w_ih)))
        cell.weight_hh.copy_(torch.from_numpy(caffe_to_torch_gates(blobs[-1])))
        cell.bias_ih.copy_(torch.from_numpy(caffe_to_torch_gates(blobs[1])))
        cell.bias_hh.zero_()
    tx = torch.from_numpy(x).requires_grad_()
    ts = None if static is None else torch.from_numpy(static).requires_grad_()
    th0 = torch.zeros(N, D, dtype=torch.float64) if h0 is None else torch.from_numpy(h0)
    tc0 = torch.zeros(N, D, dtype=torch.float64) if c0 is None else torch.from_numpy(c0)
    th0, tc0 = th0.clone().requires_grad_(), tc0.clone().requires_grad_()
    h, c, outs = th0, tc0, []
    for t in range(T):
        keep = torch.from_numpy(cont[t])[:, None]
        inp = tx[t] if ts is None else torch.cat([tx[t], ts], dim=1)
        h, c = cell(inp, (h * keep, c * keep))
        outs.append(h)
    return torch, torch.stack(outs), h, c, (tx, ts, th0, tc0, cell)


@pytest.fixture
def seq(rng):
    x = rng.normal(size=(T, N, K))
    cont = np.ones((T, N))
    cont[0] = 0
    cont[2, 1] = 0  # stream 1 starts a new sequence at t = 2
    return x, cont


def test_blob_shapes_and_order(seq, rng):
    layer, _, _ = setup([*seq, rng.normal(size=(N, KS))])
    assert [b.shape for b in layer.blobs] == [(4 * D, K), (4 * D,), (4 * D, KS), (4 * D, D)]


def test_forward_and_backward_match_torch(seq, rng):
    x, cont = seq
    layer, bottom, top = setup([x, cont])
    layer.forward(bottom, top)
    torch, out, *_, (tx, _, _, _, cell) = torch_reference(layer, x, cont)
    np.testing.assert_allclose(top[0].data, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    dy = rng.normal(size=out.shape)
    (out * torch.from_numpy(dy)).sum().backward()
    top[0].diff[...] = dy
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-10, atol=1e-13)
    torch_w = cell.weight_ih.grad.numpy()
    np.testing.assert_allclose(caffe_to_torch_gates(layer.blobs[0].diff), torch_w, rtol=1e-10)
    np.testing.assert_allclose(caffe_to_torch_gates(layer.blobs[1].diff),
                               cell.bias_ih.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(caffe_to_torch_gates(layer.blobs[2].diff),
                               cell.weight_hh.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_static_input_matches_torch(seq, rng):
    x, cont = seq
    static = rng.normal(size=(N, KS))
    layer, bottom, top = setup([x, cont, static])
    layer.forward(bottom, top)
    torch, out, *_, (_, ts, _, _, cell) = torch_reference(layer, x, cont, static)
    np.testing.assert_allclose(top[0].data, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    dy = rng.normal(size=out.shape)
    (out * torch.from_numpy(dy)).sum().backward()
    top[0].diff[...] = dy
    layer.backward(top, [True, False, True], bottom)
    np.testing.assert_allclose(bottom[2].diff, ts.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(caffe_to_torch_gates(layer.blobs[2].diff),
                               cell.weight_ih.grad.numpy()[:, K:], rtol=1e-10, atol=1e-14)


def test_expose_hidden_order_and_gradients(rng):
    x, cont = rng.normal(size=(T, N, K)), np.ones((T, N))
    h0, c0 = rng.normal(size=(1, N, D)), rng.normal(size=(1, N, D))
    layer, bottom, top = setup([x, cont, h0, c0], expose=True)  # Caffe's order: h_0, c_0
    layer.forward(bottom, top)
    torch, out, h_T, c_T, (_, _, th0, tc0, _) = torch_reference(layer, x, cont, h0=h0[0],
                                                                 c0=c0[0])
    np.testing.assert_allclose(top[0].data, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(top[1].data[0], h_T.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(top[2].data[0], c_T.detach().numpy(), rtol=1e-12)
    dys = [rng.normal(size=b.shape) for b in top]
    loss = ((out * torch.from_numpy(dys[0])).sum() + (h_T * torch.from_numpy(dys[1][0])).sum()
            + (c_T * torch.from_numpy(dys[2][0])).sum())
    loss.backward()
    for blob, dy in zip(top, dys):
        blob.diff[...] = dy
    layer.backward(top, [True, False, True, True], bottom)
    np.testing.assert_allclose(bottom[2].diff[0], th0.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(bottom[3].diff[0], tc0.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_gradient(seq):
    x, cont = seq
    layer = make()
    check_gradient(layer, [blob_from(x[:3, :2, :3]), blob_from(cont[:3, :2])],
                   [Blob(dtype=np.float64)], check_bottom=[0])


def test_gradient_static_and_exposed(rng):
    x, cont = rng.normal(size=(3, 2, 3)), np.ones((3, 2))
    cont[1, 0] = 0
    bottom = [blob_from(a) for a in (x, cont, rng.normal(size=(2, 2)),
                                     rng.normal(size=(1, 2, D)), rng.normal(size=(1, 2, D)))]
    check_gradient(make(expose=True), bottom, [Blob(dtype=np.float64) for _ in range(3)],
                   check_bottom=[0, 2, 3, 4])


def test_state_carries_into_the_next_forward(rng):
    x, cont = rng.normal(size=(2 * T, N, K)), np.ones((2 * T, N))
    cont[0] = 0
    whole, bottom, top = setup([x, cont])
    whole.forward(bottom, top)
    expected = top[0].data.copy()
    halves, _, _ = setup([x[:T], cont[:T]])
    for blob, ref in zip(halves.blobs, whole.blobs):
        blob.data[...] = ref.data
    outs = []
    for part in (slice(0, T), slice(T, 2 * T)):
        bottom, top = [blob_from(x[part]), blob_from(cont[part])], [Blob(dtype=np.float64)]
        halves.reshape(bottom, top)
        halves.forward(bottom, top)
        outs.append(top[0].data.copy())
    np.testing.assert_allclose(np.concatenate(outs), expected, rtol=1e-13)
    state = halves.get_state()
    # cont = 0 at the first step ignores the carried state
    bottom = [blob_from(x[T:]), blob_from(np.vstack([np.zeros((1, N)), cont[T + 1:]]))]
    top = [Blob(dtype=np.float64)]
    halves.reshape(bottom, top)
    halves.forward(bottom, top)
    fresh, _, _ = setup([x[T:], bottom[1].data])
    for blob, ref in zip(fresh.blobs, whole.blobs):
        blob.data[...] = ref.data
    fresh_top = [Blob(dtype=np.float64)]
    fresh.reshape(bottom, fresh_top)
    fresh.forward(bottom, fresh_top)
    np.testing.assert_allclose(top[0].data, fresh_top[0].data, rtol=1e-13)
    halves.set_state(state)
    np.testing.assert_array_equal(halves.carried[0], state["carried"][0])


def test_errors(seq, rng):
    x, cont = seq
    with pytest.raises(NetError, match=r"\(LSTM\).*num_output"):
        make_layer("type: 'LSTM'").setup([blob_from(x), blob_from(cont)], [Blob()])
    with pytest.raises(NetError, match=r"cont\) must be \(T, N\)"):
        setup([x, cont[:, :2]])
    with pytest.raises(NetError, match="h_0, c_0"):
        setup([x, cont, rng.normal(size=(1, N, D))], expose=True)
    layer, bottom, top = setup([x, cont])
    layer.forward(bottom, top)
    with pytest.raises(NetError, match="sequence indicators"):
        layer.backward(top, [True, True], bottom)
    assert not layer.allow_force_backward(1)
