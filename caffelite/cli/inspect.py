"""`caffelite inspect FILE`: what a config, .caffemodel, .solverstate, .binaryproto or .h5 holds."""
import os

import click

from ..errors import ConfigError
from ..tools.inspect import inspect_file


@click.command(name="inspect")
@click.argument("file", type=click.Path())
def command(file):
    """Recognise FILE by its content (net or solver config in any syntax, .caffemodel,
    .solverstate, .binaryproto, HDF5 snapshot) and summarise it: layers, blob shapes,
    parameter counts, iteration, history, and what to do with it."""
    if os.path.isdir(file):
        raise ConfigError(f"{file} is a directory; give one file (a net or solver config, "
                          ".caffemodel, .solverstate, .binaryproto or .h5)")
    click.echo(inspect_file(file).text())
