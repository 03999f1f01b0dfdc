"""Datum records and images: Caffe's Datum <-> (C, H, W) arrays, image files decoded with Pillow.

Images come out as OpenCV gives them to Caffe: channels in BGR order (BGRA with alpha), C×H×W,
uint8. A raw Datum holds its pixels as `data` bytes in C×H×W order, or as `float_data`; an
encoded one holds a JPEG/PNG file in `data` and no shape.
"""
import io

import numpy as np
from google.protobuf.message import DecodeError

from ..proto import caffelite_pb2 as pb
from .errors import DataError, need

# Greyscale reads of colour images as OpenCV gives them to Caffe (IMREAD_GRAYSCALE): libpng
# converts PNGs itself ((B·3737 + G·19234 + R·9797) >> 15, truncated), other formats go through
# cvtColor's rounded 14-bit weights; a JPEG is decoded straight to its luma, as libjpeg does.
# (shift, rounding, B, G, R weights)
GRAY_PNG = (15, 0, 3737, 19234, 9797)
GRAY_OPENCV = (14, 1 << 13, 1868, 9617, 4899)
ENCODE_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF",
                  "tiff": "TIFF", "ppm": "PPM", "pgm": "PPM", "webp": "WEBP"}


def parse_datum(value, where):
    """The Datum serialised in `value`; DataError naming `where` (a key) when it does not parse."""
    try:
        return pb.Datum.FromString(value)
    except DecodeError as exc:
        raise DataError(f"{where}: the value is not a serialised Datum ({exc})") from None


def datum_to_array(datum, where, color=None):
    """(C, H, W) pixels of a Datum: uint8 for `data` (raw or decoded), float32 for float_data.

    color (encoded Datums only, as Caffe's force_color/force_gray): True = 3 channels, False =
    1 channel, None = as stored in the file."""
    if datum.encoded:
        return decode_image(datum.data, where, color)
    shape = (datum.channels, datum.height, datum.width)
    count = shape[0] * shape[1] * shape[2]
    if count == 0:
        raise DataError(f"{where}: the Datum has no shape (channels {shape[0]}, height "
                        f"{shape[1]}, width {shape[2]}) and is not encoded")
    if datum.data:
        if len(datum.data) != count:
            raise DataError(f"{where}: data holds {len(datum.data)} bytes but channels×height×"
                            f"width is {'×'.join(map(str, shape))} = {count}")
        return np.frombuffer(datum.data, np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise DataError(f"{where}: float_data holds {len(datum.float_data)} values but "
                        f"channels×height×width is {'×'.join(map(str, shape))} = {count}")
    return np.asarray(datum.float_data, np.float32).reshape(shape)


def array_to_datum(array, label=None):
    """A raw Datum of a (C, H, W) uint8 array (float arrays go to float_data), as pycaffe's
    caffe.io.array_to_datum: the label is set only when given."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"Incorrect array shape: {array.shape}; a Datum holds (C, H, W)")
    c, h, w = array.shape
    datum = pb.Datum(channels=c, height=h, width=w)
    if label is not None:
        datum.label = int(label)
    if array.dtype == np.uint8:
        datum.data = np.ascontiguousarray(array).tobytes()
    else:
        datum.float_data.extend(array.astype(np.float32).ravel().tolist())
    return datum


def encoded_datum(file_bytes, label=0):
    """An encoded Datum: only data, label and encoded are set, as convert_imageset writes it."""
    return pb.Datum(data=bytes(file_bytes), label=int(label), encoded=True)


def decode_image(data, where, color=None):
    """(C, H, W) uint8 BGR(A)/grey pixels of an image file's bytes (Caffe's imdecode).

    color: True -> 3 channels (alpha dropped, grey replicated), False -> 1 channel (OpenCV's
    grey weights), None -> the file's own channels (1 grey, 3 BGR, 4 BGRA)."""
    image_module = need("PIL.Image", "Decoding images")
    try:
        with image_module.open(io.BytesIO(data)) as image:
            if color is False and image.format == "JPEG" and image.mode != "L":
                image.draft("L", image.size)  # the luma the decoder has, as libjpeg gives it
            image.load()
            pixels = _image_pixels(image, where, color)
    except DataError:
        raise
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, ...)
        raise DataError(f"{where}: the image does not decode ({exc})") from None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _image_pixels(image, where, color):
    """(H, W, C) uint8 pixels of an open Pillow image, channels as OpenCV orders them."""
    mode, fmt = image.mode, image.format
    if mode in ("I;16", "I;16B", "I;16L", "I", "F") or mode.startswith("I;"):
        raise DataError(f"{where}: the image is {mode} (16/32-bit); Caffe reads 8-bit images")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "LA":
        image = image.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr, ... as OpenCV's 3-channel colour
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if color is None:
        return _bgr(pixels)
    if color:
        if pixels.shape[2] == 1:
            return np.repeat(pixels, 3, axis=2)
        return _bgr(pixels[:, :, :3])
    if pixels.shape[2] == 1:
        return pixels
    weights = GRAY_PNG if fmt == "PNG" else GRAY_OPENCV
    return gray_from_bgr(_bgr(pixels[:, :, :3]), weights)


def _bgr(pixels):
    """RGB(A) -> BGR(A), a view where it can be; grey stays."""
    if pixels.shape[2] == 1:
        return pixels
    if pixels.shape[2] == 3:
        return pixels[:, :, ::-1]
    return pixels[:, :, [2, 1, 0, 3]]


def gray_from_bgr(pixels, weights=GRAY_OPENCV):
    """(H, W, 1) uint8 grey of (H, W, 3) BGR pixels in fixed point as OpenCV/libpng round."""
    shift, rounding, *bgr = weights
    gray = (pixels.astype(np.uint32) @ np.asarray(bgr, np.uint32) + rounding) >> shift
    return gray.astype(np.uint8)[:, :, None]


def encode_image(chw, extension):
    """The bytes of a (C, H, W) uint8 BGR/grey image in the file format of `extension`."""
    image_module = need("PIL.Image", "Encoding images")
    fmt = ENCODE_FORMATS.get(extension.lower().lstrip("."))
    if fmt is None:
        raise DataError(f"cannot encode images as '{extension}'; use one of "
                        f"{', '.join(sorted(ENCODE_FORMATS))}")
    hwc = np.ascontiguousarray(_bgr(np.asarray(chw).transpose(1, 2, 0)))
    image = image_module.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    buffer = io.BytesIO()
    options = {"quality": 95} if fmt == "JPEG" else {}  # OpenCV's default JPEG quality
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_format(data):
    """The lower-case format name Pillow sees in an image file's bytes ('jpeg', 'png'), or ''."""
    image_module = need("PIL.Image", "Reading images")
    try:
        with image_module.open(io.BytesIO(data)) as image:
            return (image.format or "").lower()
    except Exception:
        return ""
