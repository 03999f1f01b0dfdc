"""Recurrent layers' common part (Caffe's RecurrentLayer): inputs, state carry, blobs, shapes."""
from ..fillers import fill
from ..layer import Layer
from ..runtime import get_array_module, to_numpy


class RecurrentLayer(Layer):
    """Base of RNN and LSTM; not a registered type (as in Caffe).

    bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], then with expose_hidden the
    initial states in `state_names` order, each (1, N, num_output).
    tops: the output (T, N, num_output), then with expose_hidden the final states, same order.
    Without expose_hidden the final states of one forward are the initial states of the next
    (they matter only where cont[0] is 1); they start at zero, reset when N changes, and no
    gradient crosses forwards. With expose_hidden, gradients do flow into the initial-state
    bottoms and from the final-state tops (BVLC Caffe drops both). T may change between
    forwards (Caffe fixes it at setup); K (values per step) may not.
    Subclasses give `state_names`, `param_specs()` and `_forward`/`_backward` in NumPy.
    """

    state_names = ()
    min_bottom_blobs = 2

    def layer_setup(self, bottom, top):
        param = self.layer_param.recurrent_param
        if param.num_output <= 0:
            raise self.error("recurrent_param.num_output must be set (> 0)")
        self.num_output = int(param.num_output)
        self.expose_hidden = bool(param.expose_hidden)
        self.num_exposed = len(self.state_names) if self.expose_hidden else 0
        states = ", ".join(f"{s}_0" for s in self.state_names)
        if not 2 + self.num_exposed <= len(bottom) <= 3 + self.num_exposed:
            expected = f"x, cont, [x_static]{', ' + states if self.expose_hidden else ''}"
            raise self.error(f"takes bottoms ({expected}), got {len(bottom)}")
        self.static_input = len(bottom) > 2 + self.num_exposed
        if len(top) != 1 + self.num_exposed:
            raise self.error(f"produces {1 + self.num_exposed} top(s) (the output"
                             f"{', then the final ' + states if self.expose_hidden else ''}), "
                             f"got {len(top)}")
        if bottom[0].num_axes < 2:
            raise self.error(f"bottom[0] must have at least 2 axes (timesteps, streams, ...), "
                             f"got {bottom[0].shape}")
        self.input_dim = bottom[0].count(2)
        self.static_dim = bottom[2].count(1) if self.static_input else 0
        if not self.blobs:
            for shape, is_bias in self.param_specs():
                blob = self.new_param_blob(shape)
                field = "bias_filler" if is_bias else "weight_filler"
                fill(blob, getattr(param, field), self.rng,
                     where=f"layer '{self.name}' ({self.type}) recurrent_param.{field}")
                self.blobs.append(blob)
        self.carried = None

    def reshape(self, bottom, top):
        x, cont = bottom[0], bottom[1]
        if x.num_axes < 2 or x.count(2) != self.input_dim:
            raise self.error(f"bottom[0] must be (T, N, ...) with {self.input_dim} values per "
                             f"step, got {x.shape}")
        self.T, self.N = x.shape[:2]
        if cont.shape != (self.T, self.N):
            raise self.error(f"bottom[1] (cont) must be (T, N) = {(self.T, self.N)}, got "
                             f"{cont.shape}")
        if self.static_input and (bottom[2].num_axes < 1 or bottom[2].shape[0] != self.N
                                  or bottom[2].count(1) != self.static_dim):
            raise self.error(f"bottom[2] (x_static) must be (N, ...) with N = {self.N} and "
                             f"{self.static_dim} values per stream, got {bottom[2].shape}")
        state_shape = (1, self.N, self.num_output)
        first = 2 + self.static_input
        for j, blob in enumerate(bottom[first:]):
            if blob.shape != state_shape:
                raise self.error(f"bottom[{first + j}] ({self.state_names[j]}_0) must be "
                                 f"{state_shape}, got {blob.shape}")
        top[0].reshape(self.T, self.N, self.num_output)
        for blob in top[1:]:
            blob.reshape(state_shape)
        if self.carried is None or self.carried[0].shape != (self.N, self.num_output):
            xp = get_array_module(x.data)
            self.carried = [xp.zeros((self.N, self.num_output), self.dtype)
                            for _ in self.state_names]

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.T * self.N, self.input_dim)
        static = bottom[2].data.reshape(self.N, self.static_dim) if self.static_input else None
        if self.expose_hidden:
            first = 2 + self.static_input
            init = [b.data.reshape(self.N, self.num_output) for b in bottom[first:]]
        else:
            init = self.carried
        finals = self._forward(x, bottom[1].data, static, init, top[0].data)
        if self.expose_hidden:
            for blob, state in zip(top[1:], finals):
                blob.data[0] = state
        else:
            self.carried = [state.copy() for state in finals]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the sequence indicators (cont)")
        final_diffs = [b.diff[0] for b in top[1:]] if self.expose_hidden else None
        dx, dstatic, dinit = self._backward(top[0].diff, final_diffs, propagate_down[0],
                                            self.static_input and propagate_down[2])
        if propagate_down[0]:
            bottom[0].diff.reshape(dx.shape)[...] = dx
        if self.static_input and propagate_down[2]:
            bottom[2].diff.reshape(dstatic.shape)[...] = dstatic
        first = 2 + self.static_input
        for j, blob in enumerate(bottom[first:]):
            if propagate_down[first + j]:
                blob.diff[0] = dinit[j]

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    def reset(self):
        """Zero the carried state (Caffe's RecurrentLayer::Reset)."""
        self.carried = None if self.carried is None else [0 * s for s in self.carried]

    def get_state(self):
        """The carried final states, so a resumed run continues the same sequences."""
        return {"carried": [to_numpy(s) for s in self.carried or []]}

    def set_state(self, state):
        carried = state.get("carried") or []
        xp = get_array_module(self.blobs[0].data)
        self.carried = [xp.asarray(s, dtype=self.dtype) for s in carried] or None
