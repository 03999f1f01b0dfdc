"""InnerProduct, Embed and the layers that move, pick or combine blobs, as ONNX operators."""
import numpy as np

from ..proto import caffelite_pb2 as pb
from .onnx_graph import converts

INT64, BOOL, FLOAT = 7, 9, 1  # onnx.TensorProto element types
ELTWISE = pb.EltwiseParameter
REDUCTION = pb.ReductionParameter


@converts("InnerProduct")
def inner_product(g, layer, xs):
    """Flatten(axis) + Gemm (transB unless `transpose`: W is then (K, N)), reshaped back to
    Caffe's top shape bottom[:axis] + (num_output,) when that is not 2-D."""
    if layer.axis == 0:
        g.static_axis(g.bottom_blobs[0], 0, "InnerProduct's flattening")
    flat = g.node("Flatten", xs, axis=layer.axis)
    inputs = [flat, g.const(layer.blobs[0].data, "weight")]
    if layer.bias_term:
        inputs.append(g.const(layer.blobs[1].data, "bias"))
    top_blob = g.top_blobs[0]
    two_d = len(g.shape(top_blob)) == 2 and layer.axis == 1
    y = g.node("Gemm", inputs, g.top(0) if two_d else None, transB=0 if layer.transpose else 1)
    return [y if two_d else g.reshape(y, g.target(top_blob), g.top(0))]


@converts("Embed")
def embed(g, layer, xs):
    """Gather rows of W (input_dim, num_output) at the (float-held) indices, plus the bias."""
    index = g.node("Cast", xs, to=INT64)
    last = None if layer.bias_term else g.top(0)
    y = g.node("Gather", [g.const(layer.blobs[0].data, "weight"), index], last, axis=0)
    if layer.bias_term:
        y = g.node("Add", [y, g.const(layer.blobs[1].data, "bias")], g.top(0))
    return [y]


@converts("Concat")
def concat(g, layer, xs):
    return [g.node("Concat", xs, g.top(0), axis=layer.axis)]


@converts("Slice")
def slice_(g, layer, xs):
    if len(xs) == 1 and len(g.top_blobs) == 1:
        return [xs[0]]
    g.static_axis(g.bottom_blobs[0], layer.axis, "Slice")
    sizes = [b - a for a, b in zip(layer.bounds, layer.bounds[1:])]
    outs = [g.top(i) for i in range(len(g.top_blobs))]
    return g.node("Split", [xs[0], g.ints(sizes, "split")], outputs=outs, axis=layer.axis)


@converts("Flatten", "Reshape")
def reshape(g, layer, xs):
    """A Reshape to the top's shape, -1 at the dim that follows the batch."""
    return [g.reshape(xs[0], g.target(g.top_blobs[0]), g.top(0))]


@converts("Crop")
def crop(g, layer, xs):
    """Slice axes axis.. of bottom[0] from the offsets to bottom[1]'s sizes."""
    big, small = g.shape(g.bottom_blobs[0]), g.shape(g.top_blobs[0])
    axes = list(range(layer.axis, len(big)))
    for axis in axes:
        g.static_axis(g.bottom_blobs[0], axis, "Crop")
    starts = [layer.slices[a].start for a in axes]
    ends = [s + small[a] for s, a in zip(starts, axes)]
    return [g.node("Slice", [xs[0], g.ints(starts, "starts"), g.ints(ends, "ends"),
                             g.ints(axes, "axes")], g.top(0))]


@converts("Eltwise")
def eltwise(g, layer, xs):
    """SUM: Σ coeff_i·x_i added in bottom order; PROD: the product; MAX: the maximum (Caffe's
    tie rule picks between equal values, so the value is the same)."""
    if layer.op == ELTWISE.MAX:
        return [g.node("Max", xs, g.top(0))]
    terms = list(xs)
    if layer.op == ELTWISE.SUM:
        terms = [x if c == 1 else g.node("Mul", [x, g.scalar(c, "coeff")])
                 for x, c in zip(xs, layer.coeffs)]
    op = "Add" if layer.op == ELTWISE.SUM else "Mul"
    y = terms[0]
    for i, term in enumerate(terms[1:], start=2):
        y = g.node(op, [y, term], g.top(0) if i == len(terms) else None)
    return [y]


