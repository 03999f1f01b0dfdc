"""Snapshot files: PREFIX_iter_N.caffemodel/.solverstate in Caffe's format, plus a JSON sidecar
PREFIX_iter_N.solverstate.caffelite.json holding what Caffe does not save (exact resume)."""
import base64
import json
import logging
import os
import tempfile

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import SolverError
from ..proto import caffelite_pb2 as pb
from . import lr_policy

logger = logging.getLogger("caffelite")

SIDECAR_SUFFIX = ".caffelite.json"
SIDECAR_FORMAT = "caffelite-solverstate-sidecar"


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


# -- the sidecar -------------------------------------------------------------------------------
def sidecar_path(state_path):
    return str(state_path) + SIDECAR_SUFFIX


def write_sidecar(state_path, record):
    record = {"format": SIDECAR_FORMAT, "version": 1, **record}
    text = json.dumps(_encode(record), indent=1, sort_keys=True)
    write_atomic(sidecar_path(state_path), text.encode())


def read_sidecar(state_path):
    """The sidecar record beside a state, or None (BVLC's states have none)."""
    path = sidecar_path(state_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = _decode(json.load(f))
    except (OSError, ValueError, TypeError, KeyError) as exc:  # bad JSON, arrays, dtypes
        raise SolverError(f"{path}: unreadable resume sidecar ({exc}); delete it to resume as "
                          f"Caffe does (data from the start, fresh random state)") from None
    if not isinstance(record, dict) or record.get("format") != SIDECAR_FORMAT:
        raise SolverError(f"{path} is not a caffelite resume sidecar")
    return record


def _encode(value):
    """JSON-safe copy: ndarrays as base64 bytes + dtype + shape, NumPy scalars as numbers."""
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {"__ndarray__": base64.b64encode(array.tobytes()).decode("ascii"),
                "dtype": array.dtype.str, "shape": list(array.shape)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            raw = base64.b64decode(value["__ndarray__"])
            return np.frombuffer(raw, dtype=value["dtype"]).reshape(value["shape"]).copy()
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


# -- random state ------------------------------------------------------------------------------
def rng_states(net):
    """Bit-generator states of the net's rng and of any layer holding a generator of its own."""
    states = {"net": _rng_state(getattr(net, "rng", None)), "layers": {}}
    seen = {id(getattr(net, "rng", None))}
    for name, layer in zip(net.layer_names, net.layers):
        rng = getattr(layer, "rng", None)
        if rng is not None and id(rng) not in seen:
            seen.add(id(rng))
            states["layers"][name] = _rng_state(rng)
    return states


def load_rng_states(net, states):
    """Put saved generator states back; returns the names that could not be restored."""
    missing = []
    if states.get("net") is not None and getattr(net, "rng", None) is not None:
        net.rng.bit_generator.state = states["net"]
    layers = dict(zip(net.layer_names, net.layers))
    for name, state in states.get("layers", {}).items():
        layer = layers.get(name)
        if layer is None or getattr(layer, "rng", None) is None:
            missing.append(name)
        else:
            layer.rng.bit_generator.state = state
    return missing


def _rng_state(rng):
    return None if rng is None else rng.bit_generator.state


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
        _restore_sidecar(solver, path, sidecar)


def _check_counters(state, path):
    for name in ("iter", "current_step"):
        value = getattr(state, name)
        if value < 0:
            raise SolverError(f"{path}: {name} is {value}; a .solverstate counts from 0 (a "
                              f"damaged or edited file?), resuming it would overwrite the "
                              f"snapshots of the iterations it repeats")


def sidecar_record(solver, model_path):
    """What Caffe's SolverState lacks for an exact resume."""
    rate, _ = lr_policy.learning_rate(solver.param, solver.iter, solver.current_step)
    return {
        "type": solver.type, "iter": solver.iter, "current_step": solver.current_step,
        "lr": float(np.float32(rate)), "learned_net": model_path,
        "history_count": len(solver.history),
        "smoothed_loss": {"losses": list(map(float, solver.losses)),
                          "value": float(solver.smoothed_loss),
                          "start_iter": solver._loss_start_iter},
        "train_net": net_record(solver.net),
        "test_nets": [net_record(net) for net in solver.test_nets],
    }


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


def _restore_sidecar(solver, path, record):
    if record.get("iter") != solver.iter:
        logger.warning("%s: sidecar is for iteration %s, state for %d; data positions and "
                       "random state not restored", path, record.get("iter"), solver.iter)
        return
    smoothed = record.get("smoothed_loss") or {}
    solver.losses = list(smoothed.get("losses", []))
    solver.smoothed_loss = float(smoothed.get("value", 0.0))
    solver._loss_start_iter = int(smoothed.get("start_iter", solver.iter))
    solver._keep_losses = True
    _load_net_record(solver.net, record.get("train_net"), path, "train net")
    tests = record.get("test_nets") or []
    if len(tests) != len(solver.test_nets):
        logger.warning("%s: sidecar has %d test nets, solver %d; test data positions not "
                       "restored", path, len(tests), len(solver.test_nets))
        return
    for k, (net, entry) in enumerate(zip(solver.test_nets, tests)):
        _load_net_record(net, entry, path, f"test net #{k}")


def net_record(net):
    """Data positions and random streams of one net."""
    return {"layer_states": net.layer_states(), "rng": rng_states(net)}


def _load_net_record(net, entry, path, what):
    if not entry:
        return
    try:
        net.load_layer_states(entry.get("layer_states") or {})
        missing = load_rng_states(net, entry.get("rng") or {})
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        logger.warning("%s: %s state not restored (%s); the net differs from the one saved",
                       path, what, exc)
        return
    if missing:
        logger.warning("%s: %s random state of %s not restored (no such layers)", path, what,
                       ", ".join(missing))
