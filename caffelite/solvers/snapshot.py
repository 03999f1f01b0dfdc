"""Snapshot files: PREFIX_iter_N.caffemodel/.solverstate in Caffe's format, plus a JSON sidecar
PREFIX_iter_N.solverstate.caffelite.json holding what Caffe does not save (exact resume)."""
import logging
import os
import tempfile

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import SolverError
from ..proto import caffelite_pb2 as pb
from .sidecar import read_sidecar, restore_sidecar, sidecar_path

logger = logging.getLogger("caffelite")



# -- snapshot_prefix ---------------------------------------------------------------------------
def check_snapshot_prefix(prefix):
    """Create the prefix's directory and probe it with a temporary file, so an unwritable
    prefix fails at start, not after hours of training (Caffe's CheckSnapshotWritePermissions)."""
    directory = os.path.dirname(prefix) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".caffelite-probe-"):
            pass
    except OSError as exc:
        raise SolverError(f"cannot write snapshots to '{prefix}' ({exc.strerror or exc}); set "
                          f"snapshot_prefix to a writable path") from None


def snapshot_filename(prefix, iteration, extension):
    return f"{prefix}_iter_{iteration}{extension}"


# -- writing -----------------------------------------------------------------------------------
def write_atomic(path, data_bytes):
    """io.atomic_write: temp file in the target directory, fsync, rename (never a torn file)."""
    from ..formats.binary import atomic_write

    atomic_write(path, data_bytes)


def save_caffemodel(net, path, write_diff=False):
    """The net's .caffemodel (io.save_caffemodel writes it atomically from packed floats), or
    its .caffemodel.h5 for a name ending in .h5 (snapshot_format: HDF5)."""
    if str(path).endswith(".h5"):
        from ..formats.hdf5 import save_caffemodel_h5

        save_caffemodel_h5(net, path, write_diff=write_diff)
        return
    from ..formats.binary import save_caffemodel as save

    save(net, path, write_diff=write_diff)


def write_solver_state(path, iteration, learned_net, history, current_step):
    """The .solverstate, or Caffe's .solverstate.h5 layout for a name ending in .h5."""
    if str(path).endswith(".h5"):
        from ..formats.hdf5 import write_solver_state_h5

        write_solver_state_h5(path, iteration, learned_net, history, current_step)
        return
    write_atomic(path, solver_state_bytes(iteration, learned_net, history, current_step))


def check_hdf5(where):
    """snapshot_format: HDF5 needs h5py: say so when the solver is built, not at the first
    snapshot."""
    from ..errors import WeightsError
    from ..formats.hdf5 import h5py_module

    try:
        h5py_module()
    except WeightsError as exc:
        raise SolverError(f"{where}: snapshot_format: HDF5: {exc}") from None


def solver_state_bytes(iteration, learned_net, history, current_step):
    """SolverState{iter, learned_net, history[], current_step} serialised in field order, the
    history blobs from packed float bytes (protobuf's repeated-field API is slow)."""
    from ..formats.binary import blob_proto_bytes, proto_field_bytes

    head = pb.SolverState(iter=int(iteration), learned_net=learned_net).SerializeToString()
    blobs = b"".join(proto_field_bytes(3, blob_proto_bytes(np.asarray(h))) for h in history)
    tail = pb.SolverState(current_step=int(current_step)).SerializeToString()
    return head + blobs + tail


# -- reading -----------------------------------------------------------------------------------
def read_solver_state(path):
    """The SolverState in path; SolverError for a missing file, a .caffemodel or an HDF5 state."""
    path = str(path)
    if path.endswith(".caffemodel") or path.endswith(".caffemodel.h5"):
        raise SolverError(f"{path} is a .caffemodel; --snapshot needs the .solverstate written "
                          f"beside it")
    if not os.path.isfile(path):
        raise SolverError(f"snapshot file '{path}' not found")
    if path.endswith(".h5"):  # Caffe's rule: the name picks the HDF5 reader
        from ..formats.hdf5 import read_solver_state_h5

        return read_solver_state_h5(path)
    with open(path, "rb") as f:
        data = f.read()
    state = pb.SolverState()
    try:
        state.ParseFromString(data)
    except DecodeError as exc:
        raise SolverError(f"{path}: not a valid .solverstate (truncated?): {exc}") from None
    if _looks_like_caffemodel(state, data):
        raise SolverError(f"{path} is a .caffemodel, not a solver state; --snapshot needs the "
                          f".solverstate written beside it")
    return state


