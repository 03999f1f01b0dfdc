"""caffelite layers: the registered layer types, each with its one-line description."""
import sys

import click

from .. import layer_type_list
from ..registry import LAYERS


def describe(type_name):
    """The first line of the layer module's docstring (its formula), else of the class's."""
    cls = LAYERS.get(type_name)
    doc = sys.modules[cls.__module__].__doc__ or cls.__doc__ or ""
    line = doc.strip().splitlines()[0] if doc.strip() else ""
    return line[len(type_name) + 1:].strip() if line.startswith(type_name + ":") else line


@click.command(name="layers")
def command():
    """List every registered layer type with a one-line description."""
    names = layer_type_list()
    width = max(map(len, names))
    for name in names:
        click.echo(f"{name:<{width}}  {describe(name)}")
