"""Eltwise: top = Σ coeff_i·x_i (SUM), Π x_i (PROD) or max_i x_i (MAX), elementwise."""
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer
from ..runtime import get_array_module

PROD, SUM, MAX = pb.EltwiseParameter.PROD, pb.EltwiseParameter.SUM, pb.EltwiseParameter.MAX


@register_layer("Eltwise")
class EltwiseLayer(Layer):
    """Two or more bottoms of one shape -> one top of that shape. Default operation SUM.

    SUM: `coeff` gives one factor per bottom (none = all 1). PROD: the gradient of x_i is the
    product of the other bottoms (`stable_prod_grad`, default) or top/x_i. MAX, with Caffe's
    tie rule: bottom 0 vs 1 is `a > b ? a : b` (a tie goes to bottom 1), each later bottom
    wins only when strictly greater; the gradient goes to the recorded argmax alone.
    """

    min_bottom_blobs = 2
    exact_num_top_blobs = 1

    @property
    def allow_in_place(self):
        # SUM and MAX read each bottom before writing the top; PROD's gradient reads the
        # bottoms that in-place use overwrites.
        return self.layer_param.eltwise_param.operation != PROD

    def layer_setup(self, bottom, top):
        param = self.layer_param.eltwise_param
        self.op = param.operation
        if param.coeff and len(param.coeff) != len(bottom):
            raise self.error(f"eltwise_param has {len(param.coeff)} coeff value(s) for "
                             f"{len(bottom)} bottoms; give one coefficient per bottom")
        if param.coeff and self.op == PROD:
            # Caffe refuses coeff with PROD only; with MAX it is accepted and unused.
            raise self.error("coeff applies to operation SUM only; remove it or use SUM")
        self.coeffs = [float(c) for c in param.coeff] or [1.0] * len(bottom)
        self.stable_prod_grad = bool(param.stable_prod_grad)
        self._argmax = None

    def reshape(self, bottom, top):
        for i, blob in enumerate(bottom[1:], start=1):
            if blob.shape != bottom[0].shape:
                raise self.error(f"all bottoms must have one shape: bottom[0] is "
                                 f"{bottom[0].shape}, bottom[{i}] is {blob.shape}")
        if all(top[0] is not blob for blob in bottom):
            top[0].reshape_like(bottom[0])

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        xs = [blob.data for blob in bottom]
        dtype = xs[0].dtype.type
        if self.op == SUM:
            out = xs[0] * dtype(self.coeffs[0])
            for x, c in zip(xs[1:], self.coeffs[1:]):
                out += x if c == 1 else x * dtype(c)
        elif self.op == PROD:
            out = xs[0].copy()
            for x in xs[1:]:
                out *= x
        elif self.op == MAX:
            first = xs[0] > xs[1]
            out = xp.where(first, xs[0], xs[1])
            argmax = xp.where(first, 0, 1).astype(xp.int32)
            for i, x in enumerate(xs[2:], start=2):
                later = x > out
                out = xp.where(later, x, out)
                argmax[later] = i
            self._argmax = argmax
        else:
            raise self.error(f"unknown eltwise operation {self.op}")
        top[0].data[...] = out

    def backward(self, top, propagate_down, bottom):
        xp = get_array_module(top[0].diff)
        dy = top[0].diff
        if any(top[0] is blob for blob in bottom):
            dy = dy.copy()  # in place, writing bottom[0].diff would overwrite the top diff
        for i, blob in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == SUM:
                c = self.coeffs[i]
                blob.diff[...] = dy if c == 1 else dy * dy.dtype.type(c)
            elif self.op == PROD:
                if self.stable_prod_grad:
                    others = xp.ones_like(dy)
                    for j, other in enumerate(bottom):
                        if j != i:
                            others *= other.data
                    blob.diff[...] = dy * others
                else:
                    blob.diff[...] = dy * top[0].data / blob.data
            else:
                blob.diff[...] = dy * (self._argmax == i)
