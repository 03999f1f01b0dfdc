"""A one-page training report, one self-contained file (HTML or Markdown): the curves, the
final and best test metrics, the solver settings, wall time and speed, the net drawing.

A run is a metrics file (or a directory holding one), a training log in Caffe's format, or
the solver config itself (its metrics file is `<snapshot_prefix>.metrics.jsonl`, where
training wrote it). Settings and the net come from the solver config when one is known, or
from the parameter dumps at the top of a Caffe log.
"""
import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from ..errors import CaffeliteError
from ..proto import caffelite_pb2 as pb
from .metrics import METRICS_SUFFIX, read_run
from .plot import figure, output_names, run_name

CONFIG_SUFFIXES = (".prototxt", ".pt", ".yaml", ".yml", ".json")
BIG_FIELDS = {"net_param", "train_net_param", "test_net_param"}


@dataclass
class Run:
    name: str
    records: list
    source: str
    solver: object = None     # SolverParameter or None
    net: object = None        # NetParameter or None


def load(run, solver=None, net=None):
    """A Run from a metrics file/directory/Caffe log or a solver config; `solver` and `net`
    (config paths) supply or override the settings and the drawing."""
    from ..formats.config import read_net_param, read_solver_param

    path = Path(run)
    solver_param = net_param = None
    if path.suffix.lower() in CONFIG_SUFFIXES and path.is_file():
        solver_param = read_solver_param(path)
        metrics = Path((solver_param.snapshot_prefix or "caffelite") + METRICS_SUFFIX)
        if not metrics.exists():
            raise CaffeliteError(f"{path}: no metrics file {metrics} (training writes it beside "
                                 "the snapshots; run the report from the directory you trained "
                                 "in, or pass the metrics file)")
        records, source = read_run(metrics), str(metrics)
    else:
        records, source = read_run(path), str(path)
        if path.is_file() and not path.name.endswith(".jsonl"):
            solver_param, net_param = caffe_log_params(path)
    if solver:
        solver_param = read_solver_param(solver)
    if net:
        net_param = read_net_param(net)
    elif solver_param is not None and net_param is None:
        net_param = solver_net(solver_param, solver or (path if solver_param else None))
    return Run(run_name(path), records, source, solver_param, net_param)


def solver_net(param, solver_file):
    """The train net a SolverParameter names (inline or by path), or None if unreadable."""
    from ..formats.config import read_net_param, resolve_path

    for name in ("net_param", "train_net_param"):
        if param.HasField(name):
            return getattr(param, name)
    for name in ("net", "train_net"):
        if param.HasField(name):
            try:
                return read_net_param(resolve_path(getattr(param, name), solver_file))
            except (CaffeliteError, OSError):
                return None
    return None


_GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\] ")


def caffe_log_params(path):
    """(SolverParameter, train NetParameter) from the dumps Caffe logs at start-up
    ('Initializing solver from parameters:', 'Initializing net from parameters:'), or None."""
    blocks, current = {}, None
    with open(path, errors="replace") as f:
        for line in f:
            if _GLOG.match(line):
                current = None
                for key in ("solver", "net"):
                    if f"Initializing {key} from parameters:" in line and key not in blocks:
                        current = blocks.setdefault(key, [line.split("parameters:", 1)[1]])
            elif current is not None:
                current.append(line)
    out = []
    for key, cls in (("solver", pb.SolverParameter), ("net", pb.NetParameter)):
        try:
            out.append(text_format.Parse("".join(blocks[key]), cls()) if key in blocks else None)
        except text_format.ParseError:
            out.append(None)
    return tuple(out)


# -- the numbers ------------------------------------------------------------------------------
def speed(records):
    """{first_iter, last_iter, wall_seconds, iters_per_second, final_loss}."""
    train = [r for r in records if r.get("phase") == "train"]
    out = {"first_iter": None, "last_iter": None, "iters_per_second": None, "final_loss": None,
           "wall_seconds": max((r.get("seconds", 0.0) for r in records), default=0.0)}
    if train:
        first, last = train[0], train[-1]
        out.update(first_iter=first["iter"], last_iter=last["iter"],
                   final_loss=last.get("smoothed_loss", last.get("loss")))
        span = last.get("seconds", 0.0) - first.get("seconds", 0.0)
        if span > 0 and last["iter"] > first["iter"]:
            out["iters_per_second"] = (last["iter"] - first["iter"]) / span
    return out


def test_metrics(records):
    """Rows (net, output, final, final iter, best, best iter): best is the lowest loss, the
    highest of anything else."""
    rows = []
    tests = [r for r in records if r.get("phase") == "test"]
    for net in sorted({r.get("net", 0) for r in tests}):
        mine = [r for r in tests if r.get("net", 0) == net]
        for name in output_names(mine, "test"):
            points = [(r["iter"], r[name]) for r in mine if name in r]
            pick = min if "loss" in name else max
            best = pick(points, key=lambda p: p[1])
            rows.append((net, name, points[-1][1], points[-1][0], best[1], best[0]))
    return rows


def solver_settings(param):
    """[(field, value)] of the fields set in the solver config (inline nets left out)."""
    rows = []
    for field, value in param.ListFields():
        if field.name in BIG_FIELDS:
            rows.append((field.name, "(inline net)"))
            continue
        if _repeated(field):
            value = ", ".join(_value(field, v) for v in value)
        else:
            value = _value(field, value)
        rows.append((field.name, value))
    return rows


def _repeated(field):
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; `label` before
    return is_repeated if is_repeated is not None else field.label == field.LABEL_REPEATED


def _value(field, value):
    if field.message_type is not None:
        return text_format.MessageToString(value, as_one_line=True)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return f"{value:g}" if isinstance(value, float) else str(value)


def clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# -- the pictures -----------------------------------------------------------------------------
def curves_png(run, smooth=5):
    """The plot of tools/plot.py for this run, as PNG bytes."""
    from .plot import _matplotlib

    plt = _matplotlib()
    fig = figure([(run.name, run.records)], smooth=smooth)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def net_svg(run):
    """The built-in drawing of the run's net (top to bottom, to fit a page), or None."""
    if run.net is None:
        return None
    from .draw import to_svg

    return to_svg(run.net, "TB")


def data_uri(data, mime):
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def write_report(run, output, smooth=5):
    """Write the report of a loaded Run to output (.html/.htm or .md), atomically."""
    from ..formats.binary import atomic_write
    from .report_render import render_html, render_markdown

    suffix = Path(output).suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise CaffeliteError(f"{output}: unknown report format '{suffix}'; use .html or .md")
    parts = {"curves": curves_png(run, smooth), "net": net_svg(run)}
    render = render_markdown if suffix == ".md" else render_html
    atomic_write(output, render(run, parts).encode("utf-8"))


def escape(text):
    return html.escape(str(text), quote=True)
