""".caffemodel and .binaryproto I/O: BlobProto = shape (field 7) + packed '<f4' data (field 5)."""
import os
import tempfile

import numpy as np
from google.protobuf.message import DecodeError

from ..blob import proto_shape, shapes_match
from ..errors import CaffeliteError, WeightsError, read_bytes
from ..proto import caffelite_pb2 as pb
from ..runtime import to_numpy

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_LENGTH_DELIMITED = 2
# LayerParameter.blobs: the field that protobuf's repeated-message API would fill slowly.
_LAYER_BLOBS = pb.LayerParameter.DESCRIPTOR.fields_by_name["blobs"].number  # 7
_NET_NAME = pb.NetParameter.DESCRIPTOR.fields_by_name["name"].number  # 1
_NET_LAYER = pb.NetParameter.DESCRIPTOR.fields_by_name["layer"].number  # 100


# -- wire format ------------------------------------------------------------------------------
def _varint(value):
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def proto_field_bytes(field_number, payload):
    """A length-delimited field: tag, length, payload (a submessage, string or packed run)."""
    return _varint(field_number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + bytes(payload)


def _field_chunks(field_number, chunks):
    """A length-delimited field whose payload is a list of bytes-like chunks (not copied)."""
    size = sum(len(c) for c in chunks)
    return [_varint(field_number << 3 | _LENGTH_DELIMITED) + _varint(size)] + list(chunks)


def _f4_view(array):
    """The bytes of array as contiguous little-endian float32, without a copy when possible."""
    array = np.ascontiguousarray(to_numpy(array), dtype="<f4")
    return memoryview(array.reshape(-1)).cast("B")


def _blob_chunks(array, diff=None):
    """BlobProto chunks in protobuf's field order: data (5), diff (6), shape (7)."""
    chunks = []
    data = _f4_view(array)
    if len(data):  # protobuf writes nothing for an empty packed field
        chunks += _field_chunks(5, [data])
    if diff is not None:
        diff = _f4_view(diff)
        if len(diff):
            chunks += _field_chunks(6, [diff])
    dims = b"".join(_varint(int(d)) for d in np.shape(array))
    shape = proto_field_bytes(1, dims) if dims else b""  # BlobShape.dim, packed int64
    chunks += _field_chunks(7, [shape])  # written even for a 0-D blob, as Caffe does
    return chunks


def blob_proto_bytes(array, diff=None):
    """A serialized BlobProto of array (and diff) as float32, byte-identical to protobuf's."""
    return b"".join(bytes(c) for c in _blob_chunks(array, diff))


def _layer_chunks(layer_param, blobs, write_diff):
    """A LayerParameter with blobs spliced in as raw bytes, keeping protobuf's field order:
    fields 1-6, blobs (7), then 8 onwards (phase, include, the *_param messages)."""
    head, tail = pb.LayerParameter(), pb.LayerParameter()
    head.CopyFrom(layer_param)
    tail.CopyFrom(layer_param)
    for field, _ in layer_param.ListFields():
        (tail if field.number <= _LAYER_BLOBS else head).ClearField(field.name)
    head.ClearField("blobs")
    body = [head.SerializeToString()]
    for blob in blobs:
        body += _field_chunks(_LAYER_BLOBS,
                              _blob_chunks(blob.data, blob.diff if write_diff else None))
    body.append(tail.SerializeToString())
    return _field_chunks(_NET_LAYER, body)


def net_param_chunks(net, write_diff=False):
    """Caffe's Net::ToProto as byte chunks: the net name, then every layer with its blobs."""
    chunks = [proto_field_bytes(_NET_NAME, net.name.encode())]
    for layer in net.layers:
        chunks += _layer_chunks(layer.layer_param, layer.blobs, write_diff)
    return chunks


def net_param_bytes(net, write_diff=False):
    return b"".join(bytes(c) for c in net_param_chunks(net, write_diff))


# -- files ------------------------------------------------------------------------------------
def atomic_write(path, data_bytes):
    """Write bytes (or an iterable of bytes-like chunks) to path so that readers see the old
    file or the whole new one: a temp file in the same directory, fsync, then os.replace."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    chunks = [data_bytes] if isinstance(data_bytes, (bytes, bytearray, memoryview)) else data_bytes
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save_caffemodel(net, path, write_diff=False):
    """Write net's layers and parameters as Caffe's binary NetParameter (float32 blobs)."""
    path = os.fspath(path)
    if path.endswith(".h5"):
        raise WeightsError(f"{path}: HDF5 weights are not supported by save_caffemodel; "
                           f"write them with Net.save_hdf5 (or snapshot_format: HDF5)")
    atomic_write(path, net_param_chunks(net, write_diff))


def load_caffemodel(path):
    """A .caffemodel as a pb.NetParameter (V1 `layers` upgraded to `layer`)."""
    path = os.fspath(path)
    raw = read_bytes(path, WeightsError, ".caffemodel ")
    if raw.startswith(HDF5_MAGIC):
        raise WeightsError(f"{path}: HDF5 weights (.caffemodel.h5) are read by Net.copy_from "
                           "/ Net.load_hdf5, not as a NetParameter; or convert them with "
                           "`caffelite convert IN.caffemodel.h5 OUT.caffemodel`")
    param = pb.NetParameter()
    try:
        param.ParseFromString(raw)
    except DecodeError as exc:
        hint = _solverstate_hint(raw)
        if hint:
            raise WeightsError(f"{path}: not a .caffemodel: {hint}") from None
        raise WeightsError(f"{path}: not a valid .caffemodel (truncated? a text .prototxt?): "
                           f"{exc}") from None
    if len(param.layers):
        param = _upgrade_v1(param, path)
    if not len(param.layer):
        hint = _solverstate_hint(raw)
        raise WeightsError(f"{path}: not a .caffemodel: {hint}" if hint else
                           f"{path}: not a valid .caffemodel: it holds no layers")
    return param


def _solverstate_hint(raw):
    """The classic mix-up: a .solverstate given where a .caffemodel belongs."""
    state = pb.SolverState()
    try:
        state.ParseFromString(raw)
    except DecodeError:
        return ""
    if not (state.learned_net and len(state.history)):
        return ""
    return (f"it is a .solverstate of iteration {state.iter}; its weights are in "
            f"{state.learned_net}, and the state itself goes to --snapshot / Solver.restore")


def _upgrade_v1(param, path):
    """V1 `layers` -> `layer`. Weights only need names and blobs, which is what remains when
    the full upgrade (types, param specs) cannot run."""
    count = len(param.layers)
    try:
        from .upgrade import upgrade_net_param

        upgraded = pb.NetParameter()
        upgraded.CopyFrom(param)
        upgraded = upgrade_net_param(upgraded, path)
        if len(upgraded.layer) == count:
            return upgraded
    except (ImportError, KeyError, CaffeliteError):
        pass
    out = pb.NetParameter(name=param.name)
    for v1 in param.layers:
        layer = out.layer.add(name=v1.name)
        layer.blobs.extend(v1.blobs)
    return out


def read_blob_array(blob_proto, field="data"):
    """The `data` (or `diff`) of a BlobProto as an array of its shape (float32, or float64 from
    double_data). np.asarray reads protobuf's packed container in C (~5 ns a value)."""
    shape = proto_shape(blob_proto)
    values = getattr(blob_proto, field)
    if not len(values) and len(getattr(blob_proto, "double_" + field)):
        array = np.asarray(getattr(blob_proto, "double_" + field), dtype=np.float64)
    else:
        array = np.asarray(values, dtype=np.float32)
    count = int(np.prod(shape, dtype=np.int64))
    if array.size != count:
        raise WeightsError(f"blob of shape {list(shape)} holds {array.size} {field} values, "
                           f"expected {count}")
    return array.reshape(shape)


def read_binaryproto(path):
    """A .binaryproto BlobProto (e.g. compute_image_mean's mean) as an array of its shape;
    a legacy num/channels/height/width header gives a 4-D array."""
    path = os.fspath(path)
    raw = read_bytes(path, WeightsError, ".binaryproto ")
    proto = pb.BlobProto()
    try:
        proto.ParseFromString(raw)
    except DecodeError as exc:
        raise WeightsError(f"{path}: not a valid .binaryproto (truncated?): {exc}") from None
    try:
        return read_blob_array(proto)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def write_binaryproto(array, path):
    """Write array as one BlobProto (shape + float32 data), as compute_image_mean does."""
    atomic_write(path, _blob_chunks(np.asarray(to_numpy(array))))


# -- weights into a net -----------------------------------------------------------------------
def copy_trained_layers(net, net_param, source="weights", strict=False, report=True):
    """Caffe's CopyTrainedLayersFrom: each source layer's blobs go into the first net layer of
    the same name; source layers the net lacks are skipped. Counts and shapes must match
    (a legacy 4-D header matches a blob padded with leading 1s). All checks run before any
    copy, so a mismatch leaves the net unchanged. Returns the names of the layers that got
    weights. NaN/infinite weights are logged; with `report`, so are learnable layers the
    file did not cover (an error when `strict`) and skipped file layers (weights_report)."""
    from .weights_report import report_load, uncovered_layers, warn_nonfinite

    by_name = {}
    for layer in net.layers:
        by_name.setdefault(layer.name, layer)
    pending = []
    for src in net_param.layer:
        target = by_name.get(src.name)
        if target is None:
            continue
        if len(src.blobs) != len(target.blobs):
            raise WeightsError(
                f"{source}: layer '{src.name}' has {len(src.blobs)} blob(s) in the file but "
                f"{len(target.blobs)} in the net ({target.type}); rename the layer in the net "
                "to learn it from scratch")
        for j, (blob, blob_proto) in enumerate(zip(target.blobs, src.blobs)):
            shape = proto_shape(blob_proto)
            if not shapes_match(shape, blob.shape):
                raise WeightsError(
                    f"{source}: cannot copy param {j} of layer '{src.name}': shape mismatch, "
                    f"file has {list(shape)}, net has {list(blob.shape)}; rename the layer in "
                    "the net to learn it from scratch")
            pending.append((blob, blob_proto, src.name, j))
    copied = {name for _, _, name, _ in pending}
    if strict and uncovered_layers(net, copied):
        report_load(net, net_param, copied, source, strict=True)  # raises, nothing copied
    for blob, blob_proto, name, j in pending:
        try:
            array = read_blob_array(blob_proto)
        except WeightsError as exc:
            raise WeightsError(f"{source}: layer '{name}' param {j}: {exc}") from None
        warn_nonfinite(array, source, f"layer '{name}' param {j}")
        blob.data[...] = array.reshape(blob.shape)
    if report:
        report_load(net, net_param, copied, source, strict=strict)
    return copied
