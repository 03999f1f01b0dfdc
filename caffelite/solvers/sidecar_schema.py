"""The resume sidecar's schema: what each field written by sidecar.sidecar_record must look
like before a resume trusts it. A file that does not fit is named, field and reason, and the
resume falls back to Caffe's own (inexact) one instead of failing half-way through.

Fields not listed here are allowed (later versions add some); listed ones are optional except
`iter`, but typed when present."""
import logging
import numbers

import numpy as np

logger = logging.getLogger("caffelite")


class SidecarInvalid(ValueError):
    """`field` (a dotted path) does not fit the schema; str() says why."""

    def __init__(self, field, why):
        super().__init__(f"field '{field}' {why}")
        self.field = field


def _count(value, field):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise SidecarInvalid(field, f"must be a whole number >= 0, not {_show(value)}")


def _number(value, field):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not np.isfinite(float(value))):
        raise SidecarInvalid(field, f"must be a finite number, not {_show(value)}")


def _text(value, field):
    if not isinstance(value, str):
        raise SidecarInvalid(field, f"must be a string, not {_show(value)}")


def _mapping(value, field):
    if not isinstance(value, dict):
        raise SidecarInvalid(field, f"must be an object, not {_show(value)}")


def _list(value, field):
    if not isinstance(value, list):
        raise SidecarInvalid(field, f"must be a list, not {_show(value)}")


def _show(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _rng_state(value, field):
    """A NumPy bit-generator state: named generator, every integer unsigned."""
    _mapping(value, field)
    _text(value.get("bit_generator"), field + ".bit_generator")

    def unsigned(item, where):
        if isinstance(item, dict):
            for key, sub in item.items():
                unsigned(sub, f"{where}.{key}")
        elif isinstance(item, (list, tuple)):
            for k, sub in enumerate(item):
                unsigned(sub, f"{where}[{k}]")
        elif isinstance(item, np.ndarray):
            if item.dtype.kind == "i" and item.size and item.min() < 0:
                raise SidecarInvalid(where, "must hold no negative numbers")
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool) and item < 0:
            raise SidecarInvalid(where, f"must be >= 0 in a random state, not {item}")
    unsigned(value, field)


def _net_record(value, field):
    _mapping(value, field)
    states = value.get("layer_states", {})
    _mapping(states, field + ".layer_states")
    for name, state in states.items():
        _mapping(state, f"{field}.layer_states.{name}")
        if "cursor" in state:
            _count(state["cursor"], f"{field}.layer_states.{name}.cursor")
    rng = value.get("rng", {})
    _mapping(rng, field + ".rng")
    if rng.get("net") is not None:
        _rng_state(rng["net"], field + ".rng.net")
    layers = rng.get("layers", {})
    _mapping(layers, field + ".rng.layers")
    for name, state in layers.items():
        _rng_state(state, f"{field}.rng.layers.{name}")


def _smoothed(value, field):
    _mapping(value, field)
    losses = value.get("losses", [])
    _list(losses, field + ".losses")
    for k, loss in enumerate(losses):
        _number(loss, f"{field}.losses[{k}]")
    if "value" in value:
        _number(value["value"], field + ".value")
    if "start_iter" in value:
        _count(value["start_iter"], field + ".start_iter")


FIELDS = {"type": _text, "iter": _count, "current_step": _count, "lr": _number,
          "learned_net": _text, "history_count": _count, "smoothed_loss": _smoothed,
          "train_net": _net_record}


def check_sidecar(record):
    """Raise SidecarInvalid for the first field of a decoded sidecar that does not fit."""
    if "iter" not in record:
        raise SidecarInvalid("iter", "is missing")
    for name, check in FIELDS.items():
        if name in record:
            check(record[name], name)
    tests = record.get("test_nets", [])
    _list(tests, "test_nets")
    for k, entry in enumerate(tests):
        _net_record(entry, f"test_nets[{k}]")


def check_positions(net, entry, field):
    """Data cursors inside the data set of the net's layer (a cursor past the end would be
    taken modulo its size without a word)."""
    for name, state in (entry or {}).get("layer_states", {}).items():
        layer = net.layer_dict.get(name)
        images = getattr(layer, "images", None)
        if "cursor" in state and images is not None and state["cursor"] >= len(images):
            raise SidecarInvalid(f"{field}.layer_states.{name}.cursor",
                                 f"is {state['cursor']}, past the {len(images)} items of "
                                 f"layer '{name}'")


def valid_sidecar(solver, path, sidecar):
    """The sidecar (read from `path`) when it fits the schema and the solver's nets; None,
    Caffe's inexact resume, with a warning naming the field when it does not."""
    if sidecar is None:
        return None
    try:
        check_sidecar(sidecar)
        check_positions(solver.net, sidecar.get("train_net"), "train_net")
        for k, (net, entry) in enumerate(zip(solver.test_nets, sidecar.get("test_nets", []))):
            check_positions(net, entry, f"test_nets[{k}]")
    except SidecarInvalid as exc:
        logger.warning("%s: resume sidecar ignored: %s; resuming as Caffe does (data from the "
                       "start, fresh random state, smoothed loss restarted)", path, exc)
        return None
    return sidecar
