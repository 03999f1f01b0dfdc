"""The `caffelite` command: a click group whose subcommands live one per module here.

Each module `caffelite/cli/<name>.py` defines `command`, a click.Command. User mistakes
(CaffeliteError) print one line `caffelite: error: ...` and exit with status 2, no traceback.
"""
import importlib
import pkgutil
import sys

import click

from ..errors import CaffeliteError


def printable(message):
    """The message with control characters (a NUL or ESC from a damaged file's bytes) shown
    as escapes, so an error line can neither hide text nor drive the terminal."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in str(message))


class CaffeliteGroup(click.Group):
    """Finds subcommands by module name and turns CaffeliteError into one line + exit 2."""

    def list_commands(self, ctx):
        return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__)
                      if not m.name.startswith("_"))

    def get_command(self, ctx, name):
        if name not in self.list_commands(ctx):
            return None
        return importlib.import_module(f"{__name__}.{name.replace('-', '_')}").command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CaffeliteError as exc:
            click.echo(f"caffelite: error: {printable(exc)}", err=True)
            sys.exit(2)
        except FileNotFoundError as exc:
            click.echo(f"caffelite: error: {printable(exc.filename or exc)}: no such file",
                       err=True)
            sys.exit(2)


@click.group(cls=CaffeliteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="caffelite")
def main():
    """caffelite: Caffe's nets, layers and solvers in Python and NumPy."""


