"""export_onnx: a built Net as an ONNX model that computes its forward (the net's phase).

Data layers become graph inputs (their tops as the layers deliver them: after the transform);
losses, Accuracy and Silence are dropped with a note; Split and Dropout are the identity. The
batch (dim 0 of every input) is dynamic unless static_batch: each blob's shape is read from the
net, then the net is reshaped once for one more item per batch, and the dims that moved are the
ones that follow the batch (a Reshape gets -1 there).
"""
import logging

import numpy as np

from ..formats.binary import atomic_write
from . import neurons, normalization, recurrent, structure, vision  # noqa: F401 (converters)
from .onnx_graph import CONVERTERS, DEFAULT_OPSET, MIN_OPSET, ExportError, Graph, require_onnx

logger = logging.getLogger("caffelite")
SOURCES = ("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "Input", "DummyData")
DROPPED = ("Accuracy", "Silence", "HDF5Output")
CANNOT = {
    "Python": "a Python layer runs arbitrary Python code, which ONNX cannot hold",
}


def _kind(layer):
    """How a layer is exported: source, drop, split, convert."""
    kind = layer.type
    if kind == "DummyData" and _constant_dummy(layer):
        return "convert"
    if kind in SOURCES or (not layer.layer_param.bottom and kind not in CONVERTERS):
        return "source"
    if kind in DROPPED or kind.endswith("Loss") or _weighted(layer):
        return "drop"
    if kind == "Split":
        return "split"
    return "convert"


def _weighted(layer):
    """Every top carries a loss weight: a loss (a Python loss layer says so this way)."""
    weights = list(layer.loss_weights)
    return bool(weights) and all(weights)


def _constant_dummy(layer):
    return all(f.type == "constant" for f in layer.fillers)


def _check_layers(net, kinds):
    for layer, kind in zip(net.layers, kinds):
        if kind != "convert" or layer.type in CONVERTERS:
            continue
        why = CANNOT.get(layer.type, "no ONNX converter for this layer type")
        raise ExportError(f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX: "
                          f"{why}")


def _blob_shapes(net, kinds, inputs, static_batch):
    """{blob: shape} and {blob: dims that follow the batch}."""
    shapes = {name: tuple(blob.shape) for name, blob in net.blobs.items()}
    moving = {name: (False,) * len(shape) for name, shape in shapes.items()}
    if static_batch or not inputs:
        return shapes, moving
    layers = list(zip(net.layers, net.bottom_vecs, net.top_vecs, kinds))
    saved = {name: blob.data.copy() for name, blob in net.blobs.items()}  # reshape zeroes
    failed = None
    try:
        for name in inputs:
            shape = shapes[name]
            net.blobs[name].reshape((shape[0] + 1,) + shape[1:])
        for layer, bottom, top, kind in layers:
            if bottom and kind != "drop":
                failed = layer
                layer.reshape(bottom, top)
        failed = None
        for name, blob in net.blobs.items():
            if len(blob.shape) == len(shapes[name]):
                moving[name] = tuple(a != b for a, b in zip(blob.shape, shapes[name]))
    except Exception as exc:  # any layer that cannot take another batch size
        where = f"layer '{failed.name}' ({failed.type})" if failed else "the net"
        raise ExportError(f"net '{net.name}' cannot be exported with a dynamic batch: {where} "
                          f"does not take {shapes[inputs[0]][0] + 1} items ({exc}); export "
                          "with a static batch (--static-batch, static_batch=True)") from None
    finally:
        for name in inputs:
            net.blobs[name].reshape(shapes[name])
        for layer, bottom, top, _ in layers:
            if bottom:
                layer.reshape(bottom, top)
        for name, blob in net.blobs.items():
            if blob.shape == saved[name].shape:
                blob.data[...] = saved[name]
    return shapes, moving


def _value_info(onnx, name, shape, moving, batch_dims):
    dims = []
    for size, moves in zip(shape, moving):
        if not moves:
            dims.append(int(size))
        else:  # a dim that follows the batch, or one that depends on the data ("data")
            dims.append("N" if moves is True and size in batch_dims else None)
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)


class _Plan:
    """Which blobs the exported layers read, with Split tops read as their bottom."""

    def __init__(self, net, kinds):
        self.canon = {}
        for layer, kind in zip(net.layers, kinds):
            if kind == "split":
                for top in net.top_names[layer.name]:
                    self.canon[top] = self.of(net.bottom_names[layer.name][0])
        self.consumed = set()
        for layer, kind in zip(net.layers, kinds):
            if kind == "convert":
                self.consumed.update(self.of(b) for b in net.bottom_names[layer.name])

    def of(self, blob):
        return self.canon.get(blob, blob)


