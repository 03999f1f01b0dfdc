"""pycaffe's `caffe.io` names: reading and writing Caffe's binary files.

The code lives in formats/binary.py; this module keeps the public import path.
"""
from .data.datum import array_to_datum  # noqa: F401  (pycaffe's caffe.io names)
from .data.datum import io_datum_to_array as datum_to_array  # noqa: F401
from .formats.binary import (  # noqa: F401
    atomic_write,
    blob_proto_bytes,
    copy_trained_layers,
    load_caffemodel,
    read_binaryproto,
    read_blob_array,
    save_caffemodel,
    write_binaryproto,
)