@converts("Softmax")
def softmax(g, layer, xs):
    """Softmax-13 normalises over the one axis, as Caffe; its default axis is −1, so write it."""
    return [g.node("Softmax", xs, g.top(0), axis=layer.axis)]


def _reversed(g, x, axis):
    return g.node("Slice", [x, g.ints([-1], "starts"), g.ints([-(1 << 62)], "ends"),
                            g.ints([axis], "axes"), g.ints([-1], "steps")])


@converts("ArgMax")
def arg_max(g, layer, xs):
    """TopK on the input reversed along the axis, so ties rank the larger index first as in
    Caffe (ONNX ranks the lower index first); index = size − 1 − reversed index, as floats."""
    shape = g.shape(g.bottom_blobs[0])
    if layer.has_axis:
        axis, x = layer.axis, xs[0]
        g.static_axis(g.bottom_blobs[0], axis, "ArgMax")
    else:
        axis, x = 1, g.node("Flatten", xs, axis=1)
        if any(g.dynamic[g.bottom_blobs[0]][1:]):
            g.static_axis(g.bottom_blobs[0], 1, "ArgMax")
    size = shape[axis] if layer.has_axis else int(np.prod(shape[1:]))
    values, picked = g.node("TopK", [_reversed(g, x, axis), g.ints([layer.top_k], "k")],
                            outputs=[g.tmp("values"), g.tmp("indices")], axis=axis,
                            largest=1, sorted=1)
    index = g.node("Cast", [g.node("Sub", [g.ints([size - 1], "last"), picked])], to=FLOAT)
    if layer.has_axis:
        last = g.top(0)
        return [g.node("Identity", [values if layer.out_max_val else index], last)]
    rows = [index, values] if layer.out_max_val else [index]
    rows = [g.node("Unsqueeze", [r, g.ints([1], "axes")]) for r in rows]
    stacked = rows[0] if len(rows) == 1 else g.node("Concat", rows, axis=1)
    return [g.reshape(stacked, g.target(g.top_blobs[0]), g.top(0))]


@converts("Reduction")
def reduction(g, layer, xs):
    """SUM / ASUM (of |x|) / SUMSQ (of x²) / MEAN over every axis from `axis`, times coeff."""
    rank = len(g.shape(g.bottom_blobs[0]))
    axes = list(range(layer.axis, rank))
    x, op = xs[0], "ReduceSum"
    if layer.op == REDUCTION.ASUM:
        x = g.node("Abs", [x])
    elif layer.op == REDUCTION.SUMSQ:
        x = g.node("Mul", [x, x])
    elif layer.op == REDUCTION.MEAN:
        op = "ReduceMean"
    coeff = float(layer.layer_param.reduction_param.coeff)
    y = g.reduce(op, x, axes, keepdims=0, output=g.top(0) if coeff == 1 else None)
    return [y if coeff == 1 else g.node("Mul", [y, g.scalar(coeff, "coeff")], g.top(0))]


@converts("Tile")
def tile(g, layer, xs):
    """Caffe copies the block of axes axis.. `tiles` times: ONNX Tile on that one axis."""
    repeats = [1] * len(g.shape(g.bottom_blobs[0]))
    repeats[layer.axis] = layer.tiles
    return [g.node("Tile", [xs[0], g.ints(repeats, "repeats")], g.top(0))]


@converts("BatchReindex")
def batch_reindex(g, layer, xs):
    index = g.node("Cast", [xs[1]], to=INT64)
    return [g.node("Gather", [xs[0], index], g.top(0), axis=0)]


@converts("Filter")
def filter_(g, layer, xs):
    """Compress along axis 0 where the selector (last bottom) is non-zero."""
    keep = g.node("Cast", [g.reshape(xs[-1], [-1])], to=BOOL)
    outs = []
    for i, x in enumerate(xs[:-1]):
        blob = g.top_blobs[i]
        g.dynamic[blob] = ("data",) + tuple(g.dynamic[blob][1:])  # the count depends on data
        outs.append(g.node("Compress", [x, keep], g.top(i), axis=0))
    return outs


@converts("Parameter")
def parameter(g, layer, xs):
    return [g.const(layer.blobs[0].data, "parameter")]


@converts("DummyData")
def dummy_data(g, layer, xs):
    """Tops filled with constants are constants of the graph (other fillers: graph inputs)."""
    return [g.const(g.net.blobs[blob].data, "dummy") for blob in g.top_blobs]