def _convert(net, kinds, plan, graph, inputs):
    """Run every layer's converter in order: ({blob: its current tensor}, [output blobs]) with
    Caffe's rule for outputs (a top stays available until a later layer reads it)."""
    current = {name: name for name in inputs}
    available = []
    for layer, kind in zip(net.layers, kinds):
        bottoms, tops = net.bottom_names[layer.name], net.top_names[layer.name]
        read = {plan.of(x) for x in bottoms}
        if layer.type == "Silence":  # it exists to consume blobs: they are not outputs
            available = [b for b in available if b not in read]
        if kind == "drop":
            graph.notes.append(f"dropped layer '{layer.name}' ({layer.type}): no meaning at "
                               "inference")
        if kind == "split":
            for top in tops:
                if bottoms[0] in current:  # (a label read only by a loss has no tensor)
                    current[top] = current[bottoms[0]]
        if kind != "convert" or (not bottoms and not plan.consumed.intersection(tops)):
            continue
        graph.begin(layer, bottoms, tops)
        outs = CONVERTERS[layer.type](graph, layer, [current[b] for b in bottoms])
        available = [b for b in available if b not in read]
        for top, out in zip(tops, outs):
            current[top] = out
            if top not in available:
                available.append(top)
    return current, available


def build_model(net, opset=DEFAULT_OPSET, static_batch=False):
    """The ONNX ModelProto of `net` and a list of notes (what was dropped)."""
    onnx = require_onnx()
    opset = int(opset)
    top_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= top_opset:
        raise ExportError(f"opset {opset} is not supported: choose {MIN_OPSET}..{top_opset} "
                          f"(default {DEFAULT_OPSET})")
    kinds = [_kind(layer) for layer in net.layers]
    _check_layers(net, kinds)
    plan = _Plan(net, kinds)
    inputs = [top for layer, kind in zip(net.layers, kinds) if kind == "source"
              for top in net.top_names[layer.name] if top in plan.consumed]
    shapes, moving = _blob_shapes(net, kinds, inputs, static_batch)
    graph = Graph(opset, shapes, moving)
    graph.net = net
    graph.used.update(inputs)
    current, available = _convert(net, kinds, plan, graph, inputs)
    graph.layer = None
    outputs = []
    for blob in available:
        name = graph.name_output(current[blob], blob, fixed=set(inputs))
        outputs.append((name, blob))
    return _model(onnx, net, graph, inputs, outputs), graph.notes


def _model(onnx, net, graph, inputs, outputs):
    helper = onnx.helper
    batch_dims = {graph.shapes[name][0] for name in inputs if graph.dynamic[name][:1] == (True,)}
    nodes = [helper.make_node(n.op, n.inputs, n.outputs, name=n.name, **n.attrs)
             for n in graph.nodes]
    inits = [onnx.numpy_helper.from_array(np.array(value, order="C"), name)
             for name, value in graph.initializers.items()]
    graph_inputs = [_value_info(onnx, name, graph.shapes[name], graph.dynamic[name], batch_dims)
                    for name in inputs]
    graph_outputs = []
    for name, blob in outputs:  # the doc string names the blob (an in-place input differs)
        info = _value_info(onnx, name, graph.shapes[blob], graph.dynamic[blob], batch_dims)
        info.doc_string = f"Caffe blob '{blob}'"
        graph_outputs.append(info)
    body = helper.make_graph(nodes, net.name or "caffelite", graph_inputs, graph_outputs, inits)
    from .. import __version__

    model = helper.make_model(body, producer_name="caffelite", producer_version=__version__,
                              doc_string=f"Caffe net '{net.name}' exported by caffelite",
                              opset_imports=[helper.make_opsetid("", graph.opset)])
    model.ir_version = min(model.ir_version, _ir_version(onnx, graph.opset))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported model of net '{net.name}' fails onnx.checker: "
                          f"{str(exc).splitlines()[0]}") from None
    return model


def _ir_version(onnx, opset):
    """The IR version of the ONNX release that introduced `opset`, so older runtimes load it."""
    for entry in onnx.helper.VERSION_TABLE:
        if entry[2] == opset:
            return entry[1]
    return onnx.IR_VERSION


def export_onnx(net, path=None, opset=DEFAULT_OPSET, static_batch=False):
    """Write `net` (a built caffelite.Net with its weights) as an ONNX model to `path`
    (atomically) and return the onnx.ModelProto. Raises ExportError naming the layer when a
    layer cannot be exported; nothing is written then."""
    model, notes = build_model(net, opset=opset, static_batch=static_batch)
    for note in notes:
        logger.info("%s", note)
    if path is not None:
        atomic_write(path, model.SerializeToString())
    return model
