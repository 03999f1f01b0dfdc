"""pycaffe's `caffe.draw`: draw_net, draw_net_to_file and get_pydot_graph with pycaffe's
signatures, over the drawing code in tools/draw.py (which also lays nets out without Graphviz).

    from caffelite import draw
    draw.draw_net_to_file(net_param, "lenet.png", "LR", phase=caffelite.TEST)
"""
import os
import tempfile

from .tools.draw import (  # noqa: F401
    build_graph,
    layer_label,
    to_dot,
    to_png,
    to_svg,
)
from .tools.draw import draw_net_to_file as _draw_to_file


def _net_param(caffe_net):
    """A NetParameter from a NetParameter, a caffelite.Net or a config path."""
    from .proto import caffelite_pb2 as pb

    if isinstance(caffe_net, pb.NetParameter):
        return caffe_net
    if hasattr(caffe_net, "net_param"):
        return caffe_net.net_param
    if isinstance(caffe_net, (str, os.PathLike)):
        from .formats.config import read_net_param

        return read_net_param(os.fspath(caffe_net))
    raise TypeError(f"draw takes a NetParameter, a Net or a config path, not "
                    f"{type(caffe_net).__name__}")


def filter_phase(net_param, phase):
    """The layers pycaffe's drawing keeps for a phase: only include/exclude `phase` rules are
    read (not stages or levels); a layer with both include and exclude is a ValueError."""
    if phase is None:
        return net_param
    kept = type(net_param)()
    kept.CopyFrom(net_param)
    del kept.layer[:]
    for layer in net_param.layer:
        if len(layer.include) and len(layer.exclude):
            raise ValueError(f"layer {layer.name} has both include and exclude specified.")
        included = not len(layer.include) or any(r.phase == phase for r in layer.include)
        if any(r.phase == phase for r in layer.exclude):
            included = False
        if included:
            kept.layer.add().CopyFrom(layer)
    return kept


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Draw the net to filename; the format follows its extension (.png, .svg, .dot)."""
    net_param = filter_phase(_net_param(caffe_net), phase)
    return _draw_to_file(net_param, filename, rankdir=rankdir, display_lrm=display_lrm)


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The drawing as bytes in format `ext` ('png', 'svg' or 'dot')."""
    with tempfile.TemporaryDirectory(prefix="caffelite-draw-") as tmp:
        path = os.path.join(tmp, f"net.{ext}")
        draw_net_to_file(caffe_net, path, rankdir, phase, display_lrm)
        with open(path, "rb") as f:
            return f.read()


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """The net as a pydot.Dot (needs pydot). label_edges is accepted for pycaffe's signature;
    edges are drawn unlabelled."""
    try:
        import pydot
    except ImportError:
        raise ImportError("get_pydot_graph needs pydot: pip install pydot (draw_net and "
                          "draw_net_to_file work without it)") from None
    net_param = filter_phase(_net_param(caffe_net), phase)
    graphs = pydot.graph_from_dot_data(to_dot(net_param, rankdir, display_lrm))
    return graphs[0]
