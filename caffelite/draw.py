"""pycaffe's `caffe.draw`: net drawings (the code lives in tools/draw.py)."""
from .tools.draw import (  # noqa: F401
    build_graph,
    draw_net_to_file,
    layer_label,
    to_dot,
    to_png,
    to_svg,
)
