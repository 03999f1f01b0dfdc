"""LSTM: [i f o g] = W_xc·x_t + b_c + W_hc·(cont_t·h_{t-1}); c_t = cont_t·f·c_{t-1} + i·g."""
from ..registry import register_layer
from ..runtime import get_array_module
from .lstm_unit import lstm_cell, lstm_cell_backward
from .recurrent import RecurrentLayer


@register_layer("LSTM")
class LSTMLayer(RecurrentLayer):
    """Long short-term memory (Caffe's LSTMLayer, no peepholes), D = num_output.

    bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], [h_0, c_0 (1, N, D) with
    expose_hidden — Caffe's order, h before c]. tops: h (T, N, D), [h_T, c_T (1, N, D)].
    blobs (Caffe's order, so caffemodels load): W_xc (4D, K), b_c (4D), [W_xc_static (4D, K_s)],
    W_hc (4D, D); the 4D gate rows are ordered i, f, o, g (σ, σ, σ, tanh). cont_t = 0 starts
    a new sequence: it zeroes h_{t-1} in the recurrent product and c_{t-1} in the cell.
    The input projection runs as one GEMM over all T steps; only W_hc·h loops.
    """

    state_names = ("h", "c")

    def param_specs(self):
        d4 = 4 * self.num_output
        specs = [((d4, self.input_dim), False), ((d4,), True)]
        if self.static_input:
            specs.append(((d4, self.static_dim), False))
        return specs + [((d4, self.num_output), False)]

    def _forward(self, x, cont, static, init, out):
        xp = get_array_module(x)
        w_xc, b_c, w_hc = self.blobs[0], self.blobs[1], self.blobs[-1]
        T, N, D = self.T, self.N, self.num_output
        pre = (x @ w_xc.data.T + b_c.data).reshape(T, N, 4 * D)  # all steps at once
        if static is not None:
            self.static = static
            pre += static @ self.blobs[2].data.T  # (N, 4D), the same at every step
        self.x, self.cont = x, cont
        dtype = pre.dtype
        self.h = xp.empty((T + 1, N, D), dtype=dtype)  # [0] the initial state
        self.c = xp.empty((T + 1, N, D), dtype=dtype)
        self.h_conted = xp.empty((T, N, D), dtype=dtype)
        self.acts = xp.empty((T, N, 4 * D), dtype=dtype)
        self.tanh_c = xp.empty((T, N, D), dtype=dtype)
        self.h[0], self.c[0] = init[0], init[1]
        for t in range(T):
            xp.multiply(cont[t][:, None], self.h[t], out=self.h_conted[t])
            gates = pre[t] + self.h_conted[t] @ w_hc.data.T  # (N, 4D)
            self.acts[t], self.c[t + 1], self.tanh_c[t], self.h[t + 1] = lstm_cell(
                gates, self.c[t], cont[t])
        out[...] = self.h[1:]
        return [self.h[T], self.c[T]]

    def _backward(self, dout, final_diffs, need_x, need_static):
        xp = get_array_module(dout)
        w_xc, b_c, w_hc = self.blobs[0], self.blobs[1], self.blobs[-1]
        T, N, D = self.T, self.N, self.num_output
        if final_diffs:
            dh_next, dc_next = final_diffs
        else:
            dh_next = dc_next = xp.zeros((N, D), dtype=dout.dtype)
        dpre = xp.empty((T, N, 4 * D), dtype=dout.dtype)
        for t in range(T - 1, -1, -1):
            dc_next = lstm_cell_backward(self.acts[t], self.c[t], self.cont[t], self.tanh_c[t],
                                         dc_next, dout[t] + dh_next, dpre[t])
            dh_next = self.cont[t][:, None] * (dpre[t] @ w_hc.data)
        flat = dpre.reshape(T * N, 4 * D)
        pd = self.param_propagate_down
        if pd[-1]:
            w_hc.diff[...] += flat.T @ self.h_conted.reshape(T * N, D)  # diffs accumulate
        if pd[0]:
            w_xc.diff[...] += flat.T @ self.x
        if pd[1]:
            b_c.diff[...] += flat.sum(axis=0)
        dstatic = None
        if self.static_input:
            dsum = dpre.sum(axis=0)  # (N, 4D): the static term is added at every step
            if pd[2]:
                self.blobs[2].diff[...] += dsum.T @ self.static
            if need_static:
                dstatic = dsum @ self.blobs[2].data
        dx = flat @ w_xc.data if need_x else None
        return dx, dstatic, [dh_next, dc_next]
