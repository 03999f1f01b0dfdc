"""Datasets into Datum databases: arrays as convert_mnist_data writes them, and the CIFAR-10
"binary version" files as convert_cifar_data reads them."""
import os

import numpy as np

from .datum import array_to_datum
from .db import DBWriter
from .errors import DataError

CIFAR_TRAIN = [f"data_batch_{k}.bin" for k in range(1, 6)]
CIFAR_TEST = ["test_batch.bin"]
CIFAR_RECORD = 1 + 3 * 32 * 32  # a label byte, then 1024 R, 1024 G, 1024 B bytes


def write_datums(path, backend, images, labels, key_format, progress=None):
    """A new database of raw Datums (images (N, C, H, W) uint8), record k keyed
    key_format.format(k); built under a temporary name and renamed when complete."""
    with DBWriter(path, backend) as db:
        for k, (image, label) in enumerate(zip(images, labels)):
            db.put(key_format.format(k), array_to_datum(image, int(label)).SerializeToString())
            if progress:
                progress(1)


def read_cifar_file(path):
    """(images (N, 3, 32, 32) uint8 with channel 0 = R, as stored; labels (N,) uint8)."""
    try:
        raw = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of CIFAR-10 records "
                        f"({CIFAR_RECORD} bytes each: a label byte and 3×32×32 pixels); is it "
                        "the binary version (cifar-10-binary.tar.gz)?")
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0]
    if labels.max() > 9:
        raise DataError(f"{path}: label {int(labels.max())} is not a CIFAR-10 class (0-9); is "
                        "it the binary version of CIFAR-10 (not CIFAR-100)?")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def find_cifar_dir(input_dir):
    """The directory holding data_batch_1.bin: input_dir or its cifar-10-batches-bin/."""
    for candidate in (input_dir, os.path.join(input_dir, "cifar-10-batches-bin")):
        if os.path.isfile(os.path.join(candidate, CIFAR_TRAIN[0])):
            return candidate
    if not os.path.isdir(input_dir):
        raise DataError(f"{input_dir}: no such directory")
    raise DataError(f"{input_dir} holds no CIFAR-10 binary files (expected data_batch_1.bin .. "
                    "data_batch_5.bin and test_batch.bin, from cifar-10-binary.tar.gz)")


def check_cifar_files(directory):
    missing = [n for n in CIFAR_TRAIN + CIFAR_TEST
               if not os.path.isfile(os.path.join(directory, n))]
    if missing:
        raise DataError(f"{directory}: missing {', '.join(missing)} (CIFAR-10 binary version)")


def read_cifar_split(directory, names):
    parts = [read_cifar_file(os.path.join(directory, n)) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def convert_cifar10(input_dir, out_dir, backend, progress=None):
    """Write OUT/cifar10_{train,test}_<backend> (or .npz) from the CIFAR-10 binary files, keyed
    %05d in file order as convert_cifar_data; returns [(path, images, labels)]."""
    directory = find_cifar_dir(input_dir)
    check_cifar_files(directory)  # all of them before writing anything
    written = []
    for split, names in (("train", CIFAR_TRAIN), ("test", CIFAR_TEST)):
        images, labels = read_cifar_split(directory, names)
        if backend == "npz":
            from .mnist import write_npz

            path = os.path.join(out_dir, f"cifar10_{split}.npz")
            write_npz(path, images=images, labels=labels)
        else:
            path = os.path.join(out_dir, f"cifar10_{split}_{backend}")
            os.makedirs(out_dir, exist_ok=True)
            write_datums(path, backend, images, labels, "{:05d}", progress)
        written.append((path, images, labels))
    return written
