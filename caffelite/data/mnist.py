"""MNIST: the bundled 10,000-digit sample and the IDX -> .npz converter (images uint8 N×28×28)."""
import gzip
import io
import os
from importlib import resources

import numpy as np

from ..errors import CaffeliteError

BUNDLED_FILE = "mnist10k.npz"
# The sample is a fixed class-balanced shuffle, so a prefix/suffix split is a fair train/test.
BUNDLED = {
    "mnist10k/train": slice(0, 8000),
    "mnist10k/test": slice(8000, 10000),
}

# IDX element types (the third magic byte) -> big-endian NumPy dtypes.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# The file stems LeCun's site uses; some mirrors write "train-images.idx3-ubyte" instead.
IDX_SPLITS = {"train": "train", "test": "t10k"}


def bundled_path():
    """A Traversable for the shipped mnist10k.npz (works from a source tree or a wheel)."""
    return resources.files(__package__).joinpath(BUNDLED_FILE)


def load_bundled(name):
    """(images (N, 28, 28) uint8, labels (N,) uint8) of a bundled split, e.g. "mnist10k/test"."""
    part = BUNDLED[name]
    with bundled_path().open("rb") as f, np.load(f, allow_pickle=False) as npz:
        return npz["images"][part], npz["labels"][part]


def read_idx(path):
    """The array stored in an IDX file (gzipped when the name ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise CaffeliteError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise CaffeliteError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], ">u4"))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise CaffeliteError(f"{path}: header says {dims} ({expected} bytes of data) but the "
                             f"file holds {len(raw) - header}; is it truncated?")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx(idx_dir, split, kind):
    """Path of e.g. train-images-idx3-ubyte(.gz) in idx_dir, or None. kind: images|labels."""
    stem = IDX_SPLITS[split]
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            path = os.path.join(idx_dir, f"{stem}-{kind}{sep}idx{ndim}-ubyte{ext}")
            if os.path.isfile(path):
                return path
    return None


def split_paths(out, backend="npz"):
    """Output per split: "mnist.npz" -> {"train": "mnist_train.npz", "test": ...}; for a
    database, "mnist" -> "mnist_train_lmdb" (the names of Caffe's create_mnist.sh)."""
    if backend == "npz":
        base = out.removesuffix(".npz")
        return {split: f"{base}_{split}.npz" for split in IDX_SPLITS}
    return {split: f"{out}_{split}_{backend}" for split in IDX_SPLITS}


def convert_idx_dir(idx_dir, out, backend="npz", progress=None):
    """Convert every MNIST split found in idx_dir; returns [(path, images, labels)].

    Each split needs both its images and labels file. An .npz holds `images` (N, H, W) uint8
    and `labels` (N,) uint8; an LMDB/LevelDB holds Datums 1×H×W keyed %08d, as Caffe's
    convert_mnist_data writes them. Either is what a Data layer reads.
    """
    if not os.path.isdir(idx_dir):
        raise CaffeliteError(f"{idx_dir}: no such directory")
    written = []
    for split, path in split_paths(out, backend).items():
        images_file = find_idx(idx_dir, split, "images")
        labels_file = find_idx(idx_dir, split, "labels")
        if images_file is None and labels_file is None:
            continue
        if images_file is None or labels_file is None:
            have, missing = ("labels", "images") if images_file is None else ("images", "labels")
            ndim = 3 if missing == "images" else 1
            raise CaffeliteError(f"{idx_dir}: has the {split} {have} but no "
                                 f"{IDX_SPLITS[split]}-{missing}-idx{ndim}-ubyte[.gz] file")
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise CaffeliteError(f"{images_file} {images.shape} and {labels_file} "
                                 f"{labels.shape} do not pair up as images (N, H, W) and "
                                 "labels (N,)")
        if backend == "npz":
            write_npz(path, images=images, labels=labels)
        else:
            from .datasets import write_datums

            write_datums(path, backend, images[:, None], labels, "{:08d}", progress)
        written.append((path, images, labels))
    if not written:
        raise CaffeliteError(f"{idx_dir} holds no MNIST IDX files (expected "
                             "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] and/or "
                             "the t10k-* pair)")
    return written


def write_npz(path, **arrays):
    """Compressed .npz written to a temporary file and renamed, so no torn file is left."""
    from ..formats.binary import atomic_write

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, buffer.getbuffer())
