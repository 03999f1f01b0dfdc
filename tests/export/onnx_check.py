"""Helpers of the ONNX export tests: export a built net, run it in onnxruntime, compare."""
import numpy as np
import pytest

from caffelite.proto import caffelite_pb2 as pb

pytest.importorskip("onnx", reason="onnx not installed (pip install \"caffelite[onnx]\")")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (the test extra)")

# onnxruntime and caffelite sum float32 products in different orders: 1e-4 of a blob's
# largest magnitude is hundreds of ulps there, while a semantic difference shows at 1e-2.
RTOL = 1e-4
DATA_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData")


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run(model, feeds):
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def assert_close(ours, theirs, what, rtol=RTOL):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: caffelite {ours.shape}, onnxruntime " \
                                       f"{theirs.shape}"
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), f"{what}: NaN at other places"
    finite = np.isfinite(ours)
    assert np.array_equal(ours[~finite], theirs[~finite], equal_nan=True), f"{what}: inf differ"
    scale = float(np.abs(ours[finite]).max()) if finite.any() else 0.0
    diff = float(np.abs(ours[finite] - theirs[finite]).max()) if finite.any() else 0.0
    assert diff <= rtol * max(scale, 1e-6), \
        f"{what}: max |caffelite - onnxruntime| = {diff:.3g}, largest |value| {scale:.3g}"


def check(net, inputs, model=None, rtol=RTOL, **export_args):
    """Export net (unless model is given), run both on `inputs` ({blob: array}), compare
    every graph output with the same blob of caffelite's forward. Returns the model."""
    from caffelite.export import export_onnx

    model = model if model is not None else export_onnx(net, **export_args)
    graph_inputs = [i.name for i in model.graph.input]
    for name, array in inputs.items():
        net.blobs[name].reshape(array.shape)
        net.blobs[name].data[...] = array
    net.forward_from_to(first_non_source(net, inputs))
    theirs = run(model, {name: inputs[name] for name in graph_inputs})
    assert theirs, "the model has no outputs"
    blobs = {o.name: o.doc_string.split("'")[1] for o in model.graph.output}
    for name, value in theirs.items():
        assert_close(net.blobs[blobs[name]].data, value, f"blob '{blobs[name]}'", rtol)
    return model


def first_non_source(net, inputs):
    """Index of the first layer after the leading data layers whose tops are set by hand."""
    for i, layer in enumerate(net.layers):
        if layer.layer_param.bottom or not set(net.top_names[layer.name]) & set(inputs):
            return i
    return len(net.layers)


def randomise(net, rng):
    """Seeded weights N(0, 1/fan_in) (activations stay O(1)); BatchNorm sums scaled by s."""
    for name, blobs in net.params.items():
        if net.layer_dict[name].type == "BatchNorm":
            s = np.float32(rng.uniform(0.5, 4))
            blobs[0].data[...] = rng.normal(0, 0.3, blobs[0].shape) * s
            blobs[1].data[...] = rng.uniform(0.5, 2.0, blobs[1].shape) * s
            blobs[2].data[...] = s
            continue
        for i, blob in enumerate(blobs):
            std = 1 / np.sqrt(blob.count(1)) if i == 0 and len(blob.shape) > 1 else 0.1
            blob.data[...] = rng.standard_normal(blob.shape).astype(np.float32) * std


def with_inputs(param, shapes):
    """A copy of NetParameter `param` whose data layers are Input layers: top 0 of shape
    shapes[layer name or 'data'], further tops (labels) (batch,)."""
    out = pb.NetParameter()
    out.CopyFrom(param)
    for layer in out.layer:
        if layer.type not in DATA_TYPES:
            continue
        shape = shapes.get(layer.name, shapes.get("data"))
        kept = pb.LayerParameter()
        kept.CopyFrom(layer)
        layer.Clear()
        layer.name, layer.type = kept.name, "Input"
        layer.top.extend(kept.top)
        layer.include.extend(kept.include)
        layer.exclude.extend(kept.exclude)
        layer.input_param.shape.add(dim=list(shape))
        for _ in kept.top[1:]:
            layer.input_param.shape.add(dim=[shape[0]])
    return out


def random_inputs(net, rng, names=None):
    """Inputs for the net's Input tops: N(0, 1), or 0 for one-axis blobs (labels)."""
    names = names or net.inputs
    return {name: (rng.standard_normal(net.blobs[name].shape).astype(np.float32)
                   if len(net.blobs[name].shape) > 1 else
                   np.zeros(net.blobs[name].shape, np.float32)) for name in names}


def layer_net(snippet, shapes, rng, phase=None):
    """A net of Input tops x, y, z ... (shapes in order) followed by the layers `snippet`
    (prototxt), with seeded random weights."""
    import caffelite
    from caffelite.formats.config import parse_net_text

    names = "xyzuvw"[:len(shapes)]
    dims = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes)
    tops = " ".join(f'top: "{n}"' for n in names)
    text = f'name: "t" layer {{ name: "in" type: "Input" {tops} input_param {{ {dims} }} }}\n'
    net = caffelite.Net(parse_net_text(text + snippet), phase or caffelite.TEST)
    randomise(net, rng)
    return net


def check_layer(snippet, shapes, rng, inputs=None, rtol=RTOL, **export_args):
    """Build layer_net, export it, compare on inputs (default N(0, 1)); the model."""
    net = layer_net(snippet, shapes, rng)
    values = random_inputs(net, rng) if inputs is None else inputs
    if inputs is None:
        values = {k: rng.standard_normal(net.blobs[k].shape).astype(np.float32)
                  for k in net.inputs}
    return check(net, values, rtol=rtol, **export_args)
