"""Blob: a named N-D array pair (data, diff), Caffe's unit of storage and communication."""
import math
import os

import numpy as np

from .errors import NetError
from .proto import caffelite_pb2 as pb
from .runtime import get_array_module, to_numpy

MAX_COUNT = 2**31 - 1  # Caffe's Blob::Reshape CHECK: count <= INT_MAX


class BlobSizeError(NetError):
    """A blob shape that cannot be allocated; the layer reshaping it adds its name."""


def max_blob_bytes():
    """The largest blob allocated: $CAFFELITE_MAX_BLOB_BYTES, else the machine's memory."""
    value = os.environ.get("CAFFELITE_MAX_BLOB_BYTES")
    if value:
        try:
            return int(float(value))
        except ValueError:
            raise NetError(f"CAFFELITE_MAX_BLOB_BYTES={value!r} is not a number of bytes") \
                from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**40


def human_bytes(n):
    """1536 -> "1.5 KiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def check_blob_size(shape, dtype=np.float32, what="a blob"):
    """Raise BlobSizeError when an array of shape cannot be allocated: more elements than
    Caffe's INT_MAX limit, or more bytes than max_blob_bytes(). Layers call it for large work
    buffers too, so the message names the shape and the bytes before NumPy tries."""
    count = math.prod(int(d) for d in shape)
    nbytes = count * np.dtype(dtype).itemsize
    if count > MAX_COUNT:
        raise BlobSizeError(f"{what} of shape {tuple(shape)} would hold {count} values "
                            f"({human_bytes(nbytes)}), more than Caffe's limit of 2^31-1; "
                            "check the sizes in the layer's parameters and its inputs")
    limit = max_blob_bytes()
    if nbytes > limit:
        raise BlobSizeError(f"{what} of shape {tuple(shape)} would need {human_bytes(nbytes)}, "
                            f"more than the {human_bytes(limit)} allowed (the machine's memory; "
                            "CAFFELITE_MAX_BLOB_BYTES sets it); check the sizes in the layer's "
                            "parameters and its inputs")


class Count(int):
    """Blob.count: pycaffe reads it as a number (`blob.count`), Caffe's C++ and caffelite's
    layers call it (`blob.count(1)`, the product of dims [1, end)); one object serves both."""

    def __new__(cls, shape):
        count = super().__new__(cls, math.prod(shape))
        count.shape = tuple(shape)
        return count

    def __call__(self, start=0, end=None):
        return int(math.prod(self.shape[start:end]))


class Blob:
    """data and diff of one shape; pycaffe's `.data`, `.diff`, `.shape`, `.reshape(*shape)`.

    Layers write into `data[...]`/`diff[...]` and never rebind them, so blobs shared by Split,
    Flatten, Reshape and in-place layers stay one memory.
    """

    def __init__(self, shape=(), dtype=np.float32, xp=np):
        self._xp = xp
        self._dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        self._check(shape)
        self._data = xp.zeros(shape, self._dtype)
        self._diff = xp.zeros(shape, self._dtype)

    # -- arrays ---------------------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        self._data[...] = value

    @property
    def diff(self):
        return self._diff

    @diff.setter
    def diff(self, value):
        self._diff[...] = value

    @property
    def dtype(self):
        return self._dtype

    # -- shape ----------------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self._data.shape)

    @property
    def num_axes(self):
        return self._data.ndim

    @property
    def count(self):
        """The number of values: an int, as pycaffe's `blob.count`, that can also be called
        as Caffe's count(start, end), the product of dims [start, end)."""
        return Count(self.shape)

    def canonical_axis_index(self, axis):
        """A non-negative axis index; negative axes count from the end as in Caffe."""
        n = self.num_axes
        if not -n <= axis < n:  # a 0-D blob has no axis at all (Caffe's CanonicalAxisIndex)
            raise IndexError(f"axis {axis} out of range for a {n}-D blob of shape {self.shape}")
        return axis + n if axis < 0 else axis

    def reshape(self, *shape):
        """Reshape to shape (given as dims or one tuple); new zeroed arrays when it changes."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        shape = tuple(int(d) for d in shape)
        if shape != self.shape:
            self._check(shape)
            self._data = self._xp.zeros(shape, self._dtype)
            self._diff = self._xp.zeros(shape, self._dtype)

    def _check(self, shape):
        if any(d < 0 for d in shape):
            raise BlobSizeError(f"a blob of shape {shape} has a negative dimension")
        check_blob_size(shape, self._dtype, "a blob")  # both data and diff: say data's bytes

    def reshape_like(self, other):
        self.reshape(other.shape)

    def share_data(self, other):
        """Use other's data memory (same count), keeping this blob's own shape."""
        assert other.count() == self.count(), (other.shape, self.shape)
        self._data = other._data.reshape(self.shape)

    def share_diff(self, other):
        """Use other's diff memory (same count), keeping this blob's own shape."""
        assert other.count() == self.count(), (other.shape, self.shape)
        self._diff = other._diff.reshape(self.shape)

    # Caffe's legacy 4-D accessors
    def _legacy_dim(self, index):
        return self.shape[index] if index < self.num_axes else 1

    num = property(lambda self: self._legacy_dim(0))
    channels = property(lambda self: self._legacy_dim(1))
    height = property(lambda self: self._legacy_dim(2))
    width = property(lambda self: self._legacy_dim(3))

    # -- protobuf -------------------------------------------------------------------------
    def to_proto(self, write_diff=False):
        """A BlobProto with shape and float data (and diff). io.py has the fast path for files."""
        proto = pb.BlobProto()
        proto.shape.dim.extend(self.shape)
        proto.data.extend(to_numpy(self._data).astype(np.float32).ravel().tolist())
        if write_diff:
            proto.diff.extend(to_numpy(self._diff).astype(np.float32).ravel().tolist())
        return proto

    def from_proto(self, proto, reshape=True):
        """Load data (and diff) from a BlobProto; with reshape=False the shapes must agree."""
        shape = proto_shape(proto)
        if reshape:
            self.reshape(shape)
        elif not shapes_match(shape, self.shape):
            raise ValueError(f"shape mismatch: file has {shape}, blob has {self.shape}")
        xp = get_array_module(self._data)
        data = proto_array(proto, "data")
        if data is not None:
            self._data[...] = xp.asarray(data.reshape(self.shape), dtype=self._dtype)
        diff = proto_array(proto, "diff")
        if diff is not None:
            self._diff[...] = xp.asarray(diff.reshape(self.shape), dtype=self._dtype)

    def __repr__(self):
        return f"Blob(shape={self.shape}, dtype={self._dtype.name})"


def proto_shape(proto):
    """The shape of a BlobProto: its `shape`, else the legacy 4-D num/channels/height/width."""
    if proto.HasField("shape"):
        return tuple(int(d) for d in proto.shape.dim)
    if any(proto.HasField(f) for f in ("num", "channels", "height", "width")):
        return (proto.num, proto.channels, proto.height, proto.width)
    return (len(proto.data) or len(proto.double_data),) if (proto.data or proto.double_data) else ()


def shapes_match(file_shape, blob_shape):
    """Caffe's ShapeEquals: a legacy 4-D header matches a blob padded with leading 1s."""
    if tuple(file_shape) == tuple(blob_shape):
        return True
    if len(file_shape) == 4 and len(blob_shape) <= 4:
        padded = (1,) * (4 - len(blob_shape)) + tuple(blob_shape)
        return tuple(file_shape) == padded
    return False


def proto_array(proto, field):
    """The float or double `data`/`diff` of a BlobProto as a flat NumPy array, or None."""
    values = getattr(proto, field)
    if len(values):
        return np.asarray(values, dtype=np.float32)
    values = getattr(proto, "double_" + field)
    if len(values):
        return np.asarray(values, dtype=np.float64)
    return None
