"""Caffe's data tools: convert_imageset (an image list into a Datum database) and
compute_image_mean (a database's mean image as a .binaryproto)."""
import os

import numpy as np

from ..proto import caffelite_pb2 as pb
from .datum import (
    ENCODE_FORMATS,
    array_to_datum,
    datum_to_array,
    encode_image,
    encoded_datum,
    image_format,
    parse_datum,
)
from .db import DBWriter, iterate_records
from .errors import DataError
from .image_list import read_image, read_list, resize_linear


def convert_imageset(root, list_file, db_path, backend="lmdb", resize_height=0, resize_width=0,
                     shuffle=False, gray=False, encoded=False, encode_type="", check_size=False,
                     seed=None, progress=None, warn=print):
    """Write the images of `list_file` (root + path, label) into a new database at db_path, keyed
    `%08d_path` by their (shuffled) line index; returns (written, skipped). Images that do not
    read are skipped with a warning naming the line, as convert_imageset does; encoded Datums
    keep the original file when it needs no change."""
    entries = read_list(list_file)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(entries))
        entries = [entries[k] for k in order]
    if bool(resize_height) != bool(resize_width):
        warn(f"--resize-height {resize_height} and --resize-width {resize_width}: both are "
             "needed to resize; images are kept at their size")
        resize_height = resize_width = 0
    encoded = encoded or bool(encode_type)
    written = skipped = 0
    first_size = None
    with DBWriter(db_path, backend) as db:
        for index, (name, label, number) in enumerate(entries):
            where = f"{list_file} line {number}"
            try:
                if encoded:
                    datum = _encoded(root + name, where, label, gray, resize_height,
                                     resize_width, encode_type or os.path.splitext(name)[1])
                else:
                    pixels = read_image(root + name, where, not gray, resize_height,
                                        resize_width)
                    datum = array_to_datum(pixels, label)
            except DataError as exc:
                warn(f"skipped: {exc}")
                skipped += 1
                continue
            if check_size and not encoded:
                size = (datum.channels, datum.height, datum.width)
                first_size = first_size or (size, where)
                if size != first_size[0]:
                    raise DataError(f"{where}: the image is {'×'.join(map(str, size))}, the "
                                    f"first ({first_size[1]}) was "
                                    f"{'×'.join(map(str, first_size[0]))} (--check-size)")
            db.put(f"{index:08d}_{name}", datum.SerializeToString())
            written += 1
            if progress:
                progress(1)
        if written == 0:
            raise DataError(f"no image of {list_file} could be read (is ROOT {root!r} right?); "
                            "no database written")
    return written, skipped


def _encoded(full_path, where, label, gray, height, width, extension):
    """An encoded Datum: the file's own bytes when it needs no change, else re-encoded."""
    target = ENCODE_FORMATS.get(extension.lower().lstrip("."))
    if target is None:
        raise DataError(f"{where}: cannot encode as '{extension}'; use --encode-type with one "
                        f"of {', '.join(sorted(ENCODE_FORMATS))}")
    try:
        with open(full_path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{where}: {full_path}: {exc.strerror or exc}") from None
    pixels = read_image(full_path, where, not gray)  # also proves the file decodes
    resize = height > 0 and width > 0 and pixels.shape[1:] != (height, width)
    native = image_format(data).upper() == target and _native_channels(data) == (
        1 if gray else 3)
    if not resize and native:
        return encoded_datum(data, label)
    if resize:
        pixels = resize_linear(pixels, height, width)
    return encoded_datum(encode_image(pixels, extension), label)


def _native_channels(data):
    from .datum import decode_image

    return decode_image(data, "", None).shape[0]


def compute_image_mean(db_path, backend=None, progress=None):
    """(mean (C, H, W) float32, count) over every Datum of a database (encoded ones decoded in
    their own channels), summed in float64."""
    total, shape, first, n = None, None, None, 0
    for key, value in iterate_records(db_path, backend):
        where = f"{db_path}: record {key.decode('utf-8', 'backslashreplace')}"
        pixels = datum_to_array(parse_datum(value, where), where)
        if total is None:
            total, shape, first = np.zeros(pixels.shape, np.float64), pixels.shape, where
        elif pixels.shape != shape:
            raise DataError(f"{where} is {'×'.join(map(str, pixels.shape))}, the first "
                            f"({first}) was {'×'.join(map(str, shape))}; every record must have "
                            "the same shape to take a mean")
        total += pixels
        n += 1
        if progress:
            progress(1)
    return (total / n).astype(np.float32), n


def mean_blob_bytes(mean):
    """A BlobProto with compute_image_mean's legacy header num=1, C, H, W (no shape)."""
    c, h, w = mean.shape
    proto = pb.BlobProto(num=1, channels=c, height=h, width=w)
    proto.data.extend(np.asarray(mean, np.float32).ravel().tolist())
    return proto.SerializeToString()
