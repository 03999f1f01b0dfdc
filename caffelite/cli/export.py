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
def command(net, weights, output, phase, level, stage, static_batch, opset):
    """Export the net NET (a deploy .prototxt/.yaml/.json, or a train_val with --phase TEST)
    with the trained WEIGHTS (.caffemodel, by layer name) to an ONNX model. Data layers become
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
    model_net = Net(net, phase=getattr(pb, phase.upper()), level=level,
                    stages=tuple(split_list(stage)), weights=weights)
    opset = DEFAULT_OPSET if opset is None else opset
    model, notes = build_model(model_net, opset=opset, static_batch=static_batch)
    atomic_write(output, model.SerializeToString())
    for note in notes:
        click.echo(f"note: {note}")
    inputs = " ".join(f"{v.name}[{_dims(v)}]" for v in model.graph.input)
    outputs = " ".join(f"{v.name}[{_dims(v)}]" for v in model.graph.output)
    click.echo(f"wrote {output} (ONNX opset {opset}): inputs {inputs}; outputs {outputs}")