def _looks_like_caffemodel(state, data):
    """A NetParameter parsed as SolverState keeps its layers as unknown fields and has no
    history: recognise it so the error says what to pass instead."""
    if len(state.history) or state.HasField("learned_net"):
        return False
    net = pb.NetParameter()
    try:
        net.ParseFromString(data)
    except DecodeError:
        return False
    return len(net.layer) > 0 or len(net.layers) > 0


def find_learned_net(learned_net, state_path):
    """The caffemodel a state names. A relative path was relative to the directory training ran
    in, so the file of that name beside the state (written with it) comes first, then the path
    from the working directory; an absolute path is used as it is when it exists. BVLC's
    lenet_iter_5000.solverstate names "examples/mnist/lenet_iter_5000.caffemodel"."""
    beside = os.path.join(os.path.dirname(os.path.abspath(state_path)),
                          os.path.basename(learned_net))
    if os.path.isabs(learned_net):
        candidates = [learned_net, beside]
    else:
        candidates = [beside, learned_net]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise SolverError(f"{state_path}: its weights file '{learned_net}' was not found (nor "
                      f"'{beside}'); put the .caffemodel beside the .solverstate")


# -- restore -----------------------------------------------------------------------------------
def restore_solver(solver, path):
    """Solver.restore: check everything first, so a refused state changes nothing."""
    state = read_solver_state(path)
    _check_counters(state, path)
    from .sidecar_schema import valid_sidecar

    sidecar = valid_sidecar(solver, sidecar_path(path), read_sidecar(path))
    _check_history(solver, path, state, sidecar)
    if state.HasField("learned_net"):
        model = find_learned_net(state.learned_net, path)
        solver.net.copy_from(model)  # either format, as Caffe's CopyTrainedLayersFrom
    else:
        logger.warning("%s names no weights file (learned_net): iteration %d and the solver "
                       "history are restored, the weights are the net's own (initial, or "
                       "loaded before the restore)", path, state.iter)
    from ..formats.binary import read_blob_array
    from ..formats.weights_report import warn_nonfinite

    names = _param_names(solver)
    for k, (h, blob) in enumerate(zip(solver.history, state.history)):
        array = read_blob_array(blob)
        warn_nonfinite(array, path, f"history blob {k} ({names[k % len(names)]})")
        h[...] = solver.xp.asarray(array.reshape(h.shape), dtype=h.dtype)
    solver.iter = state.iter
    solver.current_step = state.current_step
    if sidecar is not None:
        restore_sidecar(solver, path, sidecar)


def _check_counters(state, path):
    for name in ("iter", "current_step"):
        value = getattr(state, name)
        if value < 0:
            raise SolverError(f"{path}: {name} is {value}; a .solverstate counts from 0 (a "
                              f"damaged or edited file?), resuming it would overwrite the "
                              f"snapshots of the iterations it repeats")


def _check_history(solver, path, state, sidecar):
    have, need = len(state.history), len(solver.history)
    other = sidecar.get("type") if sidecar else None
    if other and other != solver.type:
        raise SolverError(f"{path} was written by the {other} solver; this is the "
                          f"{solver.type} solver: set type: \"{other}\" in the solver config to "
                          f"resume it")
    if have != need:
        raise SolverError(f"{path}: this state has {have} history blobs, the {solver.type} "
                          f"solver needs {need} (is it a state of another solver type?)")
    from ..blob import proto_shape

    names = _param_names(solver)
    for k, (h, blob) in enumerate(zip(solver.history, state.history)):
        shape = proto_shape(blob)
        if int(np.prod(shape, dtype=np.int64)) != h.size:
            raise SolverError(f"{path}: history blob {k} has shape {shape} but parameter "
                              f"{names[k % len(names)]} has shape {tuple(h.shape)}; the state "
                              f"belongs to another net")


def _param_names(solver):
    owners = {id(b): f"{layer}[{j}]" for layer, blobs in solver.net.params.items()
              for j, b in enumerate(blobs)}
    return [owners.get(id(b), f"#{k}") for k, b in enumerate(solver.learnable_params)] or ["?"]


