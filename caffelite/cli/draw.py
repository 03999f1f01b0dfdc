"""`caffelite draw NET -o out.(dot|svg|png)`: the net as Caffe's draw_net.py draws it."""
import click

from ..formats.config import read_net_param
from ..net_filter import filter_net
from ..proto import caffelite_pb2 as pb
from ..tools.draw import draw_net_to_file


def net_for_phase(net_param, phase):
    """net_param filtered by the Net's NetState rules for phase "TRAIN"/"TEST" (the file's
    level and stages kept); "ALL" keeps every layer, as draw_net.py without --phase."""
    if phase.upper() == "ALL":
        return net_param
    state_param = pb.NetParameter()
    state_param.CopyFrom(net_param)
    state_param.state.phase = getattr(pb, phase.upper())
    return filter_net(state_param)


@click.command(name="draw")
@click.argument("net", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, metavar="OUT.(dot|svg|png)",
              help="Drawing to write; the extension picks the format.")
@click.option("--rankdir", type=click.Choice(["LR", "TB", "BT", "RL"], case_sensitive=False),
              default="LR", show_default=True, help="Direction of the graph layout.")
@click.option("--phase", type=click.Choice(["TRAIN", "TEST", "ALL"], case_sensitive=False),
              default="ALL", show_default=True,
              help="Draw only the layers of this phase's net (include/exclude rules).")
@click.option("--display-lrm", is_flag=True,
              help="Show each layer's learning rate and decay multipliers.")
@click.option("--engine", type=click.Choice(["auto", "dot", "builtin"]), default="auto",
              show_default=True, help="SVG/PNG renderer: Graphviz's dot when installed "
              "(auto), or caffelite's layered layout with edges routed around boxes.")
def command(net, output, rankdir, phase, display_lrm, engine):
    """Draw NET (prototxt, YAML or JSON): layers as boxes coloured by type, blobs as octagons,
    in-place layers folded into the layer they follow. DOT needs nothing; SVG and PNG use
    Graphviz's `dot` when installed, else a built-in layered layout in which no edge crosses
    a box."""
    net_param = net_for_phase(read_net_param(net), phase)
    renderer = draw_net_to_file(net_param, output, rankdir.upper(), display_lrm,
                                 engine)
    how = {"dot": "Graphviz dot", "builtin": "built-in layout", "dot-text": "DOT text"}
    click.echo(f"wrote {output} ({len(net_param.layer)} layers, "
               f"{how.get(renderer, renderer)})")
