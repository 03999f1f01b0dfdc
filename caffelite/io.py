"""pycaffe's `caffe.io`: Transformer, load_image, resize_image, oversample and the BlobProto /
Datum conversions (code in pycaffe/io.py), plus caffelite's readers and writers of Caffe's
binary files (code in formats/binary.py)."""
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
from .pycaffe.io import (  # noqa: F401
    Transformer,
    array_to_blobproto,
    array_to_datum,
    arraylist_to_blobprotovector_str,
    blobproto_to_array,
    blobprotovector_str_to_arraylist,
    datum_to_array,
    load_image,
    oversample,
    resize_image,
)
