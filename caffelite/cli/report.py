"""`caffelite report RUN -o report.html`: a one-page report of a training run."""
import click

from ..tools.report import load, write_report


@click.command(name="report")
@click.argument("run", type=click.Path())
@click.option("-o", "--output", default="report.html", show_default=True,
              help="The report to write: .html (or .htm) or .md, one self-contained file.")
@click.option("--solver", type=click.Path(dir_okay=False), default=None, metavar="CONFIG",
              help="The solver config of the run (its settings and net go in the report).")
@click.option("--net", type=click.Path(dir_okay=False), default=None, metavar="NET",
              help="The net to draw (default: the solver config's train net).")
@click.option("--smooth", type=click.IntRange(min=0), default=5, show_default=True,
              metavar="K", help="Smoothing of the train loss curve (points of the EMA).")
def command(run, output, solver, net, smooth):
    """Write a report of RUN (a *.metrics.jsonl file, a directory holding one, a Caffe log, or
    the solver config trained from this directory): curves, final and best test metrics,
    solver settings, wall time and iterations/s, and the net drawing."""
    loaded = load(run, solver=solver, net=net)
    write_report(loaded, output, smooth=smooth)
    click.echo(f"wrote {output} ({len(loaded.records)} records)")
