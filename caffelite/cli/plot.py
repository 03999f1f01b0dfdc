"""`caffelite plot RUN [RUN ...] -o curves.png`: training curves of one or more runs (metrics
files or Caffe logs) on the same axes."""
import click

from ..tools.metrics import read_run
from ..tools.plot import check_format, plot_runs, unique_names


@click.command(name="plot")
@click.argument("runs", nargs=-1, required=True, type=click.Path(), metavar="RUN [RUN ...]")
@click.option("-o", "--output", default="curves.png", show_default=True,
              help="Image to write; the extension picks the format (.png, .svg, .pdf).")
@click.option("--x", "x", type=click.Choice(["iter", "seconds"]), default="iter",
              show_default=True, help="Horizontal axis.")
@click.option("--linear", is_flag=True, help="Loss on a linear scale (default: log scale).")
@click.option("--smooth", type=click.IntRange(min=0), default=0, metavar="K",
              help="Draw an exponential moving average over K points on the raw train loss, "
                   "which stays faint behind it.")
@click.option("--from", "start", type=int, default=None, metavar="ITER",
              help="Only iterations from ITER on.")
@click.option("--to", "stop", type=int, default=None, metavar="ITER",
              help="Only iterations up to ITER.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="A test output to plot (repeatable; default: every test output that is "
                   "not a loss).")
@click.option("--title", default=None, help="Title above the plot.")
def command(runs, output, x, linear, smooth, start, stop, metrics, title):
    """Plot train loss, test metrics and learning rate of each RUN (a *.metrics.jsonl file, a
    directory holding one, or a training log in Caffe's format), one colour per run, legend
    by run name. A run still training is read as far as it has got."""
    check_format(output)
    loaded = [(name, read_run(run)) for name, run in zip(unique_names(runs), runs)]
    plot_runs(loaded, output, x=x, log_loss=not linear, smooth=smooth, start=start, stop=stop,
              metrics=metrics, title=title)
    counts = ", ".join(f"{name} {len(records)}" for name, records in loaded)
    click.echo(f"wrote {output} ({len(loaded)} run{'s' * (len(loaded) > 1)}; records: {counts})")
