"""Embed: top[..., :] = W[index] (+ b), a lookup of integer indices in a learned table."""
from ..fillers import fill
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Embed")
class EmbedLayer(Layer):
    """Bottom of indices, any shape -> top bottom.shape + (num_output,).

    blobs: [0] W (input_dim, num_output), [1] b (num_output,) when bias_term (default true);
    fillers weight_filler / bias_filler (default constant 0). The indices arrive as floats
    and must be whole numbers in [0, input_dim). No gradient to the indices; W's gradient
    accumulates dy into the rows used (repeats add up).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.embed_param
        self.num_output = int(param.num_output)
        self.input_dim = int(param.input_dim)
        if self.num_output <= 0 or self.input_dim <= 0:
            raise self.error(f"embed_param needs num_output > 0 and input_dim > 0 (got "
                             f"num_output {self.num_output}, input_dim {self.input_dim})")
        self.bias_term = bool(param.bias_term)
        if not self.blobs:
            where = f"layer '{self.name}' (Embed)"
            self.blobs = [self.new_param_blob((self.input_dim, self.num_output))]
            fill(self.blobs[0], param.weight_filler, self.rng, where=f"{where} weight_filler")
            if self.bias_term:
                self.blobs.append(self.new_param_blob((self.num_output,)))
                fill(self.blobs[1], param.bias_filler, self.rng, where=f"{where} bias_filler")
        self._indices = None

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def _read_indices(self, x):
        xp = get_array_module(x)
        index = x.astype(xp.int64)
        bad = (index != x) | (index < 0) | (index >= self.input_dim)
        if bad.any():
            value = x[bad].ravel()[0]
            raise self.error(f"index {float(value):g} is not a whole number in [0, "
                             f"{self.input_dim}) (input_dim); Embed's bottom must hold "
                             f"integer indices")
        return index

    def forward(self, bottom, top):
        self._indices = self._read_indices(bottom[0].data)
        out = self.blobs[0].data[self._indices]  # bottom.shape + (num_output,)
        if self.bias_term:
            out += self.blobs[1].data
        top[0].data[...] = out

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("cannot backpropagate to Embed's input (it holds indices)")
        xp = get_array_module(top[0].diff)
        dy = top[0].diff.reshape(-1, self.num_output)  # (M, num_output)
        if self.param_propagate_down[0]:
            # add.at sums the rows of repeated indices (plain fancy assignment would not).
            xp.add.at(self.blobs[0].diff, self._indices.ravel(), dy)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff[...] += dy.sum(axis=0)

    def allow_force_backward(self, bottom_index):
        return False
