"""`caffelite export NET WEIGHTS -o model.onnx`: a trained net as an ONNX model."""
import os

import click

from ..errors import ConfigError
from .train import split_list


def _dims(value_info):
    dims = value_info.type.tensor_type.shape.dim
    return ",".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
                    for d in dims)


@click.command(name="export")
@click.argument("net", metavar="NET")
@click.argument("weights", metavar="WEIGHTS")
@click.option("-o", "--output", required=True, metavar="MODEL.onnx",
              help="The ONNX file to write (atomically; nothing is written on an error).")
@click.option("--phase", type=click.Choice(["TEST", "TRAIN"], case_sensitive=False),
              default="TEST", show_default=True,
              help="The net phase to build (a train_val net: TEST drops the training layers).")
@click.option("--level", type=int, default=0, help="The net state's level.")
@click.option("--stage", metavar="S1[,S2]", help="The net state's stages.")
@click.option("--static-batch", is_flag=True,
              help="Fix the batch to the net's own batch size (default: a dynamic batch N).")
@click.option("--opset", type=int, default=None, metavar="N",
              help="ONNX opset to write (default 17; 13 or later).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="BLOB=D1,D2,...",
              help="The shape of input BLOB: a data layer (Data, ImageData, ...) with that top "
                   "becomes an Input (so its database need not exist; other tops such as "
                   "labels get (D1,)); an Input top is resized. Repeatable.")
def command(net, weights, output, phase, level, stage, static_batch, opset, input_shapes):
    """Export a trained net to an ONNX model.

    NET is a deploy .prototxt/.yaml/.json, or a train_val net built in --phase (TEST);
    WEIGHTS a .caffemodel, loaded by layer name. Data layers become
    graph inputs, losses and Accuracy are dropped; inputs and outputs keep Caffe's blob
    names. A layer that cannot be exported is an error naming it, and no file is written."""
    for path, what in ((net, "net config"), (weights, "weights")):
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: no such {what} file")
    from ..export import DEFAULT_OPSET, build_model
    from ..export.onnx_graph import require_onnx
    from ..formats.binary import atomic_write
    from ..net import Net
    from ..proto import caffelite_pb2 as pb

    require_onnx()  # before the (slower) net build
    source = with_input_shapes(net, parse_shapes(input_shapes)) if input_shapes else net
    model_net = Net(source, phase=getattr(pb, phase.upper()), level=level,
                    stages=tuple(split_list(stage)), weights=weights)
    opset = DEFAULT_OPSET if opset is None else opset
    model, notes = build_model(model_net, opset=opset, static_batch=static_batch)
    atomic_write(output, model.SerializeToString())
    for note in notes:
        click.echo(f"note: {note}")
    inputs = " ".join(f"{v.name}[{_dims(v)}]" for v in model.graph.input)
    outputs = " ".join(f"{v.name}[{_dims(v)}]" for v in model.graph.output)
    click.echo(f"wrote {output} (ONNX opset {opset}): inputs {inputs}; outputs {outputs}")


DATA_LAYERS = ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData", "DummyData",
               "Input")


def parse_shapes(entries):
    shapes = {}
    for entry in entries:
        name, _, dims = entry.partition("=")
        try:
            shape = [int(d) for d in dims.split(",")]
        except ValueError:
            shape = []
        if not name or not shape or min(shape) <= 0:
            raise ConfigError(f"--input-shape {entry!r}: give BLOB=D1,D2,... with positive "
                              "dims, e.g. data=1,3,227,227")
        shapes[name] = shape
    return shapes


def with_input_shapes(path, shapes):
    """The net at path with every data layer that has a top in `shapes` made an Input layer
    of those shapes (tops not given: (batch,)), its include/exclude rules kept."""
    from ..formats.config import read_net_param, resolve_net_paths
    from ..proto import caffelite_pb2 as pb

    param = resolve_net_paths(read_net_param(path), path)
    found = set()
    for layer in param.layer:
        tops = list(layer.top)
        if layer.type not in DATA_LAYERS or not set(shapes).intersection(tops):
            continue
        given = [t for t in tops if t in shapes]
        found.update(given)
        batch = shapes[given[0]][0]
        rules = [list(layer.include), list(layer.exclude)]
        name = layer.name
        layer.Clear()
        layer.name, layer.type = name, "Input"
        layer.top.extend(tops)
        layer.include.extend(rules[0])
        layer.exclude.extend(rules[1])
        for top in tops:
            layer.input_param.shape.add(dim=shapes.get(top, [batch]))
    missing = sorted(set(shapes) - found)
    if missing:
        data_tops = sorted({t for layer in param.layer if layer.type in DATA_LAYERS
                            for t in layer.top})
        raise ConfigError(f"--input-shape {missing[0]}: no data layer of {path} has a top of "
                          f"that name (data tops: {', '.join(data_tops) or 'none'})")
    return pb.NetParameter.FromString(param.SerializeToString())
