"""caffelite plot RUN_OR_LOG -o curves.png: training curves from a metrics file or a Caffe log."""
import click

from ..tools.metrics import read_run
from ..tools.plot import plot_curves


@click.command(name="plot")
@click.argument("run", type=click.Path())
@click.option("-o", "--output", default="curves.png", show_default=True,
              help="Image to write (.png, .svg, .pdf).")
@click.option("--x", "x", type=click.Choice(["iter", "seconds"]), default="iter",
              show_default=True, help="Horizontal axis.")
def command(run, output, x):
    """Plot train loss, test loss/accuracy and lr of RUN (a *.metrics.jsonl file, a directory
    holding one, or a training log in Caffe's format)."""
    records = read_run(run)
    plot_curves(records, output, x=x, title=str(run))
    click.echo(f"wrote {output} ({len(records)} records)")
