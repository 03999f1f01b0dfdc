"""`caffelite convert-imageset ROOT/ LISTFILE DB`: Caffe's convert_imageset."""
import click

from ..data.db import BACKENDS
from ..tools.progress_bar import progress_bar


@click.command(name="convert-imageset")
@click.argument("root", metavar="ROOT/")
@click.argument("list_file", metavar="LISTFILE")
@click.argument("db_path", metavar="DB")
@click.option("--resize-height", type=click.IntRange(min=0), default=0, show_default=True,
              help="Resize every image to this height (with --resize-width; 0 keeps it).")
@click.option("--resize-width", type=click.IntRange(min=0), default=0, show_default=True,
              help="Resize every image to this width (with --resize-height; 0 keeps it).")
@click.option("--shuffle", is_flag=True, help="Shuffle the lines before writing them.")
@click.option("--seed", type=int, default=None,
              help="Seed of --shuffle (default: a fresh one each run, as Caffe).")
@click.option("--gray", is_flag=True, help="Read the images as greyscale (1 channel).")
@click.option("--encoded", is_flag=True,
              help="Store the encoded image files (as their extension says) instead of pixels.")
@click.option("--encode-type", default="", metavar="EXT",
              help="Store images encoded as EXT (jpg, png, ...); implies --encoded.")
@click.option("--backend", type=click.Choice(BACKENDS), default="lmdb", show_default=True,
              help="The database to write.")
@click.option("--check-size", is_flag=True,
              help="Fail if an image's size differs from the first image's.")
def command(root, list_file, db_path, resize_height, resize_width, shuffle, seed, gray,
            encoded, encode_type, backend, check_size):
    """Write the images of LISTFILE (lines `path label`, read from ROOT/ + path) into a new
    LMDB/LevelDB database DB of Datums keyed %08d_path, as Caffe's convert_imageset. The
    database is built under a temporary name and renamed when complete."""
    from ..data.image_list import read_list
    from ..data.tools import convert_imageset

    total = len(read_list(list_file))
    with progress_bar(total, f"Converting {total} images") as update:
        written, skipped = convert_imageset(
            root, list_file, db_path, backend, resize_height, resize_width, shuffle, gray,
            encoded, encode_type, check_size, seed, progress=update,
            warn=lambda text: click.echo(f"caffelite: warning: {text}", err=True))
    more = f" ({skipped} skipped: they did not read)" if skipped else ""
    click.echo(f"wrote {db_path}: {written} images, {backend}{more}")
