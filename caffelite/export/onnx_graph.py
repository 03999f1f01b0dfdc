"""A small ONNX graph builder: nodes as plain records until the end, so tensors can be renamed.

Converters (caffelite/export/<family>.py) add nodes through a Graph: `node()` for an operator,
`const()` for an initializer, `top(i)` for the name of the current layer's i-th top. Blob names
are kept as tensor names where they can be; an in-place layer's earlier versions of a blob get
`blob/layer` names, and `finish()` makes each graph output carry its Caffe blob name.
"""
import numpy as np

from ..errors import CaffeliteError

DEFAULT_OPSET = 17  # Softmax with one axis needs 13; 17 is read by TensorRT 8.6+, OpenVINO,
MIN_OPSET = 13  # OpenCV 5 and every onnxruntime of the last years
FLT_MAX = float(np.finfo(np.float32).max)
CONVERTERS = {}  # Caffe layer type -> converter(graph, layer, bottoms) -> [top tensor names]


class ExportError(CaffeliteError):
    """A net (or one of its layers) that cannot be written as an ONNX model."""


def converts(*types):
    """Register a converter for the given Caffe layer types."""
    def register(function):
        for name in types:
            CONVERTERS[name] = function
        return function
    return register


def require_onnx():
    """The onnx package, or a one-line error saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise CaffeliteError('exporting to ONNX needs the onnx package: pip install '
                             '"caffelite[onnx]"') from None
    return onnx


class Node:
    __slots__ = ("op", "inputs", "outputs", "attrs", "name")

    def __init__(self, op, inputs, outputs, attrs, name):
        self.op, self.inputs, self.outputs, self.attrs, self.name = op, inputs, outputs, attrs, name


class Graph:
    """Nodes, initializers and names of one export; `shapes`/`dynamic` describe every blob."""

    def __init__(self, opset, shapes, dynamic):
        self.opset = opset
        self.shapes = shapes  # blob name -> static shape (at the net's batch)
        self.dynamic = dynamic  # blob name -> tuple of bools: does that dim follow the batch
        self.nodes, self.initializers = [], {}
        self.used = set()
        self.layer = None  # the layer being converted
        self.bottom_blobs, self.top_blobs = [], []
        self.notes = []
        self.output_names = set()
        self.renamed = {}  # tensor renamed by finish() -> its new name

    # -- names ------------------------------------------------------------------------------
    def fresh(self, hint):
        """An unused tensor name: `hint`, or `hint/2`, `hint/3` ..."""
        name, k = hint, 1
        while name in self.used:
            k += 1
            name = f"{hint}/{k}"
        self.used.add(name)
        return name

    def begin(self, layer, bottom_blobs, top_blobs):
        self.layer, self.bottom_blobs, self.top_blobs = layer, list(bottom_blobs), list(top_blobs)

    def top(self, i):
        """The name for the current layer's i-th top: its blob name while that is free."""
        blob = self.top_blobs[i]
        return self.fresh(blob if blob not in self.used else f"{blob}/{self.layer.name}")

    def tmp(self, what):
        return self.fresh(f"{self.layer.name}/{what}" if self.layer else what)

    def error(self, why):
        layer = self.layer
        return ExportError(f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX: "
                           f"{why}")

    # -- nodes ------------------------------------------------------------------------------
    def node(self, op, inputs, output=None, outputs=None, **attrs):
        """Add an operator; returns its output name (or the list `outputs` when given)."""
        names = outputs if outputs is not None else [output or self.tmp(op.lower())]
        for name in names:
            self.used.add(name)
        base = self.layer.name if self.layer else op
        self.nodes.append(Node(op, list(inputs), list(names), attrs,
                               f"{base}/{op}/{len(self.nodes)}"))
        return names if outputs is not None else names[0]

    def const(self, value, what="const", dtype=np.float32):
        """An initializer holding `value` (as dtype); returns its name."""
        name = self.tmp(what)
        self.initializers[name] = np.asarray(value, dtype=dtype)
        self.used.add(name)
        return name

    def ints(self, values, what="shape"):
        return self.const(np.asarray(values, np.int64).reshape(-1), what, np.int64)

    def scalar(self, value, what="scalar"):
        return self.const(np.float32(value), what)

    def reduce(self, op, x, axes, keepdims, output=None):
        """ReduceSum/Mean/Max/L1/SumSquare over `axes`: an input from opset 18 (13 for Sum)."""
        axes = [int(a) for a in axes]
        if op == "ReduceSum" or self.opset >= 18:
            return self.node(op, [x, self.ints(axes, "axes")], output, keepdims=keepdims)
        return self.node(op, [x], output, axes=axes, keepdims=keepdims)

    def reshape(self, x, target, output=None):
        return self.node("Reshape", [x, self.ints(target)], output)

    # -- shapes -----------------------------------------------------------------------------
    def shape(self, blob):
        return tuple(self.shapes[blob])

    def batch_axes(self, blob):
        return [i for i, d in enumerate(self.dynamic[blob]) if d]

    def target(self, blob, shape=None):
        """A Reshape target for `blob` (or `shape`, with blob's batch-following dims): static
        dims, with -1 at the one dim that follows the batch."""
        shape = list(self.shape(blob) if shape is None else shape)
        moving = self.batch_axes(blob)
        if len(moving) > 1:
            raise self.error(f"blob '{blob}' {tuple(shape)} has {len(moving)} dims that change "
                             f"with the batch; export with a static batch (--static-batch)")
        for i in moving:
            shape[i] = -1
        return shape

    def static_axis(self, blob, axis, what):
        """Refuse an operation along a dim of blob that changes with the batch."""
        if self.dynamic[blob][axis]:
            raise self.error(f"{what} runs along axis {axis} of '{blob}', which changes with "
                             f"the batch; export with a static batch (--static-batch)")

    # -- the end ----------------------------------------------------------------------------
    def resolve(self, tensor):
        while tensor in self.renamed:
            tensor = self.renamed[tensor]
        return tensor

    def rename(self, old, new):
        self.renamed[old] = new
        for node in self.nodes:
            node.inputs = [new if n == old else n for n in node.inputs]
            node.outputs = [new if n == old else n for n in node.outputs]
        if old in self.initializers:
            self.initializers[new] = self.initializers.pop(old)
        self.used.add(new)

    def name_output(self, tensor, blob, fixed):
        """Make the graph output for `blob` be called `blob`; `fixed` are names that cannot
        change (graph inputs). Returns the output's name."""
        tensor = self.resolve(tensor)
        if tensor == blob:
            return blob
        produced = {n for node in self.nodes for n in node.outputs}
        if blob in self.used and blob not in fixed:
            self.rename(blob, self.fresh(f"{blob}/0"))
        elif blob in fixed:
            return tensor  # an input passed straight through keeps the input's name
        if tensor in produced and tensor not in fixed and tensor not in self.output_names:
            self.rename(tensor, blob)
        else:
            self.layer = None
            self.node("Identity", [tensor], blob)
        self.output_names.add(blob)
        return blob
