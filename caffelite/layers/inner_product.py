"""InnerProduct: y = x · Wᵀ + b over the flattened axes from `axis` on (W is (N, K))."""
from ..fillers import fill
from ..kernels.im2col import Workspace
from ..layer import Layer
from ..registry import register_layer
from ..runtime import defer, get_array_module, parallel

# GEMMs are split among threads when each part has at least this many multiply-adds.
PARALLEL_MIN_WORK = 1 << 20
# OpenBLAS runs x @ Wᵀ (W stored (N, K), its second operand transposed) at about half speed
# when the batch M is small against num_output N; W @ xᵀ, transposed back, is then faster
# (one thread, K = 800, N = 500: 0.81× the time at M = 64, 0.71× at 32, 0.51× at 8; N = 4096:
# 0.80× at M = 64) and slower at N < 2M (1.09× at M = 256, 1.19× for M = 100, N = 64).
TRANSPOSED_TOP_MIN_RATIO = 3


@register_layer("InnerProduct")
class InnerProductLayer(Layer):
    """Fully connected layer.

    bottom (d_0..d_{axis-1}, d_axis..) with K = count(axis); top (d_0..d_{axis-1}, num_output).
    blobs: [0] weight (num_output, K), or (K, num_output) with `transpose`; [1] bias
    (num_output,) when bias_term. Default fillers are constant 0, as in Caffe. K is fixed at
    setup; a later bottom with another K is an error.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.inner_product_param
        if param.num_output <= 0:
            raise self.error("inner_product_param.num_output must be set (> 0)")
        self.num_output = int(param.num_output)
        self.bias_term = param.bias_term
        self.transpose = param.transpose
        self.axis = self._axis(bottom[0], param.axis)
        self.K = bottom[0].count(self.axis)
        self.ws = Workspace()
        if self.blobs:
            return  # already filled (shared or loaded)
        shape = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
        weight = self.new_param_blob(shape)
        fill(weight, param.weight_filler, self.rng, where=self._where("weight_filler"))
        self.blobs = [weight]
        if self.bias_term:
            bias = self.new_param_blob((self.num_output,))
            fill(bias, param.bias_filler, self.rng, where=self._where("bias_filler"))
            self.blobs.append(bias)

    def _where(self, field):
        return f"layer '{self.name}' ({self.type}) {field}"

    def _axis(self, blob, axis):
        try:
            return blob.canonical_axis_index(axis)
        except IndexError as exc:
            raise self.error(f"inner_product_param.axis: {exc}") from None

    def reshape(self, bottom, top):
        axis = self._axis(bottom[0], self.layer_param.inner_product_param.axis)
        k = bottom[0].count(axis)
        if k != self.K:
            raise self.error(f"input size incompatible with inner product parameters: bottom "
                             f"{bottom[0].shape} gives K = {k} from axis {axis}, weights "
                             f"expect K = {self.K}")
        self.axis = axis
        self.M = bottom[0].count(0, axis)
        top[0].reshape(bottom[0].shape[:axis] + (self.num_output,))

    def _weight_nk(self):
        w = self.blobs[0].data
        return w.T if self.transpose else w  # (N, K)

    def split(self, function, count, work):
        """function(start, stop) over `count` rows or columns, split among threads when each
        has `work` multiply-adds and the parts are large enough."""
        parallel(function, count, min_items=max(1, PARALLEL_MIN_WORK // max(1, work)))

    def split_product(self, a, b, out, bias=None):
        """out = a @ b (+ bias), split among the threads by rows of out when a is the larger
        operand, else by columns: each thread then packs only its part of the larger one
        (split by batch rows, each packed all of LeNet ip1's W, and two threads were slower
        than one)."""
        rows, cols = out.shape
        by_rows = a.size > b.size

        def part(start, stop):
            r, c = ((slice(start, stop), slice(None)) if by_rows
                    else (slice(None), slice(start, stop)))
            get_array_module(out).matmul(a[r], b[:, c], out=out[r, c])
            if bias is not None:
                out[r, c] += bias[c]
        self.split(part, rows if by_rows else cols, a.shape[1] * (cols if by_rows else rows))

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.M, self.K)  # (M, K)
        y = top[0].data.reshape(self.M, self.num_output)  # (M, N)
        bias = self.blobs[1].data if self.bias_term else None
        if self.transpose or self.num_output < TRANSPOSED_TOP_MIN_RATIO * self.M:
            self.split_product(x, self._weight_nk().T, y, bias)
            return
        xp = get_array_module(x)
        y_t = self.ws.scratch("top_t", (self.num_output, self.M), x.dtype, xp)
        self.split_product(self.blobs[0].data, x.T, y_t)  # (N, M), by rows of W
        if bias is None:
            y[...] = y_t.T
        else:
            xp.add(y_t.T, bias, out=y)  # the transposing copy adds the bias

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.M, self.num_output)  # (M, N)
        x = bottom[0].data.reshape(self.M, self.K)  # (M, K)
        if self.param_propagate_down[0]:
            dw = self.blobs[0].diff

            def weight_rows(a, b):  # a thread's rows of the gradient; params accumulate
                if self.transpose:
                    dw[:, a:b] += x.T @ dy[:, a:b]  # (K, N)
                else:
                    dw[a:b] += dy[:, a:b].T @ x  # (N, K)
            if getattr(self, "defer_param_grads", False):  # in a net: on the gradient thread
                defer(lambda: weight_rows(0, self.num_output))
            else:
                self.split(weight_rows, self.num_output, self.M * self.K)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff += dy.sum(axis=0)
        if propagate_down[0]:
            self.split_product(dy, self._weight_nk(), bottom[0].diff.reshape(self.M, self.K))
