"""The built-in net drawing, checked geometrically on the SVG it writes: for every example net
(configs/, BVLC's examples in ../shared, GoogLeNet- and ResNet-50-sized nets), no edge segment
meets a box it does not start or end at, boxes do not overlap, every edge starts on its
tail's box and ends on its head's box."""
import itertools
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import EXAMPLES, ROOT
from fixtures.big_nets import googlenet, resnet50

from caffelite.formats.config import read_net_param, read_solver_param
from caffelite.tools.draw import build_graph, layout, net_layout, to_svg
from caffelite.tools.draw_layout import layered_layout

SVG = "{http://www.w3.org/2000/svg}"


def example_nets():
    """(name, path) of every net in configs/ (net files, and the inline nets of the YAML
    experiments) and in ../shared's BVLC examples."""
    files = sorted((ROOT / "configs").glob("*/*.prototxt"))
    files += sorted((ROOT / "configs").glob("*/*.yaml"))
    files += sorted(EXAMPLES.glob("*/*.prototxt")) if EXAMPLES.exists() else []
    return [(str(path.relative_to(path.parents[1])), path) for path in files
            if "solver" not in path.name]


def load(path):
    """The net of a net file, or the inline net of a solver config."""
    if path.suffix == ".yaml":
        solver = read_solver_param(path)
        return solver.net_param if solver.HasField("net_param") else read_net_param(path)
    return read_net_param(path)


def svg_geometry(text):
    """({node id: (x0, y0, x1, y1)}, [(tail, head, [(x, y), ...])]) from our SVG."""
    root = ET.fromstring(text)
    boxes = {}
    for group in root.iter(f"{SVG}g"):
        if "node" not in group.get("class", "").split():
            continue
        shape = group.find(f"{SVG}rect")
        if shape is not None:
            x, y = float(shape.get("x")), float(shape.get("y"))
            boxes[group.get("id")] = (x, y, x + float(shape.get("width")),
                                      y + float(shape.get("height")))
        else:
            pts = [tuple(map(float, p.split(","))) for p in
                   group.find(f"{SVG}polygon").get("points").split()]
            xs, ys = zip(*pts)
            boxes[group.get("id")] = (min(xs), min(ys), max(xs), max(ys))
    edges = []
    for line in root.iter(f"{SVG}polyline"):
        points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        edges.append((line.get("data-tail"), line.get("data-head"), points))
    return boxes, edges


