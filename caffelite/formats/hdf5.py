"""Caffe's HDF5 weights (.caffemodel.h5) and solver states (.solverstate.h5), laid out as Caffe
writes them (needs h5py, the `hdf5` extra):

- weights: group `/data`, one group per layer named by the layer (every layer, parameter-less ones
  empty), datasets "0", "1", ... float32 in the blob's shape; a shared parameter is written only by
  its owner; `write_diff` adds `/diff/<layer>/<i>` for every parameter. No attributes.
- state: `iter`, `current_step` int32 of shape (1,); `learned_net` a scalar fixed-length,
  NUL-terminated string; group `history` with datasets "0".."N-1" float32 in the param shapes.

Files are written to memory and then atomically to disk, so a reader never sees a torn file.
"""
import io
import os

import numpy as np

from ..errors import SolverError, WeightsError
from ..proto import caffelite_pb2 as pb
from .binary import HDF5_MAGIC, atomic_write, blob_proto_bytes, proto_field_bytes


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise WeightsError('HDF5 files (.caffemodel.h5, .solverstate.h5) need h5py: '
                           'pip install "caffelite[hdf5]"') from None
    return h5py


def is_hdf5(path):
    """Whether the file starts with HDF5's signature (Caffe's H5Fis_hdf5 test)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(HDF5_MAGIC)) == HDF5_MAGIC
    except OSError:
        return False


def _write_file(path, fill):
    """Build an HDF5 file in memory with fill(h5py.File), then write it atomically."""
    h5py = h5py_module()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    atomic_write(os.fspath(path), buffer.getvalue())


def _open(path, kind):
    h5py = h5py_module()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{kind} file '{path}' not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{path}: not a readable HDF5 file ({exc})") from None


# -- weights ------------------------------------------------------------------------------------
def _net_param_ids(net):
    """{(layer index, blob index): net param id} and the owner list, from the net's wiring."""
    wiring = net._wiring
    ids = {pair: k for k, pair in enumerate(wiring.param_layer_indices)}
    return ids, wiring.param_owners


def save_caffemodel_h5(net, path, write_diff=False):
    """Caffe's Net::ToHDF5: /data/<layer>/<i> for owned params (and /diff for all with
    write_diff)."""
    ids, owners = _net_param_ids(net)

    def fill(f):
        data = f.create_group("data")
        diff = f.create_group("diff") if write_diff else None
        for li, layer in enumerate(net.layers):
            if layer.name in data:  # a repeated layer name: Caffe's H5Gcreate would fail
                raise WeightsError(f"{path}: two layers are named '{layer.name}'; HDF5 weights "
                                   f"need unique layer names")
            group = data.create_group(layer.name)
            diff_group = diff.create_group(layer.name) if write_diff else None
            for j, blob in enumerate(layer.blobs):
                if owners[ids[(li, j)]] == -1:
                    group.create_dataset(str(j), data=np.asarray(blob.data, dtype="<f4"))
                if write_diff:
                    diff_group.create_dataset(str(j), data=np.asarray(blob.diff, dtype="<f4"))

    _write_file(path, fill)


def copy_trained_layers_h5(net, path):
    """Caffe's CopyTrainedLayersFromHDF5: every /data/<layer> group naming a layer of the net
    fills its blobs; a missing index is allowed only for a shared (non-owner) parameter; shapes
    must match exactly. All checks run before any copy."""
    ids, owners = _net_param_ids(net)
    index = {layer.name: i for i, layer in enumerate(net.layers)}  # the last of a name wins
    pending = []
    with _open(path, "weights") as f:
        if "data" not in f:
            raise WeightsError(f"{path}: no /data group; not a Caffe .caffemodel.h5")
        for name, group in f["data"].items():
            if name not in index:
                continue
            li = index[name]
            target = net.layers[li]
            if len(group) > len(target.blobs):
                raise WeightsError(f"{path}: layer '{name}' has {len(group)} blob(s) in the file "
                                   f"but {len(target.blobs)} in the net ({target.type})")
            for j, blob in enumerate(target.blobs):
                if str(j) not in group:
                    if owners[ids[(li, j)]] != -1:
                        continue  # shared: its owner's dataset fills it
                    raise WeightsError(f"{path}: layer '{name}' lacks param {j}; incompatible "
                                       f"number of blobs (the file has {len(group)})")
                array = group[str(j)][()]
                if tuple(array.shape) != tuple(blob.shape):
                    raise WeightsError(f"{path}: cannot copy param {j} of layer '{name}': shape "
                                       f"mismatch, file has {list(array.shape)}, net has "
                                       f"{list(blob.shape)}")
                pending.append((blob, array))
    for blob, array in pending:
        blob.data[...] = array


def read_weights_h5(path):
    """{layer: [array or None per index]} of /data, in the file's link order (by name). A
    None marks an index the file lacks (a shared parameter written by its owner)."""
    out = {}
    with _open(path, "weights") as f:
        if "data" not in f:
            raise WeightsError(f"{path}: no /data group; not a Caffe .caffemodel.h5")
        for name, group in f["data"].items():
            count = max((int(k) + 1 for k in group), default=0)
            out[name] = [group[str(j)][()] if str(j) in group else None for j in range(count)]
    return out


def write_weights_h5(layers, path):
    """Write {layer: [array...]} as /data/<layer>/<i> (for conversion without a net)."""
    def fill(f):
        data = f.create_group("data")
        for name, arrays in layers.items():
            group = data.create_group(name)
            for j, array in enumerate(arrays):
                if array is not None:
                    group.create_dataset(str(j), data=np.asarray(array, dtype="<f4"))

    _write_file(path, fill)


