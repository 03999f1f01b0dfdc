"""Databases, images and lists written straight with lmdb/plyvel/Pillow (not caffelite's
writers), and the NumPy form of Caffe's transform, for the data tests."""
import io

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.blob import Blob
from caffelite.proto import caffelite_pb2 as pb


def raw_datum(image, label):
    c, h, w = image.shape
    return pb.Datum(channels=c, height=h, width=w, data=image.astype(np.uint8).tobytes(),
                    label=int(label))


def write_db(path, backend, values):
    """values: [(key bytes, value bytes)] written in one transaction/batch."""
    if backend == "lmdb":
        lmdb = pytest.importorskip("lmdb")
        env = lmdb.open(str(path), map_size=1 << 26)
        with env.begin(write=True) as txn:
            for key, value in values:
                txn.put(key, value)
        env.close()
    else:
        plyvel = pytest.importorskip("plyvel")
        db = plyvel.DB(str(path), create_if_missing=True)
        for key, value in values:
            db.put(key, value)
        db.close()
    return str(path)


def write_images_db(path, backend, images, labels, key_format="{:08d}"):
    return write_db(path, backend, [(key_format.format(i).encode(),
                                     raw_datum(im, lab).SerializeToString())
                                    for i, (im, lab) in enumerate(zip(images, labels))])


def read_db(path, backend):
    """[(key, value)] in key order, read with the package itself."""
    if backend == "lmdb":
        import lmdb

        env = lmdb.open(str(path), readonly=True, lock=False)
        with env.begin() as txn:
            items = list(txn.cursor())
        env.close()
        return items
    import plyvel

    db = plyvel.DB(str(path))
    items = list(db.iterator())
    db.close()
    return items


def png_bytes(hwc, mode=None):
    Image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    Image.fromarray(hwc, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def layer_net(layer_text, phase=pb.TRAIN, seed=1701):
    from caffelite.net import Net
    from caffelite.random import make_rng

    param = text_format.Parse(layer_text, pb.NetParameter())
    return Net(param, phase=phase, rng=make_rng(seed))


def make_data_layer(text, phase=pb.TRAIN, seed=1701, tops=2):
    """A data layer from LayerParameter text, set up on fresh top blobs."""
    from gradient_check import make_layer

    layer = make_layer(text, phase=phase, dtype=np.float32, seed=seed)
    top = [Blob(dtype=np.float32) for _ in range(tops)]
    layer.setup([], top)
    return layer, top


def forward(layer, top):
    layer.reshape([], top)
    layer.forward([], top)
    return [t.data.copy() for t in top]


def caffe_transform(image, h_off, w_off, flip, crop, mean=None, scale=1.0):
    """Caffe's DataTransformer for one (C, H, W) image, pixel by pixel as its loop reads:
    out[c][h][w'] = (x[c][h+h_off][w+w_off] − mean[c][h+h_off][w+w_off]) · scale."""
    c, height, width = image.shape
    ch, cw = (crop, crop) if crop else (height, width)
    out = np.empty((c, ch, cw), np.float32)
    for k in range(c):
        for h in range(ch):
            for w in range(cw):
                value = np.float32(image[k, h + h_off, w + w_off])
                if mean is not None:
                    value = value - np.float32(np.broadcast_to(mean, image.shape)
                                               [k, h + h_off, w + w_off])
                out[k, h, cw - 1 - w if flip else w] = value * np.float32(scale)
    return out