def hits(p, q, box, grow=0.0):
    """Whether segment pq meets the rectangle box grown by `grow` (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = box[0] - grow, box[1] - grow, box[2] + grow, box[3] + grow
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for step, dist in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if step == 0:
            if dist < 0:
                return False
            continue
        t = dist / step
        if step < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def on_border(point, box, tol=0.6):
    x, y = point
    inside = box[0] - tol <= x <= box[2] + tol and box[1] - tol <= y <= box[3] + tol
    near = min(abs(x - box[0]), abs(x - box[2]), abs(y - box[1]), abs(y - box[3])) <= tol
    return inside and near


def check_drawing(text):
    """Asserts the geometric promises of the drawing; returns (nodes, edges, crossings)."""
    boxes, edges = svg_geometry(text)
    assert edges and boxes
    for (a, ra), (b, rb) in itertools.combinations(boxes.items(), 2):
        assert not _overlap(ra, rb), (a, b)
    for tail, head, points in edges:
        assert len(points) >= 2
        assert on_border(points[0], boxes[tail]), (tail, head, points[0], boxes[tail])
        assert on_border(points[-1], boxes[head]), (tail, head, points[-1], boxes[head])
        segments = list(zip(points, points[1:]))
        for k, (p, q) in enumerate(segments):
            assert p[0] == q[0] or p[1] == q[1], "edges are routed orthogonally"
            for nid, box in boxes.items():
                if nid == tail and k == 0 or nid == head and k == len(segments) - 1:
                    continue  # the segment leaving the tail, the one entering the head
                shrink = (box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1)
                if nid in (tail, head):  # may touch its own box's border, never go inside
                    assert not hits(p, q, shrink), (tail, head, nid, p, q)
                else:
                    assert not hits(p, q, box, grow=2.0), (tail, head, nid, p, q, box)
    return len(boxes), len(edges), count_crossings(edges), count_overlaps(edges)


def _overlap(ra, rb):
    return ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]


def count_overlaps(edges):
    """Segments of edges that share neither tail nor head lying along each other (which
    would make two edges look like one)."""
    segments = [(tail, head, p, q) for tail, head, points in edges
                for p, q in zip(points, points[1:])]
    count = 0
    for (t1, h1, p1, q1), (t2, h2, p2, q2) in itertools.combinations(segments, 2):
        if t1 == t2 or h1 == h2:
            continue
        for axis in (0, 1):
            other = 1 - axis
            if p1[axis] == q1[axis] == p2[axis] == q2[axis]:  # on one line
                lo1, hi1 = sorted((p1[other], q1[other]))
                lo2, hi2 = sorted((p2[other], q2[other]))
                if min(hi1, hi2) - max(lo1, lo2) > 1:
                    count += 1
    return count


def count_crossings(edges):
    """Proper crossings between orthogonal segments of different edges (shared ends aside)."""
    horizontal, vertical = [], []
    for k, (tail, _, points) in enumerate(edges):
        for p, q in zip(points, points[1:]):
            if p[1] == q[1] and p[0] != q[0]:
                horizontal.append((k, tail, p[1], min(p[0], q[0]), max(p[0], q[0])))
            elif p[0] == q[0]:
                vertical.append((k, tail, p[0], min(p[1], q[1]), max(p[1], q[1])))
    count = 0
    for k1, t1, y, xa, xb in horizontal:
        for k2, t2, x, ya, yb in vertical:
            if k1 != k2 and t1 != t2 and xa < x < xb and ya < y < yb:
                count += 1
    return count


NETS = example_nets()


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("name,path", NETS, ids=[n for n, _ in NETS])
def test_example_nets_edges_never_cross_a_box(name, path, rankdir):
    _, _, _, overlaps = check_drawing(to_svg(load(path), rankdir))
    assert overlaps == 0, "two unrelated edges drawn along each other"


def test_the_example_nets_are_all_there():
    names = [n for n, _ in NETS]
    assert "lenet/lenet_train_test.prototxt" in names and "lenet/lenet.yaml" in names
    if EXAMPLES.exists():
        assert "cifar10/cifar10_full_train_test.prototxt" in names
        assert len(names) >= 20, names


@pytest.mark.parametrize("rankdir", ["LR", "TB", "BT", "RL"])
@pytest.mark.parametrize("build", [googlenet, resnet50])
def test_googlenet_and_resnet50_sized_nets(build, rankdir):
    net = build()
    nodes, edges, crossings, overlaps = check_drawing(to_svg(net, rankdir))
    assert overlaps == 0
    assert nodes > 140 and edges > 160
    # Crossings stay few: GoogLeNet's come from its label blob feeding six loss/accuracy layers
    assert crossings <= (0 if build is resnet50 else 40), crossings


def test_lenet_few_crossings_and_long_edges_straight():
    net = load(ROOT / "configs" / "lenet" / "lenet_train_test.prototxt")
    _, edges, crossings, _ = check_drawing(to_svg(net, "TB"))
    # Two unavoidable ones in the order (both Data layers feed data and label; ip2 and label
    # both feed accuracy and loss), each drawn as at most a few segment crossings
    assert net_layout(net, "TB")[2].crossings == 2
    text = to_svg(net, "TB")
    boxes, routed = svg_geometry(text)
    names = {g.get("id"): g.get("data-name") for g in ET.fromstring(text).iter(f"{SVG}g")}
    label_edges = [pts for t, h, pts in routed if names[t] == "label"]
    assert len(label_edges) == 2  # label -> accuracy, label -> loss
    for points in label_edges:  # a long edge: one straight run down, a turn at most each end
        assert len(points) <= 6, points
    assert crossings <= 6


def test_layout_keeps_rank_order_and_gaps():
    """Rank along the flow, the order and the gaps across it, on a made-up diamond."""
    sizes = {"a": (80, 30), "b": (60, 30), "c": (120, 30), "d": (80, 30), "e": (40, 20)}
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d"), ("d", "e")]
    placed = layered_layout(sizes, edges, "TB")
    y = {n: box[1] for n, box in placed.boxes.items()}
    assert y["a"] < y["b"] == y["c"] < y["d"] < y["e"]
    b, c = placed.boxes["b"], placed.boxes["c"]
    assert abs(b[0] - c[0]) >= (b[2] + c[2]) / 2 + 20
    assert [(t, h) for t, h, _ in placed.routes] == edges
    assert placed.crossings == 0


def test_cycles_and_in_place_layers_without_producer_still_lay_out():
    text = """
    name: "loop"
    input: "data"
    input_shape { dim: 1 dim: 3 }
    layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }
    """
    from google.protobuf import text_format

    from caffelite.proto import caffelite_pb2 as pb

    net = text_format.Parse(text, pb.NetParameter())
    nodes, edges = build_graph(net)
    assert layout(nodes, edges).keys() == nodes.keys()
    boxes, routed = svg_geometry(to_svg(net, "LR"))
    assert len(routed) == len(edges) and len(boxes) == len(nodes)


def test_rankdirs_mirror_each_other():
    net = googlenet()
    _, _, tb = net_layout(net, "TB")
    _, _, bt = net_layout(net, "BT")
    _, _, lr = net_layout(net, "LR")
    for nid, (x, y, _, _) in tb.boxes.items():
        assert bt.boxes[nid][0] == pytest.approx(x)
        assert bt.boxes[nid][1] == pytest.approx(tb.height - y)
    assert lr.width > lr.height and tb.height > tb.width


def test_svg_names_nodes_and_edges():
    text = to_svg(load(ROOT / "configs" / "lenet" / "lenet_train_test.prototxt"))
    root = ET.fromstring(text)
    names = [g.get("data-name") for g in root.iter(f"{SVG}g")]
    assert "conv1" in names and "label" in names
    assert re.search(r'viewBox="0 0 [\d.]+ [\d.]+"', text)


def test_cli_builtin_png_of_googlenet_at_a_readable_scale(tmp_path):
    pytest.importorskip("matplotlib", reason="PNG without Graphviz needs matplotlib")
    import shutil

    from click.testing import CliRunner
    from PIL import Image

    from caffelite.cli import main
    from caffelite.formats.config import write_net_param

    net_file = tmp_path / "googlenet.prototxt"
    write_net_param(googlenet(), net_file)
    out = tmp_path / "googlenet.png"
    result = CliRunner().invoke(main, ["draw", str(net_file), "-o", str(out), "--rankdir",
                                       "TB", "--engine", "builtin"])
    assert result.exit_code == 0 and "built-in layout" in result.output, result.output
    _, _, placed = net_layout(googlenet(), "TB")
    with Image.open(out) as image:  # 1.25 pixels per SVG unit: 11 px text becomes ~14 px
        assert image.size[0] == pytest.approx(placed.width * 1.25, abs=2)
        assert image.size[1] == pytest.approx(placed.height * 1.25, abs=2)
    if not shutil.which("dot"):
        result = CliRunner().invoke(main, ["draw", str(net_file), "-o", str(out), "--engine",
                                           "dot"])
        assert result.exit_code == 2 and result.output.count("\n") == 1
        assert "Graphviz's `dot` is not on PATH" in result.output


def test_the_geometric_checks_catch_what_they_look_for():
    """The checker itself, on hand-made cases: a segment through a box, a crossing, two
    unrelated edges along each other, and a drawing whose edge runs through a box."""
    box = (10, 10, 30, 20)
    assert hits((0, 15), (40, 15), box) and hits((20, 0), (20, 12), box)
    assert not hits((0, 25), (40, 25), box) and not hits((0, 0), (5, 30), box)
    assert hits((0, 21), (40, 21), box, grow=2.0)
    crossing = [("a", "b", [(0, 5), (10, 5)]), ("c", "d", [(5, 0), (5, 10)])]
    assert count_crossings(crossing) == 1
    along = [("a", "b", [(0, 5), (10, 5)]), ("c", "d", [(4, 5), (20, 5)])]
    assert count_overlaps(along) == 1
    assert count_overlaps([("a", "b", [(0, 5), (10, 5)]), ("a", "d", [(4, 5), (20, 5)])]) == 0
    bad = ('<svg xmlns="http://www.w3.org/2000/svg">'
           '<g class="node layer" id="n0"><rect x="0" y="0" width="20" height="10"/></g>'
           '<g class="node layer" id="n1"><rect x="0" y="40" width="20" height="10"/></g>'
           '<g class="node layer" id="n2"><rect x="0" y="80" width="20" height="10"/></g>'
           '<polyline class="edge" data-tail="n0" data-head="n2" points="10,10 10,80"/></svg>')
    with pytest.raises(AssertionError):
        check_drawing(bad)


def test_crossing_reduction_untangles_a_scrambled_order():
    from caffelite.tools.draw_layout import _acyclic, _Layered, _ranks

    # Three parallel chains a_i -> b_i -> c_i with the middle rank reversed: 3 crossings
    # above it and 3 below; the sweeps must find the order without any.
    nodes = [f"{k}{i}" for k in "abc" for i in range(3)]
    edges = [(f"a{i}", f"b{i}") for i in range(3)] + [(f"b{i}", f"c{i}") for i in range(3)]
    sizes = dict.fromkeys(nodes, 10)
    oriented = _acyclic(nodes, edges)
    graph = _Layered(_ranks(nodes, oriented), oriented, sizes, sizes)
    graph.layers[1].reverse()
    assert graph.crossings() == 6
    assert graph.order() == 0
    # K(2,2) cannot be drawn without one crossing
    k22 = [("s", "x"), ("s", "y"), ("t", "x"), ("t", "y"), ("x", "z")]
    placed = layered_layout(dict.fromkeys("stxyz", (20, 10)), k22)
    assert placed.crossings == 1


def test_empty_and_edgeless_nets_draw():
    from caffelite.proto import caffelite_pb2 as pb

    net = pb.NetParameter(name="empty")
    assert ET.fromstring(to_svg(net)).tag == f"{SVG}svg"
    net.layer.add(name="silence", type="Silence")
    boxes, edges = svg_geometry(to_svg(net, "TB"))
    assert len(boxes) == 1 and edges == []