def net_param_bytes_from_h5(path, name=""):
    """A binary NetParameter (layers with name and blobs only) of a .caffemodel.h5; a layer
    lacking an index (shared parameters) cannot be written without the net."""
    field = proto_field_bytes
    chunks = [field(1, name.encode())] if name else []
    for layer, arrays in read_weights_h5(path).items():
        if any(a is None for a in arrays):
            raise WeightsError(f"{path}: layer '{layer}' shares parameters (index "
                               f"{arrays.index(None)} is written by another layer); convert "
                               f"with --model NET so the net says which")
        body = field(1, layer.encode()) + b"".join(field(7, blob_proto_bytes(a))
                                                  for a in arrays)
        chunks.append(field(100, body))
    return b"".join(chunks)


def layers_from_net_param(net_param):
    """{layer: [array...]} from a NetParameter with blobs (a .caffemodel)."""
    from .binary import read_blob_array

    out = {}
    for layer in net_param.layer:
        if layer.name not in out:
            out[layer.name] = [read_blob_array(b) for b in layer.blobs]
    return out


# -- solver state ---------------------------------------------------------------------------
def _fixed_string_dataset(f, name, text):
    """A scalar fixed-length NUL-terminated C string, as H5LTmake_dataset_string writes."""
    h5py = h5py_module()
    raw = text.encode() + b"\0"
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(raw))
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dataset = h5py.h5d.create(f.id, name.encode(), string_type, space)
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw)}"),
                  mtype=string_type)


def write_solver_state_h5(path, iteration, learned_net, history, current_step):
    """Caffe's SnapshotSolverStateToHDF5."""
    def fill(f):
        f.create_dataset("iter", data=np.array([iteration], dtype="<i4"))
        _fixed_string_dataset(f, "learned_net", learned_net)
        f.create_dataset("current_step", data=np.array([current_step], dtype="<i4"))
        group = f.create_group("history")
        for k, h in enumerate(history):
            group.create_dataset(str(k), data=np.asarray(h, dtype="<f4"))

    _write_file(path, fill)


def read_solver_state_h5(path):
    """A .solverstate.h5 as a pb.SolverState (history as BlobProtos), so restoring shares one
    path with the binary format."""
    try:
        f = _open(path, "snapshot")
    except WeightsError as exc:
        raise SolverError(str(exc)) from None
    with f:
        missing = [k for k in ("iter", "history") if k not in f]
        if missing:
            raise SolverError(f"{path}: not a Caffe .solverstate.h5 (no {', '.join(missing)})")
        iteration = int(np.asarray(f["iter"][()]).reshape(-1)[0])
        step = int(np.asarray(f["current_step"][()]).reshape(-1)[0]) if "current_step" in f \
            else 0
        learned = None
        if "learned_net" in f:
            raw = f["learned_net"][()]
            learned = (raw if isinstance(raw, bytes) else bytes(raw)).rstrip(b"\0").decode()
        group = f["history"]
        history = [group[str(k)][()] for k in range(len(group))]
    data = pb.SolverState(iter=iteration).SerializeToString()
    if learned is not None:
        data += pb.SolverState(learned_net=learned).SerializeToString()
    data += b"".join(proto_field_bytes(3, blob_proto_bytes(h)) for h in history)
    data += pb.SolverState(current_step=step).SerializeToString()
    return pb.SolverState.FromString(data)


# -- conversion -----------------------------------------------------------------------------
def is_weights_path(path):
    """Whether a path names weights (.caffemodel, .caffemodel.h5, .h5) rather than a config."""
    name = os.fspath(path).lower()
    return name.endswith((".caffemodel", ".caffemodel.h5", ".h5", ".hdf5"))


def convert_weights(src, dst, model=None):
    """Copy weights between .caffemodel and .caffemodel.h5 (the format follows dst's name).
    With `model` (a net config), the net decides layer order and which params are shared;
    without it the layers are copied by name as they are. Returns a one-line description."""
    src, dst = os.fspath(src), os.fspath(dst)
    to_h5 = dst.lower().endswith((".h5", ".hdf5"))
    if model is not None:
        from ..net import Net

        net = Net(model, phase=pb.TEST, weights=src)
        if to_h5:
            save_caffemodel_h5(net, dst)
        else:
            net.save(dst)
        return f"wrote {dst} ({'HDF5' if to_h5 else 'binary proto'}, layers of {model})"
    if is_hdf5(src):
        if to_h5:
            write_weights_h5(read_weights_h5(src), dst)
        else:
            atomic_write(dst, net_param_bytes_from_h5(src))
    else:
        from .binary import load_caffemodel

        param = load_caffemodel(src)
        if to_h5:
            write_weights_h5(layers_from_net_param(param), dst)
        else:
            atomic_write(dst, param.SerializeToString())
    return f"wrote {dst} ({'HDF5' if to_h5 else 'binary proto'})"


def is_state_path(path):
    return os.fspath(path).lower().endswith((".solverstate", ".solverstate.h5"))


def convert_state(src, dst):
    """A solver state between .solverstate and .solverstate.h5 (dst's name picks the format).
    learned_net keeps naming the weights it named (either format restores); the resume sidecar,
    if any, is copied beside dst."""
    import shutil

    from ..solvers import snapshot as snap
    from ..solvers.sidecar import sidecar_path
    from .binary import read_blob_array

    src, dst = os.fspath(src), os.fspath(dst)
    state = snap.read_solver_state(src)
    history = [read_blob_array(blob) for blob in state.history]
    snap.write_solver_state(dst, state.iter, state.learned_net, history, state.current_step)
    if os.path.isfile(sidecar_path(src)):
        shutil.copyfile(sidecar_path(src), sidecar_path(dst))
    kind = "HDF5" if dst.lower().endswith(".h5") else "binary proto"
    return f"wrote {dst} ({kind} solver state, iteration {state.iter})"
