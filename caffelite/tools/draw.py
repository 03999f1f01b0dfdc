"""Net drawings as Caffe's draw_net: layers as boxes coloured by type, blobs as octagons.

DOT text needs nothing. SVG and PNG use Graphviz's `dot` when it is installed; without it,
caffelite lays the graph out itself (draw_layout: layered, with edges routed around every box)
and writes the SVG directly, or the PNG through matplotlib.
"""
import shutil
import subprocess
from pathlib import Path

from ..errors import CaffeliteError
from .draw_layout import layered_layout

LAYER_COLOURS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
                 "InnerProduct": "#CC33FF"}
DEFAULT_COLOUR = "#6495ED"
BLOB_COLOUR = "#E0E0E0"


def layer_label(layer, display_lrm=False):
    label = f"{layer.name}\n({layer.type})"
    if display_lrm and layer.param:
        label += "\n" + " ".join(f"lr x{p.lr_mult:g} decay x{p.decay_mult:g}" for p in layer.param)
    return label


def build_graph(net_param, display_lrm=False):
    """(nodes, edges): nodes {id: (label, kind, colour)}, kind 'layer'|'blob'; in-place layers
    are folded into the box of the layer that produced their blob."""
    nodes, edges, producer = {}, [], {}
    for i, layer in enumerate(net_param.layer):
        label = layer_label(layer, display_lrm)
        in_place = len(layer.top) > 0 and list(layer.top) == list(layer.bottom)
        if in_place and layer.top[0] in producer:
            owner = producer[layer.top[0]]
            old_label, kind, colour = nodes[owner]
            nodes[owner] = (f"{old_label}\n+ {label.replace(chr(10), ' ')}", kind, colour)
            continue
        lid = f"layer{i}"
        nodes[lid] = (label, "layer", LAYER_COLOURS.get(layer.type, DEFAULT_COLOUR))
        for bottom in layer.bottom:
            nodes.setdefault(f"blob_{bottom}", (bottom, "blob", BLOB_COLOUR))
            edges.append((f"blob_{bottom}", lid))
        for top in layer.top:
            nodes.setdefault(f"blob_{top}", (top, "blob", BLOB_COLOUR))
            edges.append((lid, f"blob_{top}"))
            producer[top] = lid
    return nodes, edges


