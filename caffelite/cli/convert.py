"""caffelite convert IN OUT: a net or solver config between .prototxt, .yaml/.yml and .json."""
import click

from ..formats import config
from ..formats.upgrade import net_needs_upgrade, upgrade_net_param, upgrade_solver_param


@click.command(name="convert")
@click.argument("src", metavar="IN")
@click.argument("dst", metavar="OUT")
@click.option("--kind", type=click.Choice(["auto", "net", "solver"]), default="auto",
              show_default=True, help="What IN holds; auto looks for solver fields (base_lr...).")
@click.option("--no-upgrade", is_flag=True,
              help="Keep legacy V0/V1 layers, input fields and solver_type as written.")
def command(src, dst, kind, no_upgrade):
    """Convert the net or solver config IN to OUT; formats follow the extensions (.prototxt,
    .yaml/.yml, .json). Legacy Caffe configs are upgraded on the way, as Caffe's
    upgrade_net_proto_text and upgrade_solver_proto_text do."""
    text = config.read_text(src)
    fmt = config.config_format(src)
    if kind == "auto":
        kind = config.config_kind(text, fmt)
    parse = config.parse_solver_text if kind == "solver" else config.parse_net_text
    msg = parse(text, filename=src, fmt=fmt, upgrade=False)
    upgraded = not no_upgrade and _needs_upgrade(msg, kind)
    if upgraded:
        (upgrade_solver_param if kind == "solver" else upgrade_net_param)(msg, src)
    config.write_message(msg, dst)
    note = " (upgraded from the legacy form)" if upgraded else ""
    click.echo(f"wrote {kind} {dst} as {config.config_format(dst)}{note}")


def _needs_upgrade(msg, kind):
    if kind == "net":
        return net_needs_upgrade(msg)
    nets = [msg.net_param, msg.train_net_param, *msg.test_net_param]
    return msg.HasField("solver_type") or any(net_needs_upgrade(net) for net in nets)
