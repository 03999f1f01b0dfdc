"""`caffelite data mnist --idx-dir DIR --out FILE.npz`: datasets into files a Data layer reads."""
import click

from ..data.mnist import convert_idx_dir


@click.group(name="data")
def command():
    """Convert datasets into .npz files that a Data layer reads (data_param.source)."""


@command.command("mnist")
@click.option("--idx-dir", required=True, metavar="DIR",
              help="Directory with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] "
                   "and/or the t10k-* pair, as downloaded from the MNIST site.")
@click.option("--out", required=True, metavar="FILE.npz",
              help="Output name: FILE_train.npz and FILE_test.npz are written, one per split "
                   "found.")
def mnist(idx_dir, out):
    """Convert the MNIST IDX files (gzipped or not) to .npz files with `images` and `labels`."""
    for path, images, labels in convert_idx_dir(idx_dir, out):
        shape = "×".join(str(d) for d in images.shape[1:])
        click.echo(f"wrote {path}: {len(images)} images {shape} {images.dtype}, labels "
                   f"{int(labels.min())}..{int(labels.max())}")
        click.echo(f'  use it as data_param {{ source: "{path}" }}')
