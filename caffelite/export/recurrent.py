"""RNN, LSTM and LSTMUnit, unrolled over the net's T timesteps.

ONNX's own LSTM/RNN operators have no per-step sequence indicator (Caffe's `cont`, which
zeroes the carried state mid-batch), another gate order and no RNN output layer, so the
recurrence is written out step by step: every case Caffe has (cont anywhere, x_static,
expose_hidden) is exported exactly. T is fixed at export (it is the net's shape); the batch N
stays dynamic. The ONNX model holds no state between runs: without expose_hidden, h_0 = c_0 = 0,
which is the layer's first forward (Caffe carries the last state into the next forward).
"""
from .onnx_graph import converts


def _step(g, tensor, t, axis=0):
    """tensor[t:t+1] along axis (keeps the axis)."""
    return g.node("Slice", [tensor, g.ints([t], "t"), g.ints([t + 1], "t1"),
                            g.ints([axis], "axis")])


def _gates(g, gates, lo, hi):
    return g.node("Slice", [gates, g.ints([lo], "lo"), g.ints([hi], "hi"), g.ints([2], "axis")])


def _projection(g, layer, xs, weight, bias, static_index):
    """x_t·Wᵀ + b for every step at once, (T, N, out), plus W_static·x_static when given."""
    x = g.reshape(xs[0], [0, 0, -1])  # (T, N, K)
    pre = g.node("MatMul", [x, g.const(weight.T, "weight_T")])
    pre = g.node("Add", [pre, g.const(bias, "bias")])
    if layer.static_input:
        static = g.reshape(xs[2], [0, -1])  # (N, K_static)
        w_static = layer.blobs[static_index].data
        pre = g.node("Add", [pre, g.node("MatMul", [static, g.const(w_static.T, "static_T")])])
    return pre


def _recurrent_inputs(g, layer, xs):
    """(cont as (T, N, 1), the initial states or None)."""
    cont = g.node("Unsqueeze", [xs[1], g.ints([2], "axes")])
    first = 2 + layer.static_input
    states = xs[first:first + layer.num_exposed] if layer.expose_hidden else []
    return cont, list(states) or [None] * len(layer.state_names)


def _carry(g, cont_t, state):
    return None if state is None else g.node("Mul", [cont_t, state])


@converts("LSTM")
def lstm(g, layer, xs):
    """gates = W_xc·x_t + b_c (+ W_static·x_static) + W_hc·(cont_t·h_{t−1}), ordered i f o g;
    c_t = cont_t·f·c_{t−1} + i·g; h_t = o·tanh(c_t)."""
    d = layer.num_output
    pre = _projection(g, layer, xs, layer.blobs[0].data, layer.blobs[1].data, 2)
    w_hc = g.const(layer.blobs[-1].data.T, "w_hc_T")
    cont, (h, c) = _recurrent_inputs(g, layer, xs)
    outputs = []
    for t in range(g.shape(g.bottom_blobs[0])[0]):
        cont_t = _step(g, cont, t)
        gates = _step(g, pre, t)  # (1, N, 4D)
        h_conted = _carry(g, cont_t, h)
        if h_conted is not None:
            gates = g.node("Add", [gates, g.node("MatMul", [h_conted, w_hc])])
        c, h = _cell(g, gates, _carry(g, cont_t, c), d)
        outputs.append(h)
    return _finish(g, outputs, [h, c])


def _cell(g, gates, c_conted, d):
    """(c, h) of one LSTM step from its gate inputs and cont·c_{t−1} (None: zero)."""
    sig = g.node("Sigmoid", [_gates(g, gates, 0, 3 * d)])
    i, f, o = (_gates(g, sig, k * d, (k + 1) * d) for k in range(3))
    cell_in = g.node("Mul", [i, g.node("Tanh", [_gates(g, gates, 3 * d, 4 * d)])])
    c = cell_in
    if c_conted is not None:
        c = g.node("Add", [g.node("Mul", [f, c_conted]), cell_in])
    return c, g.node("Mul", [o, g.node("Tanh", [c])])


def _finish(g, outputs, finals):
    """Top 0: the steps concatenated (T, N, D); then the final states when exposed."""
    tops = [g.node("Concat", outputs, g.top(0), axis=0)]
    for i, state in enumerate(finals[:len(g.top_blobs) - 1], start=1):
        tops.append(g.node("Identity", [state], g.top(i)))
    return tops


@converts("RNN")
def rnn(g, layer, xs):
    """h_t = tanh(W_xh·x_t + b_h (+ W_static·x_static) + W_hh·(cont_t·h_{t−1}));
    o_t = tanh(W_ho·h_t + b_o)."""
    w_hh, w_ho, b_o = (blob.data for blob in layer.blobs[-3:])
    pre = _projection(g, layer, xs, layer.blobs[0].data, layer.blobs[1].data, 2)
    w_hh = g.const(w_hh.T, "w_hh_T")
    cont, (h,) = _recurrent_inputs(g, layer, xs)
    hidden = []
    for t in range(g.shape(g.bottom_blobs[0])[0]):
        step = _step(g, pre, t)
        h_conted = _carry(g, _step(g, cont, t), h)
        if h_conted is not None:
            step = g.node("Add", [step, g.node("MatMul", [h_conted, w_hh])])
        h = g.node("Tanh", [step])
        hidden.append(h)
    stacked = g.node("Concat", hidden, axis=0)
    out = g.node("MatMul", [stacked, g.const(w_ho.T, "w_ho_T")])
    tops = [g.node("Tanh", [g.node("Add", [out, g.const(b_o, "b_o")])], g.top(0))]
    if len(g.top_blobs) > 1:
        tops.append(g.node("Identity", [h], g.top(1)))
    return tops


@converts("LSTMUnit")
def lstm_unit(g, layer, xs):
    """One step: bottoms c_prev (1, N, D), gates (1, N, 4D), cont (1, N); tops c, h."""
    d = g.shape(g.bottom_blobs[0])[2]
    cont = g.node("Unsqueeze", [xs[2], g.ints([2], "axes")])
    c, h = _cell(g, xs[1], g.node("Mul", [cont, xs[0]]), d)
    return [g.node("Identity", [c], g.top(0)), g.node("Identity", [h], g.top(1))]

