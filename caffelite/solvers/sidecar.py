"""The resume sidecar, PREFIX_iter_N.solverstate.caffelite.json: what Caffe's .solverstate does
not hold and exact resume needs (the smoothed loss, every random generator's state, the data
layers' positions, the nets' layer states), written beside each snapshot and checked against
sidecar_schema.py when read."""
import base64
import json
import logging
import os

import numpy as np

from ..errors import SolverError
from ..formats.binary import atomic_write
from . import lr_policy

logger = logging.getLogger("caffelite")

SIDECAR_SUFFIX = ".caffelite.json"
SIDECAR_FORMAT = "caffelite-solverstate-sidecar"


# -- the sidecar -------------------------------------------------------------------------------
def sidecar_path(state_path):
    return str(state_path) + SIDECAR_SUFFIX


def write_sidecar(state_path, record):
    record = {"format": SIDECAR_FORMAT, "version": 1, **record}
    text = json.dumps(_encode(record), indent=1, sort_keys=True)
    atomic_write(sidecar_path(state_path), text.encode())


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


def restore_sidecar(solver, path, record):
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