def to_dot(net_param, rankdir="LR", display_lrm=False):
    nodes, edges = build_graph(net_param, display_lrm)
    lines = [f'digraph "{net_param.name or "net"}" {{', f"  rankdir={rankdir};"]
    for nid, (label, kind, colour) in nodes.items():
        text = label.replace('"', r"\"").replace("\n", r"\n")
        shape = "record" if kind == "layer" else "octagon"
        lines.append(f'  "{nid}" [label="{text}", shape={shape}, style=filled, '
                     f'fillcolor="{colour}"];')
    lines += [f'  "{a}" -> "{b}";' for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


CHAR_WIDTH, LINE_HEIGHT, FONT_SIZE = 6.8, 13, 11  # pixels, for an 11 px sans-serif


def node_size(label, kind):
    """(w, h) in pixels of a node's box: its text plus padding (blobs need room for corners)."""
    lines = label.split("\n")
    width = max(len(line) for line in lines) * CHAR_WIDTH
    if kind == "layer":
        return max(width + 20, 70), len(lines) * LINE_HEIGHT + 14
    return max(width + 34, 56), len(lines) * LINE_HEIGHT + 16


def net_layout(net_param, rankdir="LR", display_lrm=False):
    """(nodes, edges, Layout): the graph of build_graph laid out in pixels by
    draw_layout.layered_layout (edges routed around every box)."""
    nodes, edges = build_graph(net_param, display_lrm)
    sizes = {nid: node_size(label, kind) for nid, (label, kind, _) in nodes.items()}
    return nodes, edges, layered_layout(sizes, edges, rankdir.upper())


def layout(nodes, edges, rankdir="LR"):
    """Centres {id: (x, y)} in pixels of the nodes of build_graph's (nodes, edges)."""
    sizes = {nid: node_size(label, kind) for nid, (label, kind, _) in nodes.items()}
    placed = layered_layout(sizes, edges, rankdir.upper())
    return {nid: (cx, cy) for nid, (cx, cy, _, _) in placed.boxes.items()}


def octagon(cx, cy, w, h):
    """The corners of a blob's octagon inside its w x h box."""
    return [(cx + dx * w / 2, cy + dy * h / 2) for dx, dy in
            [(-.7, -1), (.7, -1), (1, -.4), (1, .4), (.7, 1), (-.7, 1), (-1, .4), (-1, -.4)]]


def _escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def to_svg(net_param, rankdir="LR", display_lrm=False):
    """The drawing as SVG text. Nodes are `<g class="node" id="nK" data-name=...>`; edges are
    `<polyline class="edge" data-tail="nI" data-head="nJ">` routed around the boxes."""
    nodes, edges, placed = net_layout(net_param, rankdir, display_lrm)
    ids = {nid: f"n{k}" for k, nid in enumerate(nodes)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{placed.width:.0f}" '
           f'height="{placed.height:.0f}" viewBox="0 0 {placed.width:.1f} {placed.height:.1f}" '
           f'font-family="DejaVu Sans, Verdana, sans-serif" font-size="{FONT_SIZE}">',
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
           'orient="auto" markerUnits="userSpaceOnUse"><path d="M0,0 L8,4 L0,8 z" '
           'fill="#444"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>']
    for tail, head, points in placed.routes:
        text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline class="edge" data-tail="{ids[tail]}" data-head="{ids[head]}" '
                   f'points="{text}" fill="none" stroke="#444" stroke-width="1.2" '
                   'marker-end="url(#arrow)"/>')
    for nid, (label, kind, colour) in nodes.items():
        cx, cy, w, h = placed.boxes[nid]
        name = _escape(label.split("\n")[0])
        out.append(f'<g class="node {kind}" id="{ids[nid]}" data-name="{name}">'
                   f'<title>{_escape(label)}</title>')
        if kind == "layer":
            out.append(f'<rect x="{cx - w / 2:.1f}" y="{cy - h / 2:.1f}" width="{w:.1f}" '
                       f'height="{h:.1f}" rx="3" fill="{colour}" stroke="black"/>')
        else:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in octagon(cx, cy, w, h))
            out.append(f'<polygon points="{pts}" fill="{colour}" stroke="black"/>')
        lines = label.split("\n")
        for k, text in enumerate(lines):
            dy = (k - (len(lines) - 1) / 2) * LINE_HEIGHT + 4
            out.append(f'<text x="{cx:.1f}" y="{cy + dy:.1f}" text-anchor="middle">'
                       f'{_escape(text)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def png_scale(width, height, wanted=1.25):
    """Pixels per layout pixel: `wanted` (text about 14 px high), less for drawings that
    would pass matplotlib's 65,536-pixel limit."""
    return min(wanted, 60000 / max(width, height, 1))


def to_png(net_param, path, rankdir="LR", display_lrm=False):
    """Render the layout of to_svg with matplotlib (the optional 'plot' extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Polygon, Rectangle
    except ImportError:
        raise CaffeliteError("PNG output needs Graphviz's `dot` or matplotlib: "
                             "apt install graphviz, or pip install 'caffelite[plot]'") from None
    nodes, edges, placed = net_layout(net_param, rankdir, display_lrm)
    scale = png_scale(placed.width, placed.height)
    fig = plt.figure(figsize=(placed.width / 100, placed.height / 100), dpi=100 * scale)
    ax = fig.add_axes((0, 0, 1, 1))
    for _, _, points in placed.routes:
        xs, ys = zip(*points)
        ax.plot(xs, ys, color="#444", linewidth=0.9, solid_joinstyle="miter")
        ax.add_patch(Polygon(_arrowhead(points), closed=True, color="#444", linewidth=0))
    for nid, (label, kind, colour) in nodes.items():
        cx, cy, w, h = placed.boxes[nid]
        if kind == "layer":
            patch = Rectangle((cx - w / 2, cy - h / 2), w, h, fc=colour, ec="black", lw=0.8)
        else:
            patch = Polygon(octagon(cx, cy, w, h), closed=True, fc=colour, ec="black", lw=0.8)
        ax.add_patch(patch)
        ax.text(cx, cy, label, ha="center", va="center", fontsize=FONT_SIZE * 0.72,
                linespacing=1.15)
    ax.set_xlim(0, placed.width)
    ax.set_ylim(placed.height, 0)
    ax.axis("off")
    fig.savefig(path, dpi=100 * scale, facecolor="white")
    plt.close(fig)


def _arrowhead(points, length=8, half=4):
    (x0, y0), (x1, y1) = points[-2], points[-1]
    norm = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-9)
    ux, uy = (x1 - x0) / norm, (y1 - y0) / norm
    bx, by = x1 - ux * length, y1 - uy * length
    return [(x1, y1), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)]


def draw_net_to_file(net_param, path, rankdir="LR", display_lrm=False, engine="auto"):
    """Write .dot, .svg or .png (by extension). engine: "auto" (Graphviz's dot when it is
    installed, else the built-in layout), "dot" or "builtin". Returns the renderer used
    ('dot', 'builtin' or 'dot-text')."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    dot_text = to_dot(net_param, rankdir, display_lrm)
    if ext in ("dot", "gv"):
        path.write_text(dot_text)
        return "dot-text"
    if ext not in ("svg", "png"):
        raise CaffeliteError(f"{path}: unknown drawing format '.{ext}'; use .dot, .svg or .png")
    if engine not in ("auto", "dot", "builtin"):
        raise CaffeliteError(f"unknown drawing engine '{engine}'; use auto, dot or builtin")
    if engine == "dot" and not shutil.which("dot"):
        raise CaffeliteError("--engine dot: Graphviz's `dot` is not on PATH (apt install "
                             "graphviz), or use the built-in layout (--engine builtin)")
    if engine != "builtin" and shutil.which("dot"):
        subprocess.run(["dot", f"-T{ext}", "-o", str(path)], input=dot_text.encode(),
                       check=True)
        return "dot"
    if ext == "svg":
        path.write_text(to_svg(net_param, rankdir, display_lrm))
    else:
        to_png(net_param, path, rankdir, display_lrm)
    return "builtin"
