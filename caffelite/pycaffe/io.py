"""pycaffe's caffe.io: the input Transformer, image loading, resizing and 10-crop oversampling,
and conversions between arrays and BlobProto / BlobProtoVector / Datum messages.

Images are H×W×K float32 (RGB in [0, 1] from load_image); net inputs are C×H×W. Pillow decodes
image files (the `image` extra). Where caffelite differs from pycaffe on purpose it says so:
resize_image interpolates as OpenCV's INTER_LINEAR (half-pixel centres, edges clamped) rather
than through scikit-image, and preprocess never writes into the caller's array.
"""
import numpy as np

from ..data.datum import array_to_datum  # noqa: F401  (caffe.io.array_to_datum)
from ..formats.binary import blob_proto_bytes
from ..proto import caffelite_pb2 as pb


# -- messages -----------------------------------------------------------------------------------
def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as a float64 array. A legacy num/channels/height/width
    header, when any of it is set, gives the 4-D shape (unset parts are 0, so a partial
    header raises ValueError, as pycaffe); otherwise shape.dim."""
    values = np.array(blob.diff if return_diff else blob.data, dtype=np.float64)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    if int(np.prod(shape, dtype=np.int64)) != values.size:
        raise ValueError(f"BlobProto of shape {list(shape)} holds {values.size} "
                         f"{'diff' if return_diff else 'data'} values")
    return values.reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with shape.dim, data (and diff) of arr as float32 values."""
    arr = np.asarray(arr)
    if diff is not None and np.shape(diff) != arr.shape:
        raise ValueError(f"diff has shape {np.shape(diff)}, the array {arr.shape}")
    return pb.BlobProto.FromString(blob_proto_bytes(arr, None if diff is None
                                                    else np.asarray(diff)))


def arraylist_to_blobprotovector_str(arraylist):
    """A serialized BlobProtoVector of the arrays."""
    vector = pb.BlobProtoVector()
    vector.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vector.SerializeToString()


def blobprotovector_str_to_arraylist(data):
    """The arrays (float64) of a serialized BlobProtoVector."""
    vector = pb.BlobProtoVector.FromString(data)
    return [blobproto_to_array(b) for b in vector.blobs]


def datum_to_array(datum):
    """A Datum as C×H×W: uint8 from `data`, else float64 from float_data (encoded datums are
    not decoded, as in pycaffe)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=np.float64).reshape(shape)


# -- images -------------------------------------------------------------------------------------
# scikit-image's rgb2gray weights (ITU-R BT.709), which pycaffe's load_image(color=False) uses.
_GREY = np.array([0.2125, 0.7154, 0.0721], dtype=np.float64)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError('caffelite.io.load_image needs Pillow: pip install "caffelite[image]"'
                          ) from None
    return Image


def load_image(filename, color=True):
    """An image file as float32 in [0, 1], H×W×3 RGB (color) or H×W×1 (grey). A grey file with
    color=True is repeated into 3 channels; alpha is dropped."""
    image_module = _pillow()
    with image_module.open(filename) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(im, dtype=np.float64)
            # Some Pillow versions open 16-bit PNGs as 32-bit "I": values in 0..65535 are
            # 16-bit samples (scikit-image reads them as uint16).
            sixteen = im.mode.startswith("I;16") or (array.min() >= 0 and array.max() <= 65535)
            array /= 65535.0 if sixteen else float(2**31 - 1)
        elif im.mode in ("L", "1"):
            array = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
        elif im.mode == "F":
            array = np.asarray(im, dtype=np.float64)
        else:
            array = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    if array.ndim == 3 and not color:
        array = array @ _GREY
    if array.ndim == 2:
        array = array[:, :, None]
        if color:
            array = np.repeat(array, 3, axis=2)
    return array.astype(np.float32)


def _axis_weights(size_in, size_out, order):
    """(lower index, upper index, weight of the upper) along one axis."""
    scale = size_in / size_out
    centres = (np.arange(size_out) + 0.5) * scale - 0.5
    if order == 0:
        index = np.clip(np.floor((np.arange(size_out) + 0.5) * scale), 0, size_in - 1)
        index = index.astype(np.intp)
        return index, index, np.zeros(size_out)
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(np.intp)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, centres - low


def resize_image(im, new_dims, interp_order=1):
    """Resize an H×W×K image to new_dims (height, width): bilinear (interp_order=1) or nearest
    (0), float32. Bilinear samples at half-pixel centres with clamped edges, as OpenCV's
    INTER_LINEAR (pycaffe uses scikit-image, whose border handling differs)."""
    if interp_order not in (0, 1):
        raise ValueError(f"interp_order must be 0 (nearest) or 1 (bilinear), got {interp_order}")
    im = np.asarray(im, dtype=np.float64)
    if im.ndim != 3:
        raise ValueError(f"resize_image takes an H×W×K image, got shape {im.shape}")
    height, width = int(new_dims[0]), int(new_dims[1])
    if im.min() == im.max():  # a constant image (pycaffe's special case)
        return np.full((height, width, im.shape[2]), im.min(), dtype=np.float32)
    y0, y1, wy = _axis_weights(im.shape[0], height, interp_order)
    x0, x1, wx = _axis_weights(im.shape[1], width, interp_order)
    wy, wx = wy[:, None, None], wx[None, :, None]
    top = im[y0][:, x0] * (1 - wx) + im[y0][:, x1] * wx
    bottom = im[y1][:, x0] * (1 - wx) + im[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def crop_boxes(image_hw, crop_dims):
    """The 5 crops pycaffe's oversample takes, (y0, x0, y1, x1) each: top-left, top-right,
    bottom-left, bottom-right, centre (H/2 - ch/2, truncated)."""
    height, width = image_hw
    ch, cw = int(crop_dims[0]), int(crop_dims[1])
    boxes = [(y, x, y + ch, x + cw) for y in (0, height - ch) for x in (0, width - cw)]
    cy, cx = int(height / 2.0 - ch / 2.0), int(width / 2.0 - cw / 2.0)
    boxes.append((cy, cx, cy + ch, cx + cw))
    return boxes


def oversample(images, crop_dims):
    """10 crops per image (the 5 of crop_boxes, then the same 5 mirrored left-right), all at
    positions from the first image's size: (10·N, ch, cw, K) float32."""
    images = list(images)
    boxes = crop_boxes(np.shape(images[0])[:2], crop_dims)
    crops = []
    for im in images:
        im = np.asarray(im)
        five = [im[y0:y1, x0:x1, :] for y0, x0, y1, x1 in boxes]
        crops += five + [c[:, ::-1, :] for c in five]
    return np.asarray(crops, dtype=np.float32)


from .transformer import Transformer  # noqa: E402,F401  (pycaffe's caffe.io.Transformer)
