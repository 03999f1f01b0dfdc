"""`caffelite compute-image-mean DB [OUT.binaryproto]`: Caffe's compute_image_mean."""
import click

from ..data.db import BACKENDS
from ..tools.progress_bar import progress_bar


@click.command(name="compute-image-mean")
@click.argument("db_path", metavar="DB")
@click.argument("out", metavar="[OUT.binaryproto]", required=False)
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="The database kind (default: found from its files).")
def command(db_path, out, backend):
    """The mean image of the Datums in DB, written to OUT as a BlobProto (1×C×H×W, for
    transform_param.mean_file); the mean of each channel is printed. Without OUT nothing is
    written."""
    from ..data.db import count_records
    from ..data.tools import compute_image_mean, mean_blob_bytes
    from ..formats.binary import atomic_write

    count = count_records(db_path, backend)  # checks the database before the bar
    with progress_bar(count, "Computing the mean") as update:
        mean, n = compute_image_mean(db_path, backend, progress=update)
    if out:
        atomic_write(out, mean_blob_bytes(mean))
        click.echo(f"wrote {out}: the mean of {n} images, {'×'.join(map(str, mean.shape))}")
    else:
        click.echo(f"the mean of {n} images, {'×'.join(map(str, mean.shape))}")
    for c, value in enumerate(mean.reshape(len(mean), -1).mean(axis=1)):
        click.echo(f"mean_value channel [{c}]: {value:g}")
