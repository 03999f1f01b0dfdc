"""The report's page, as HTML (one file, pictures inline) or Markdown (pictures as data
URIs). The numbers come from tools/report.py."""
import base64

from .report import clock, data_uri, escape, solver_settings, speed, test_metrics

STYLE = """
body { font-family: DejaVu Sans, Verdana, sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.net { overflow: auto; max-height: 60em; border: 1px solid #ddd; }
img.curves { max-width: 100%; }
"""


def _number(value, digits=4):
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def summary_rows(run):
    s = speed(run.records)
    rows = [("run", run.source),
            ("iterations", f"{_number(s['first_iter'])} to {_number(s['last_iter'])}"),
            ("wall time", f"{clock(s['wall_seconds'])} ({s['wall_seconds']:.1f} s)"),
            ("iterations/s", _number(s["iters_per_second"], 3)),
            ("final train loss", _number(s["final_loss"]))]
    if run.solver is not None:
        rows.insert(1, ("solver", run.solver.type or "SGD"))
    return rows


def metric_rows(run):
    return [(f"#{net}", name, _number(final), str(final_iter), _number(best), str(best_iter))
            for net, name, final, final_iter, best, best_iter in test_metrics(run.records)]


METRIC_HEAD = ("test net", "output", "final", "at iteration", "best", "at iteration")


def _html_table(rows, head=None, numeric=()):
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = [f'<td class="num">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
                 for i, c in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_html(run, parts):
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{escape(run.name)}: training report</title>",
           f"<style>{STYLE}</style></head><body>",
           f"<h1>{escape(run.name)}: training report</h1>",
           '<h2 id="summary">Summary</h2>', _html_table(summary_rows(run)),
           '<h2 id="test-metrics">Test metrics</h2>']
    rows = metric_rows(run)
    out.append(_html_table(rows, METRIC_HEAD, numeric=(2, 3, 4, 5)) if rows else
               "<p>No test results recorded.</p>")
    out += ['<h2 id="curves">Curves</h2>',
            f'<img class="curves" alt="training curves of {escape(run.name)}" '
            f'src="{data_uri(parts["curves"], "image/png")}">',
            '<h2 id="solver">Solver settings</h2>']
    out.append(_html_table(solver_settings(run.solver)) if run.solver is not None else
               "<p>Not recorded: pass the solver config (--solver CONFIG).</p>")
    out.append('<h2 id="net">Net</h2>')
    if parts["net"]:
        name = run.net.name or "net"
        out.append(f'<p>{escape(name)}: {len(run.net.layer)} layers.</p>')
        out.append(f'<div class="net">{parts["net"]}</div>')
    else:
        out.append("<p>Not recorded: pass the solver config (--solver CONFIG) or the net "
                   "(--net NET).</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_table(rows, head):
    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in head) + " |",
           "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def render_markdown(run, parts):
    out = [f"# {run.name}: training report", "", "## Summary", "",
           _md_table(summary_rows(run), ("", "")), "", "## Test metrics", ""]
    rows = metric_rows(run)
    out.append(_md_table(rows, METRIC_HEAD) if rows else "No test results recorded.")
    out += ["", "## Curves", "",
            f"![training curves of {run.name}]({data_uri(parts['curves'], 'image/png')})", "",
            "## Solver settings", ""]
    out.append(_md_table(solver_settings(run.solver), ("field", "value"))
               if run.solver is not None else "Not recorded: pass --solver CONFIG.")
    out += ["", "## Net", ""]
    if parts["net"]:
        svg = base64.b64encode(parts["net"].encode("utf-8")).decode("ascii")
        out.append(f"![the net {run.net.name or ''}](data:image/svg+xml;base64,{svg})")
    else:
        out.append("Not recorded: pass --solver CONFIG or --net NET.")
    return "\n".join(out) + "\n"
