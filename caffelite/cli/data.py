"""`caffelite data mnist|cifar10`: datasets into databases (or .npz files) a Data layer reads."""
import click

from ..tools.progress_bar import progress_bar

BACKEND_CHOICES = click.Choice(["lmdb", "leveldb", "npz"])


@click.group(name="data")
def command():
    """Convert datasets into LMDB/LevelDB databases or .npz files that a Data layer reads
    (data_param.source)."""


def report(written, backend):
    for path, images, labels in written:
        shape = "×".join(str(d) for d in images.shape[1:])
        click.echo(f"wrote {path}: {len(images)} images {shape} {images.dtype}, labels "
                   f"{int(labels.min())}..{int(labels.max())}")
        extra = "" if backend == "npz" else f" backend: {backend.upper()}"
        click.echo(f'  use it as data_param {{ source: "{path}"{extra} }}')


@command.command("mnist")
@click.option("--idx-dir", required=True, metavar="DIR",
              help="Directory with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] "
                   "and/or the t10k-* pair, as downloaded from the MNIST site.")
@click.option("--out", required=True, metavar="PREFIX",
              help="Output name: PREFIX_train.npz and PREFIX_test.npz (npz), or the databases "
                   "PREFIX_train_lmdb and PREFIX_test_lmdb (lmdb; leveldb likewise), one per "
                   "split found.")
@click.option("--backend", type=BACKEND_CHOICES, default="npz", show_default=True,
              help="What to write: Datum databases keyed %08d as Caffe's convert_mnist_data, "
                   "or an .npz with `images` and `labels`.")
def mnist(idx_dir, out, backend):
    """Convert the MNIST IDX files (gzipped or not)."""
    from ..data.mnist import convert_idx_dir

    with progress_bar(None, "Writing records") as update:
        written = convert_idx_dir(idx_dir, out, backend, progress=update)
    report(written, backend)


@command.command("cifar10")
@click.option("--input-dir", required=True, metavar="DIR",
              help="Directory with data_batch_1.bin .. data_batch_5.bin and test_batch.bin "
                   "(CIFAR-10 binary version; its cifar-10-batches-bin/ also works).")
@click.option("--out-dir", required=True, metavar="DIR",
              help="Where cifar10_train_<backend> and cifar10_test_<backend> are written.")
@click.option("--backend", type=BACKEND_CHOICES, default="lmdb", show_default=True,
              help="Datum databases 3×32×32 keyed %05d as Caffe's convert_cifar_data, or .npz.")
def cifar10(input_dir, out_dir, backend):
    """Convert the CIFAR-10 binary files (channel 0 is red, stored as they come, as Caffe's
    convert_cifar_data does)."""
    from ..data.datasets import convert_cifar10

    with progress_bar(None, "Writing records") as update:
        written = convert_cifar10(input_dir, out_dir, backend, progress=update)
    report(written, backend)
