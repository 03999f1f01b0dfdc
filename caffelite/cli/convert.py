"""caffelite convert IN OUT: a net or solver config between .prototxt, .yaml/.yml and .json,
weights between .caffemodel and .caffemodel.h5, or a solver state between .solverstate and
.solverstate.h5."""
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
@click.option("--model", metavar="NET",
              help="Weights only: the net config whose layers (order, shared params) to use.")
def command(src, dst, kind, no_upgrade, model):
    """Convert the net or solver config IN to OUT; formats follow the extensions (.prototxt,
    .yaml/.yml, .json). Legacy Caffe configs are upgraded on the way, as Caffe's
    upgrade_net_proto_text and upgrade_solver_proto_text do. Weights convert between
    .caffemodel and .caffemodel.h5, solver states between .solverstate and .solverstate.h5
    (Caffe's HDF5 layouts; needs h5py)."""
    from ..formats.hdf5 import convert_state, convert_weights, is_state_path, is_weights_path

    if is_state_path(src) or is_state_path(dst):
        if not (is_state_path(src) and is_state_path(dst)):
            raise click.UsageError("a solver state converts to a solver state: give "
                                   ".solverstate or .solverstate.h5 for both IN and OUT")
        click.echo(convert_state(src, dst))
        return
    if is_weights_path(src) or is_weights_path(dst):
        if not (is_weights_path(src) and is_weights_path(dst)):
            raise click.UsageError("weights convert to weights: give .caffemodel or "
                                   ".caffemodel.h5 for both IN and OUT")
        click.echo(convert_weights(src, dst, model))
        return
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
