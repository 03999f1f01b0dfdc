"""RNN: h_t = tanh(W_hh·(cont_t·h_{t-1}) + W_xh·x_t + b_h), o_t = tanh(W_ho·h_t + b_o)."""
from ..registry import register_layer
from ..runtime import get_array_module
from .recurrent import RecurrentLayer


@register_layer("RNN")
class RNNLayer(RecurrentLayer):
    """Elman recurrent layer with an output layer (Caffe's RNNLayer), D = num_output.

    bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], [h_0 (1, N, D) with
    expose_hidden]. tops: o (T, N, D), [h_T (1, N, D) with expose_hidden].
    blobs (Caffe's order, so caffemodels load): W_xh (D, K), b_h (D), [W_xh_static (D, K_s)
    adding W_xh_static·x_static at every step], W_hh (D, D), W_ho (D, D), b_o (D).
    The input and output projections run as one GEMM over all T steps; only W_hh·h loops.
    """

    state_names = ("h",)

    def param_specs(self):
        d = self.num_output
        specs = [((d, self.input_dim), False), ((d,), True)]
        if self.static_input:
            specs.append(((d, self.static_dim), False))
        return specs + [((d, d), False), ((d, d), False), ((d,), True)]

    def _params(self):
        blobs = self.blobs
        w_static = blobs[2] if self.static_input else None
        w_xh, b_h, w_hh, w_ho, b_o = blobs[0], blobs[1], *blobs[-3:]
        return w_xh, b_h, w_static, w_hh, w_ho, b_o

    def _forward(self, x, cont, static, init, out):
        xp = get_array_module(x)
        w_xh, b_h, w_static, w_hh, w_ho, b_o = self._params()
        T, N, D = self.T, self.N, self.num_output
        pre = (x @ w_xh.data.T + b_h.data).reshape(T, N, D)  # all steps at once
        if static is not None:
            self.static = static
            pre += static @ w_static.data.T  # (N, D), the same at every step
        self.x, self.cont = x, cont
        self.h = xp.empty((T + 1, N, D), dtype=pre.dtype)  # h[0] the initial state
        self.h_conted = xp.empty((T, N, D), dtype=pre.dtype)
        self.h[0] = init[0]
        for t in range(T):
            xp.multiply(cont[t][:, None], self.h[t], out=self.h_conted[t])
            xp.tanh(pre[t] + self.h_conted[t] @ w_hh.data.T, out=self.h[t + 1])
        hidden = self.h[1:].reshape(T * N, D)
        self.o = xp.tanh(hidden @ w_ho.data.T + b_o.data)  # (T·N, D), kept for backward
        out[...] = self.o.reshape(T, N, D)
        return [self.h[T]]

    def _backward(self, dout, final_diffs, need_x, need_static):
        xp = get_array_module(dout)
        w_xh, b_h, w_static, w_hh, w_ho, b_o = self._params()
        T, N, D = self.T, self.N, self.num_output
        hidden = self.h[1:].reshape(T * N, D)
        do = dout.reshape(T * N, D) * (1 - self.o * self.o)
        pd = self.param_propagate_down
        if pd[-2]:
            w_ho.diff[...] += do.T @ hidden  # parameter diffs accumulate
        if pd[-1]:
            b_o.diff[...] += do.sum(axis=0)
        dh_out = (do @ w_ho.data).reshape(T, N, D)
        dh_next = final_diffs[0] if final_diffs else xp.zeros((N, D), dtype=dout.dtype)
        dpre = xp.empty((T, N, D), dtype=dout.dtype)
        for t in range(T - 1, -1, -1):
            h = self.h[t + 1]
            dpre[t] = (dh_out[t] + dh_next) * (1 - h * h)
            dh_next = self.cont[t][:, None] * (dpre[t] @ w_hh.data)
        flat = dpre.reshape(T * N, D)
        if pd[-3]:
            w_hh.diff[...] += flat.T @ self.h_conted.reshape(T * N, D)
        if pd[0]:
            w_xh.diff[...] += flat.T @ self.x
        if pd[1]:
            b_h.diff[...] += flat.sum(axis=0)
        dstatic = None
        if self.static_input:
            dsum = dpre.sum(axis=0)  # (N, D): the static term is added at every step
            if pd[2]:
                w_static.diff[...] += dsum.T @ self.static
            if need_static:
                dstatic = dsum @ w_static.data
        dx = flat @ w_xh.data if need_x else None
        return dx, dstatic, [dh_next]
