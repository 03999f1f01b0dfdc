"""RNN: forward/backward vs torch RNNCell + tanh output layer, cont, x_static, expose_hidden."""
import numpy as np
import pytest

from caffelite.blob import Blob
from tests.gradient_check import blob_from, check_gradient, make_layer

T, N, K, KS, D = 5, 3, 4, 2, 3
FILLERS = ("weight_filler { type: 'uniform' min: -0.6 max: 0.6 } "
           "bias_filler { type: 'uniform' min: -0.3 max: 0.3 }")


def make(expose=False):
    return make_layer(f"type: 'RNN' recurrent_param {{ num_output: {D} {FILLERS} "
                      f"expose_hidden: {str(expose).lower()} }}")


def setup(arrays, expose=False):
    layer = make(expose)
    bottom = [blob_from(a) for a in arrays]
    top = [Blob(dtype=np.float64) for _ in range(2 if expose else 1)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top


def torch_reference(layer, x, cont, static=None, h0=None):
    """nn.RNNCell (tanh) with W_xh/b_h/W_hh, then o = tanh(W_ho·h + b_o); cont = 0 resets h."""
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    w = [torch.from_numpy(b.data.copy()).requires_grad_() for b in layer.blobs]
    w_xh, b_h, w_hh, w_ho, b_o = w[0], w[1], w[-3], w[-2], w[-1]
    tx = torch.from_numpy(x).requires_grad_()
    ts = None if static is None else torch.from_numpy(static).requires_grad_()
    h = torch.zeros(N, D, dtype=torch.float64) if h0 is None else torch.from_numpy(h0)
    h = h.clone().requires_grad_()
    leaves = {"x": tx, "static": ts, "h0": h, "params": w}
    outs = []
    for t in range(T):
        keep = torch.from_numpy(cont[t])[:, None]
        inp = tx[t] @ w_xh.T + b_h
        if ts is not None:
            inp = inp + ts @ w[2].T
        h = torch.tanh(inp + (h * keep) @ w_hh.T)  # h_t = tanh(W_hh·(cont·h) + W_xh·x_t + b_h)
        outs.append(torch.tanh(h @ w_ho.T + b_o))
    return torch, torch.stack(outs), h, leaves


@pytest.fixture
def seq(rng):
    x = rng.normal(size=(T, N, K))
    cont = np.ones((T, N))
    cont[0] = 0
    cont[3, 2] = 0
    return x, cont


def test_hidden_state_matches_torch_rnn(seq):
    """With all cont = 1 after t = 0, the hidden sequence is nn.RNN's with Caffe's weights."""
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    x, _ = seq
    cont = np.ones((T, N))
    cont[0] = 0
    layer, _, top = setup([x, cont])
    rnn = torch.nn.RNN(K, D, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(layer.blobs[0].data))
        rnn.bias_ih_l0.copy_(torch.from_numpy(layer.blobs[1].data))
        rnn.weight_hh_l0.copy_(torch.from_numpy(layer.blobs[2].data))
        rnn.bias_hh_l0.zero_()
        hidden, _ = rnn(torch.from_numpy(x))
        w_ho, b_o = (torch.from_numpy(b.data) for b in layer.blobs[3:])
        expected = torch.tanh(hidden @ w_ho.T + b_o)
    np.testing.assert_allclose(top[0].data, expected.numpy(), rtol=1e-12, atol=1e-14)


def test_forward_and_backward_match_torch(seq, rng):
    x, cont = seq
    static = rng.normal(size=(N, KS))
    layer, bottom, top = setup([x, cont, static])
    assert [b.shape for b in layer.blobs] == [(D, K), (D,), (D, KS), (D, D), (D, D), (D,)]
    torch, out, _, leaves = torch_reference(layer, x, cont, static)
    np.testing.assert_allclose(top[0].data, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    dy = rng.normal(size=out.shape)
    (out * torch.from_numpy(dy)).sum().backward()
    top[0].diff[...] = dy
    layer.backward(top, [True, False, True], bottom)
    np.testing.assert_allclose(bottom[0].diff, leaves["x"].grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(bottom[2].diff, leaves["static"].grad.numpy(), rtol=1e-10,
                               atol=1e-13)
    for blob, leaf in zip(layer.blobs, leaves["params"]):
        np.testing.assert_allclose(blob.diff, leaf.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_expose_hidden_matches_torch(rng):
    x, cont = rng.normal(size=(T, N, K)), np.ones((T, N))
    h0 = rng.normal(size=(1, N, D))
    layer, bottom, top = setup([x, cont, h0], expose=True)
    torch, out, h_T, leaves = torch_reference(layer, x, cont, h0=h0[0])
    np.testing.assert_allclose(top[0].data, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(top[1].data[0], h_T.detach().numpy(), rtol=1e-12)
    dys = [rng.normal(size=b.shape) for b in top]
    ((out * torch.from_numpy(dys[0])).sum() + (h_T * torch.from_numpy(dys[1][0])).sum()).backward()
    for blob, dy in zip(top, dys):
        blob.diff[...] = dy
    layer.backward(top, [True, False, True], bottom)
    np.testing.assert_allclose(bottom[2].diff[0], leaves["h0"].grad.numpy(), rtol=1e-10,
                               atol=1e-13)


def test_gradient(seq, rng):
    x, cont = seq
    bottom = [blob_from(x[:3, :2, :3]), blob_from(cont[:3, :2]),
              blob_from(rng.normal(size=(2, 2)))]
    check_gradient(make(), bottom, [Blob(dtype=np.float64)], check_bottom=[0, 2])


def test_gradient_exposed(rng):
    cont = np.ones((3, 2))
    cont[2, 1] = 0
    bottom = [blob_from(rng.normal(size=(3, 2, 3))), blob_from(cont),
              blob_from(rng.normal(size=(1, 2, D)))]
    check_gradient(make(expose=True), bottom, [Blob(dtype=np.float64), Blob(dtype=np.float64)],
                   check_bottom=[0, 2])


def test_state_carries_into_the_next_forward(rng):
    x, cont = rng.normal(size=(2 * T, N, K)), np.ones((2 * T, N))
    cont[0] = 0
    whole, _, top = setup([x, cont])
    halves, _, first = setup([x[:T], cont[:T]])
    for blob, ref in zip(halves.blobs, whole.blobs):
        blob.data[...] = ref.data
    halves.reset()  # forget the state left by setup()'s forward (other weights)
    assert not halves.carried[0].any()
    outs = []
    for part in (slice(0, T), slice(T, 2 * T)):
        bottom, part_top = [blob_from(x[part]), blob_from(cont[part])], [Blob(dtype=np.float64)]
        halves.reshape(bottom, part_top)
        halves.forward(bottom, part_top)
        outs.append(part_top[0].data.copy())
    np.testing.assert_allclose(np.concatenate(outs), top[0].data, rtol=1e-13)
