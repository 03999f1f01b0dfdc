"""LSTMUnit: c = cont·σ(f)·c_prev + σ(i)·tanh(g), h = σ(o)·tanh(c), gates ordered (i, f, o, g)."""
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


def sigmoid(x):
    """σ(x) as 0.5·tanh(x/2) + 0.5: equal to 1/(1 + e^-x) without overflow for large |x|."""
    return 0.5 * get_array_module(x).tanh(0.5 * x) + 0.5


def lstm_cell(pre, c_prev, cont):
    """One step for N streams: pre (N, 4D) gate inputs, c_prev (N, D), cont (N,).

    Returns acts (N, 4D) = (σ(i), σ(f), σ(o), tanh(g)), c, tanh(c) and h, each (N, D).
    """
    xp = get_array_module(pre)
    d = c_prev.shape[1]
    acts = xp.empty_like(pre)
    acts[:, :3 * d] = sigmoid(pre[:, :3 * d])
    acts[:, 3 * d:] = xp.tanh(pre[:, 3 * d:])
    i, f, o, g = acts[:, :d], acts[:, d:2 * d], acts[:, 2 * d:3 * d], acts[:, 3 * d:]
    c = cont[:, None] * f * c_prev + i * g
    tanh_c = xp.tanh(c)
    return acts, c, tanh_c, o * tanh_c


def lstm_cell_backward(acts, c_prev, cont, tanh_c, dc, dh, dpre):
    """Backward of lstm_cell: dc, dh the diffs of c and h; writes dpre (N, 4D).

    Returns the diff of c_prev. cont scales the forget path only (a cont of 0 cuts it).
    """
    d = c_prev.shape[1]
    i, f, o, g = acts[:, :d], acts[:, d:2 * d], acts[:, 2 * d:3 * d], acts[:, 3 * d:]
    cont = cont[:, None]
    dc = dc + dh * o * (1 - tanh_c * tanh_c)  # the cell's diff through h = o·tanh(c)
    dpre[:, :d] = dc * g * i * (1 - i)
    dpre[:, d:2 * d] = dc * c_prev * cont * f * (1 - f)
    dpre[:, 2 * d:3 * d] = dh * tanh_c * o * (1 - o)
    dpre[:, 3 * d:] = dc * i * (1 - g * g)
    return dc * cont * f


@register_layer("LSTMUnit")
class LSTMUnitLayer(Layer):
    """One LSTM timestep (Caffe's LSTMUnitLayer), the cell the LSTM layer runs at every t.

    bottoms: c_prev (1, N, D), gates (1, N, 4D) pre-activations ordered (i, f, o, g),
    cont (1, N) sequence continuation (0 starts a new sequence: the forget path is cut).
    tops: c (1, N, D), h (1, N, D). No blobs. No gradient to cont.
    """

    exact_num_bottom_blobs = 3
    exact_num_top_blobs = 2

    def reshape(self, bottom, top):
        n = bottom[0].shape[1] if bottom[0].num_axes > 1 else -1
        for k, (name, axes) in enumerate((("c_prev", 3), ("gates", 3), ("cont", 2))):
            blob = bottom[k]
            if blob.num_axes != axes or blob.shape[0] != 1 or blob.shape[1] != n:
                raise self.error(f"bottom[{k}] ({name}) must be {axes}-D with shape (1, N, ...) "
                                 f"and N = {n} as c_prev; got {blob.shape}")
        self.hidden_dim = bottom[0].shape[2]
        if bottom[1].shape[2] != 4 * self.hidden_dim:
            raise self.error(f"gates must have 4·D = {4 * self.hidden_dim} values per stream "
                             f"(i, f, o, g); got shape {bottom[1].shape}")
        top[0].reshape_like(bottom[0])
        top[1].reshape_like(bottom[0])

    def forward(self, bottom, top):
        c_prev, cont = bottom[0].data[0], bottom[2].data[0]
        self.acts, c, self.tanh_c, h = lstm_cell(bottom[1].data[0], c_prev, cont)
        top[0].data[0] = c
        top[1].data[0] = h

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise self.error("LSTMUnit cannot backpropagate to the sequence indicators (cont)")
        if not (propagate_down[0] or propagate_down[1]):
            return
        xp = get_array_module(self.acts)
        dpre = xp.empty_like(self.acts)
        dc_prev = lstm_cell_backward(self.acts, bottom[0].data[0], bottom[2].data[0],
                                     self.tanh_c, top[0].diff[0], top[1].diff[0], dpre)
        if propagate_down[0]:
            bottom[0].diff[0] = dc_prev
        if propagate_down[1]:
            bottom[1].diff[0] = dpre

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2
