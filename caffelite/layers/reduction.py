"""Reduction: top[i] = coeff * op(bottom[i, ...]) over axes >= axis; op SUM|ASUM|SUMSQ|MEAN."""
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import get_array_module

P = pb.ReductionParameter
OPS = {P.SUM: "SUM", P.ASUM: "ASUM", P.SUMSQ: "SUMSQ", P.MEAN: "MEAN"}


@register_layer("Reduction")
class ReductionLayer(Layer):
    """Bottom (d_0, ..., d_{n-1}) -> top (d_0, ..., d_{axis-1}); axis 0 (default) gives a scalar.

    SUM Σx, ASUM Σ|x|, SUMSQ Σx², MEAN Σx/dim, each times `coeff` (default 1). Caffe reduces
    only trailing axes (there is no `num_axes`). Gradients: coeff·dy (SUM), coeff·dy/dim
    (MEAN), coeff·dy·sign(x) (ASUM), 2·coeff·dy·x (SUMSQ).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.reduction_param
        if param.operation not in OPS:
            raise self.error(f"unknown reduction operation {param.operation}")
        self.op = param.operation

    def reshape(self, bottom, top):
        param = self.layer_param.reduction_param
        try:
            self.axis = bottom[0].canonical_axis_index(param.axis)
        except IndexError:
            raise self.error(f"axis {param.axis} is out of range for bottom shape "
                             f"{bottom[0].shape}") from None
        top[0].reshape(bottom[0].shape[:self.axis])
        self.num = bottom[0].count(0, self.axis)
        self.dim = bottom[0].count(self.axis)
        self.coeff = float(param.coeff)
        if self.op == P.MEAN and self.dim:
            self.coeff /= self.dim

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data.reshape(self.num, self.dim)  # (num, dim)
        if self.op == P.ASUM:
            x = xp.abs(x)
        elif self.op == P.SUMSQ:
            x = x * x
        out = x.sum(axis=1) * x.dtype.type(self.coeff)
        top[0].data[...] = out.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = get_array_module(top[0].diff)
        dtype = top[0].diff.dtype.type
        dy = top[0].diff.reshape(self.num, 1) * dtype(self.coeff)  # (num, 1)
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.op == P.ASUM:
            grad = dy * xp.sign(x)
        elif self.op == P.SUMSQ:
            grad = dy * dtype(2) * x
        else:
            grad = xp.broadcast_to(dy, (self.num, self.dim))
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)
