"""Built-in net drawings of every example net (and GoogLeNet/ResNet-50-sized nets), with the
geometric checks of tests/test_draw_layout.py: nodes, edges, crossings left in the rank order
and drawn, overlapping edges, and the time to lay out and write the SVG.

    PYTHONPATH=. CAFFELITE_SHARED=../shared python scripts/draw_stats.py
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.big_nets import googlenet, resnet50  # noqa: E402
from test_draw_layout import NETS, check_drawing, load  # noqa: E402

from caffelite.tools.draw import net_layout, to_svg  # noqa: E402


def main():
    nets = [(name, load(path)) for name, path in NETS]
    nets += [("GoogLeNet (tests/fixtures/big_nets.py)", googlenet()),
             ("ResNet-50 (tests/fixtures/big_nets.py)", resnet50())]
    print(f"{'net':58s} dir nodes edges order drawn overlaps  seconds")
    for name, net in nets:
        for rankdir in ("LR", "TB"):
            start = time.perf_counter()
            svg = to_svg(net, rankdir)
            seconds = time.perf_counter() - start
            nodes, edges, drawn, overlaps = check_drawing(svg)
            order = net_layout(net, rankdir)[2].crossings
            print(f"{name:58s} {rankdir}  {nodes:5d} {edges:5d} {order:5d} {drawn:5d} "
                  f"{overlaps:8d} {seconds:8.2f}")


if __name__ == "__main__":
    main()
