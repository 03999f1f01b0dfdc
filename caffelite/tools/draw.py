"""Net drawings as Caffe's draw_net: layers as boxes coloured by type, blobs as octagons.

DOT text needs nothing. SVG and PNG use Graphviz's `dot` when it is installed; without it,
caffelite lays the graph out itself (rank = longest path from the inputs) and writes the SVG
directly, or the PNG through matplotlib.
"""
import shutil
import subprocess
from pathlib import Path

from ..errors import CaffeliteError

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


def layout(nodes, edges, rankdir="LR"):
    """Positions {id: (x, y)} in grid units: rank along the flow, order within a rank across."""
    rank = {nid: 0 for nid in nodes}
    for _ in range(len(nodes)):  # longest path; nodes are few, so the simple relaxation is fine
        changed = False
        for a, b in edges:
            if rank[b] < rank[a] + 1:
                rank[b], changed = rank[a] + 1, True
        if not changed:
            break
    slots, pos = {}, {}
    for nid in nodes:
        k = slots.get(rank[nid], 0)
        slots[rank[nid]] = k + 1
        pos[nid] = (rank[nid], k) if rankdir == "LR" else (k, rank[nid])
    return pos


def to_svg(net_param, rankdir="LR", display_lrm=False):
    nodes, edges = build_graph(net_param, display_lrm)
    pos = layout(nodes, edges, rankdir)
    cw, ch, bw, bh = 190, 90, 160, 60
    width = (max(x for x, _ in pos.values()) + 1) * cw + 20
    height = (max(y for _, y in pos.values()) + 1) * ch + 20
    centre = {n: (10 + x * cw + cw / 2, 10 + y * ch + ch / 2) for n, (x, y) in pos.items()}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="8" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>']
    for a, b in edges:
        (x1, y1), (x2, y2) = centre[a], centre[b]
        out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="black" '
                   'marker-end="url(#a)"/>')
    for nid, (label, kind, colour) in nodes.items():
        x, y = centre[nid]
        if kind == "layer":
            out.append(f'<rect x="{x - bw / 2}" y="{y - bh / 2}" width="{bw}" height="{bh}" '
                       f'fill="{colour}" stroke="black"/>')
        else:
            r = bh / 2
            pts = " ".join(f"{x + dx * bw / 2:.1f},{y + dy * r:.1f}" for dx, dy in
                           [(-.6, -1), (.6, -1), (1, -.4), (1, .4), (.6, 1), (-.6, 1), (-1, .4),
                            (-1, -.4)])
            out.append(f'<polygon points="{pts}" fill="{colour}" stroke="black"/>')
        lines = label.split("\n")
        for k, text in enumerate(lines):
            dy = (k - (len(lines) - 1) / 2) * 13 + 4
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            out.append(f'<text x="{x}" y="{y + dy}" text-anchor="middle">{text}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(net_param, path, rankdir="LR", display_lrm=False):
    """Render with matplotlib (the optional 'plot' extra) using the same layout as to_svg."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch, RegularPolygon
    except ImportError:
        raise CaffeliteError("PNG output needs Graphviz's `dot` or matplotlib: "
                             "apt install graphviz, or pip install 'caffelite[plot]'") from None
    nodes, edges = build_graph(net_param, display_lrm)
    pos = layout(nodes, edges, rankdir)
    cols = max(x for x, _ in pos.values()) + 1
    rows = max(y for _, y in pos.values()) + 1
    fig, ax = plt.subplots(figsize=(max(3, 1.6 * cols), max(2, 1.6 * rows)))
    for a, b in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        ax.annotate("", xy=(x2, -y2), xytext=(x1, -y1),
                    arrowprops=dict(arrowstyle="->", shrinkA=18, shrinkB=18))
    for nid, (label, kind, colour) in nodes.items():
        x, y = pos[nid]
        if kind == "layer":
            patch = FancyBboxPatch((x - .42, -y - .22), .84, .44, boxstyle="square", fc=colour)
        else:
            patch = RegularPolygon((x, -y), 8, radius=.3, fc=colour)
        ax.add_patch(patch)
        ax.text(x, -y, label, ha="center", va="center", fontsize=7)
    ax.set_xlim(-.6, cols - .4)
    ax.set_ylim(-rows + .4, .6)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def draw_net_to_file(net_param, path, rankdir="LR", display_lrm=False):
    """Write .dot, .svg or .png (by extension). Returns the renderer used ('dot' or 'builtin')."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    dot_text = to_dot(net_param, rankdir, display_lrm)
    if ext in ("dot", "gv"):
        path.write_text(dot_text)
        return "dot-text"
    if ext not in ("svg", "png"):
        raise CaffeliteError(f"{path}: unknown drawing format '.{ext}'; use .dot, .svg or .png")
    if shutil.which("dot"):
        subprocess.run(["dot", f"-T{ext}", "-o", str(path)], input=dot_text.encode(),
                       check=True)
        return "dot"
    if ext == "svg":
        path.write_text(to_svg(net_param, rankdir, display_lrm))
    else:
        to_png(net_param, path, rankdir, display_lrm)
    return "builtin"
