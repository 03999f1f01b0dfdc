"""A progress bar on stderr for the data tools (click's; a count line when the total is
unknown)."""
import contextlib
import sys

import click


@contextlib.contextmanager
def progress_bar(total, label):
    """Yields update(n): advance the bar by n items."""
    if total:
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    done = [0]

    def update(n):
        done[0] += n
        if done[0] % 1000 == 0 and sys.stderr.isatty():
            click.echo(f"\r{label}: {done[0]}", err=True, nl=False)

    yield update
    if sys.stderr.isatty():
        click.echo(f"\r{label}: {done[0]} done", err=True)
