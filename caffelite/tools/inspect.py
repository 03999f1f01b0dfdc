"""Recognise a Caffe/caffelite file by its content and summarise it (`caffelite inspect`).

Text files are configs: the syntax (prototxt, YAML, JSON) and the kind (net or solver: a solver
has base_lr, net, max_iter ...) come from the text, the extension only breaks ties. Binary files
are parsed as each message Caffe writes and judged by plausibility: a .caffemodel is a
NetParameter whose layers have names or types; a .solverstate is a SolverState (iter, history,
learned_net) with no unknown fields; a .binaryproto is one BlobProto whose data fits its shape.
HDF5 snapshots are recognised by their signature and summarised with h5py when it is installed.
"""
import os
import re
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from ..blob import proto_shape
from ..errors import CaffeliteError, WeightsError, read_bytes
from ..formats.binary import HDF5_MAGIC
from ..proto import caffelite_pb2 as pb

KIND_TITLES = {
    "net": "net config", "solver": "solver config",
    "caffemodel": ".caffemodel (binary NetParameter: layers and weights)",
    "solverstate": ".solverstate (binary SolverState: iteration and solver history)",
    "binaryproto": ".binaryproto (one BlobProto)", "hdf5": "HDF5 file",
}
# What a name promises, to say so when the content disagrees.
_SUFFIX_KINDS = {".caffemodel": "caffemodel", ".solverstate": "solverstate",
                 ".binaryproto": "binaryproto", ".h5": "hdf5", ".hdf5": "hdf5",
                 ".prototxt": "config", ".pbtxt": "config", ".yaml": "config", ".yml": "config",
                 ".json": "config"}
_SYNTAX_BY_SUFFIX = {".prototxt": "prototxt", ".pbtxt": "prototxt", ".yaml": "yaml",
                     ".yml": "yaml", ".json": "json"}
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)  # the superblock may follow a user block


@dataclass
class Report:
    """What a file is (`kind`, `title`), summary `lines` and `hints` for the user."""

    path: str
    kind: str
    title: str
    lines: list = field(default_factory=list)
    hints: list = field(default_factory=list)

    def text(self):
        out = [f"{self.path}: {self.title}"]
        out += [f"  {line}" for line in self.lines]
        out += [f"hint: {hint}" for hint in self.hints]
        return "\n".join(out)


# -- detection ---------------------------------------------------------------------------------
def read_file(path):
    return read_bytes(os.fspath(path))


def is_hdf5(raw):
    return any(raw[k:k + len(HDF5_MAGIC)] == HDF5_MAGIC for k in _HDF5_OFFSETS)


def as_text(raw):
    """The file as text when it is UTF-8 without control characters; None for binary data."""
    if _CONTROL.search(raw[:4096].decode("latin-1")):
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


def sniff_syntax(text, path):
    """ "prototxt", "yaml" or "json": the first that parses, trying the extension's first."""
    order = ["prototxt", "json", "yaml"]
    preferred = _SYNTAX_BY_SUFFIX.get(os.path.splitext(path)[1].lower())
    if preferred:
        order.remove(preferred)
        order.insert(0, preferred)
    for syntax in order:
        if _parses(text, syntax):
            return syntax
    # Nothing parses: let the likeliest syntax's reader report the error with its line.
    if preferred:
        return preferred
    stripped = text.lstrip()
    return "json" if stripped.startswith("{") else "prototxt" if "{" in text else "yaml"


def _parses(text, syntax):
    if syntax == "prototxt":
        for message in (pb.NetParameter(), pb.SolverParameter()):
            try:
                text_format.Parse(text, message)
                return True
            except text_format.ParseError:
                pass
        return False
    from ..formats.config_errors import load_json, load_yaml

    try:
        tree, _ = (load_json if syntax == "json" else load_yaml)(text, "<config>")
    except CaffeliteError:
        return False
    return isinstance(tree, dict)


def _unknown_fields(message):
    from google.protobuf.unknown_fields import UnknownFieldSet

    return len(UnknownFieldSet(message))


def _parse(message_type, raw):
    """(message, None) or (None, the parser's complaint)."""
    message = message_type()
    try:
        message.ParseFromString(raw)
    except (DecodeError, ValueError) as exc:
        return None, str(exc) or type(exc).__name__
    return message, None


def _values(blob):
    return len(blob.data) or len(blob.double_data)


def _blob_fits(blob):
    return _values(blob) == int(np.prod(proto_shape(blob), dtype=np.int64))


def _plausible_model(net):
    layers = list(net.layer) or list(net.layers)
    return bool(layers) and all(lp.name or lp.type for lp in layers)


def _plausible_state(state):
    if _unknown_fields(state):
        return False
    if not (state.HasField("iter") or len(state.history) or state.HasField("learned_net")):
        return False
    return all(_blob_fits(b) for b in state.history)


def _plausible_blob(blob):
    if _unknown_fields(blob) or not _values(blob):
        return False
    return _blob_fits(blob)


def detect_binary(raw, path):
    """(kind, parsed message) of a binary file, or a WeightsError saying it is corrupt."""
    state, state_error = _parse(pb.SolverState, raw)
    if state is not None and _plausible_state(state):
        return "solverstate", state
    net, net_error = _parse(pb.NetParameter, raw)
    if net is not None and _plausible_model(net):
        return "caffemodel", net
    blob, blob_error = _parse(pb.BlobProto, raw)
    if blob is not None and _plausible_blob(blob):
        return "binaryproto", blob
    expected = _SUFFIX_KINDS.get(os.path.splitext(path)[1].lower())
    errors = {"caffemodel": net_error, "solverstate": state_error, "binaryproto": blob_error}
    if expected in errors:
        why = errors[expected] or "it parses, but not as a plausible " + f".{expected}"
        raise WeightsError(f"{path}: not a readable .{expected}: truncated or corrupt ({why})")
    raise WeightsError(f"{path}: not a recognised file ({len(raw):,} bytes of binary data): not a "
                       "net or solver config, .caffemodel, .solverstate, .binaryproto or HDF5 "
                       "snapshot; truncated or corrupt?")


def detect(path, raw=None):
    """The kind of file at path: "net", "solver", "caffemodel", "solverstate", "binaryproto"
    or "hdf5" (a WeightsError/ConfigError when it is none of them or is corrupt)."""
    return _identify(os.fspath(path), read_file(path) if raw is None else raw)[0]


def _identify(path, raw):
    if not raw:
        raise CaffeliteError(f"{path}: empty file")
    if is_hdf5(raw):
        return "hdf5", None
    text = as_text(raw)
    if text is not None:
        from ..formats.config import config_kind

        syntax = sniff_syntax(text, path)
        return config_kind(text, syntax), (text, syntax)
    return detect_binary(raw, path)


# -- summaries ---------------------------------------------------------------------------------
def inspect_file(path):
    """A Report on the file at path: what it is, a summary, hints."""
    path = os.fspath(path)
    raw = read_file(path)
    kind, parsed = _identify(path, raw)
    report = Report(path, kind, KIND_TITLES[kind])
    expected = _SUFFIX_KINDS.get(os.path.splitext(path)[1].lower())
    if expected and expected != kind and not (expected == "config" and kind in ("net", "solver")):
        named = "config" if expected == "config" else "." + expected
        report.lines.append(f"note: named like a {named} file, but the content is a "
                            f"{KIND_TITLES[kind].split(' (')[0]}")
    summarise = {"net": _net, "solver": _solver, "caffemodel": _caffemodel,
                 "solverstate": _solverstate, "binaryproto": _binaryproto, "hdf5": _hdf5}[kind]
    summarise(report, parsed, raw)
    return report


def plural(n, word):
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def fmt_shape(shape):
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def _count(shape):
    return int(np.prod(shape, dtype=np.int64))


def _table(rows, header):
    widths = [max(len(str(r[k])) for r in [header] + rows) for k in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
            for r in [header] + rows]


def _phase_rules(lp):
    def rule(r):
        parts = [pb.Phase.Name(r.phase)] if r.HasField("phase") else []
        parts += [f"stage {s}" for s in r.stage] + [f"not_stage {s}" for s in r.not_stage]
        parts += [f"min_level {r.min_level}"] if r.HasField("min_level") else []
        parts += [f"max_level {r.max_level}"] if r.HasField("max_level") else []
        return " ".join(parts)
    rules = [rule(r) for r in lp.include] + [f"not {rule(r)}" for r in lp.exclude]
    return ", ".join(rules)


def _read_config(report, parsed, kind):
    from ..formats.config import parse_net_text, parse_solver_text

    text, syntax = parsed
    reader = parse_net_text if kind == "net" else parse_solver_text
    message = reader(text, report.path, fmt=syntax)
    report.title += f" ({syntax})"
    return message


class _NotBuilt(Exception):
    """The net is described without being built (its reason is the message)."""


def _net(report, parsed, raw):
    from ..formats.config import resolve_net_paths
    from ..net_filter import layer_included

    param = _read_config(report, parsed, "net")
    report.title += f', net "{param.name}"' if param.name else ""
    state = pb.NetState()
    state.CopyFrom(param.state)
    state.phase = pb.TEST
    kept, others = pb.NetParameter(), []
    for lp in param.layer:
        try:
            included = layer_included(lp, state)
        except CaffeliteError:
            included = True  # the build below reports the conflicting rules
        if included:
            kept.layer.add().CopyFrom(lp)
        else:
            others.append(f"{lp.name} ({_phase_rules(lp)})")
    report.lines.append(f"{plural(len(param.layer), 'layer')}; {len(kept.layer)} in phase TEST"
                        + (f"; not in TEST: {', '.join(others)}" if others else ""))
    python = [f"'{lp.name}' (module '{lp.python_param.module}')" for lp in kept.layer
              if lp.type == "Python"]
    try:
        if python:  # building would import and run the module: inspect never runs code
            raise _NotBuilt(f"shapes unavailable: Python layer {', '.join(python)}: inspect "
                            "does not import its code (`caffelite time` builds the net)")
        from ..net import Net

        net = Net(resolve_net_paths(param, report.path), phase=pb.TEST)
    except Exception as exc:  # best effort: a missing data source still leaves the layer list
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        report.lines.append(first if isinstance(exc, _NotBuilt) else
                            f"shapes unavailable: the TEST net does not build here ({first})")
        rows = [[lp.name, lp.type, f"{', '.join(lp.bottom)} -> {', '.join(lp.top)}".strip()]
                for lp in kept.layer]
        report.lines += _table(rows, ["layer", "type", "bottom -> top"])
        return
    rows, own = [], iter(kept.layer)
    configured_names = {lp.name for lp in kept.layer}
    for i, layer in enumerate(net.layers):
        if layer.type == "Split" and layer.name not in configured_names:
            continue  # inserted by the net for a blob used twice
        lp = next(own, layer.layer_param)  # the configured names, not the split-renamed ones
        shapes = ", ".join(fmt_shape(b.shape) for b in net.top_vecs[i])
        params = sum(_count(b.shape) for b in layer.blobs)
        rows.append([lp.name, lp.type, f"{', '.join(lp.bottom)} -> {', '.join(lp.top)}".strip(),
                     shapes, f"{params:,}"])
    report.lines += _table(rows, ["layer", "type", "bottom -> top", "top shape", "params"])
    total = sum(_count(b.shape) for b in net.learnable_params)
    report.lines.append(f"total params: {total:,} (shared parameters counted once)")


def _solver(report, parsed, raw):
    from ..formats.config import resolve_path
    from ..formats.upgrade import upgrade_snapshot_prefix

    param = upgrade_snapshot_prefix(_read_config(report, parsed, "solver"), report.path)
    policy = param.lr_policy or "(none set)"
    extra = {"step": ("gamma", "stepsize"), "exp": ("gamma",), "inv": ("gamma", "power"),
             "multistep": ("gamma",), "poly": ("power",), "sigmoid": ("gamma", "stepsize")}
    details = [f"{k} {getattr(param, k):g}" for k in extra.get(param.lr_policy, ())]
    if param.lr_policy == "multistep":
        details.append(f"stepvalue {list(param.stepvalue)}")
    report.lines.append(f"type: {param.type}")
    report.lines.append(f"lr_policy: {policy}" + (f" ({', '.join(details)})" if details else ""))
    report.lines.append(f"base_lr: {param.base_lr:g}   max_iter: {param.max_iter:,}   "
                        f"momentum: {param.momentum:g}   weight_decay: {param.weight_decay:g}"
                        f" ({param.regularization_type})"
                        + (f"   iter_size: {param.iter_size}" if param.iter_size > 1 else ""))
    if len(param.test_iter):
        report.lines.append(f"test: {list(param.test_iter)} iterations every "
                            f"{param.test_interval:,} training iterations")
    if param.snapshot:
        fmt = pb.SolverParameter.SnapshotFormat.Name(param.snapshot_format)
        report.lines.append(f"snapshot: every {param.snapshot:,} iterations to "
                            f"{param.snapshot_prefix}_iter_N ({fmt})")
    nets = [(k, getattr(param, k)) for k in ("net", "train_net") if param.HasField(k)]
    nets += [("test_net", name) for name in param.test_net]
    for key, name in nets:
        resolved = resolve_path(name, report.path)
        where = (" (not found)" if not os.path.exists(resolved) else
                 "" if resolved == name else f" (found at {resolved})")
        report.lines.append(f"{key}: {name}{where}")
    inline = [(k, getattr(param, k)) for k in ("net_param", "train_net_param")
              if param.HasField(k)]
    inline += [("test_net_param", n) for n in param.test_net_param]
    for key, net in inline:
        report.lines.append(f'{key}: inline net "{net.name}" with {len(net.layer)} layers')
    if not nets and not inline:
        report.lines.append("no net: set net (a path) or net_param (inline)")
    report.hints.append(f"train with: caffelite train {report.path}")


def _caffemodel(report, net, raw):
    if len(net.layers):
        from ..formats.binary import load_caffemodel

        net = load_caffemodel(report.path)  # V1 `layers` upgraded to `layer`
    rows, total, with_diff = [], 0, False
    for lp in net.layer:
        for j, blob in enumerate(lp.blobs):
            if not _blob_fits(blob):
                raise WeightsError(f"{report.path}: layer '{lp.name}' blob {j} has shape "
                                   f"{list(proto_shape(blob))} but {_values(blob):,} values: "
                                   "corrupt file")
            with_diff |= bool(len(blob.diff) or len(blob.double_diff))
        count = sum(_count(proto_shape(b)) for b in lp.blobs)
        total += count
        shapes = ", ".join(fmt_shape(proto_shape(b)) for b in lp.blobs) or "-"
        rows.append([lp.name, lp.type, shapes, f"{count:,}"])
    owners = sum(1 for lp in net.layer if len(lp.blobs))
    report.title += f', net "{net.name}"' if net.name else ""
    report.lines.append(f"{plural(len(net.layer), 'layer')}, {owners} with parameters"
                        + ("; diffs saved too" if with_diff else ""))
    report.lines += _table(rows, ["layer", "type", "blob shapes", "params"])
    report.lines.append(f"total params: {total:,} ({total * 4 / 2**20:.2f} MiB as float32)")
    state = os.path.splitext(report.path)[0] + ".solverstate"
    match = f"{state}, beside it" if os.path.isfile(state) else f"e.g. {state}"
    report.hints.append(f"this is a .caffemodel (weights): use it with --weights or "
                        f"Net(model, weights=...); --snapshot needs the matching .solverstate "
                        f"({match})")


def _history_guess(count, params):
    if not params:
        return ""
    if count == params:
        return (f"; one per parameter blob ({params}): SGD, Nesterov, AdaGrad or RMSProp "
                "(Caffe does not record the type)")
    if count == 2 * params:
        return f"; two per parameter blob ({params}): Adam or AdaDelta"
    return f"; the weights hold {params} parameter blobs"


def _solverstate(report, state, raw):
    from ..solvers import snapshot as snap
    from ..solvers.sidecar import read_sidecar

    report.lines.append(f"iter: {state.iter:,}")
    params = 0
    if state.HasField("learned_net"):
        try:
            found = snap.find_learned_net(state.learned_net, report.path)
        except CaffeliteError:
            found = None
        if found is None:
            where = "not found, nor beside the state"
        elif os.path.abspath(found) == os.path.abspath(state.learned_net):
            where = "found"
        else:
            where = f"not found as written; using {found} beside the state"
        report.lines.append(f"learned_net: {state.learned_net} ({where})")
        if found is not None:
            model, _ = _parse(pb.NetParameter, read_file(found))
            params = sum(len(lp.blobs) for lp in model.layer) if model is not None else 0
    else:
        report.lines.append("learned_net: (none recorded)")
    report.lines.append(f"current_step: {state.current_step}")
    shapes = [proto_shape(b) for b in state.history]
    values = sum(_count(s) for s in shapes)
    report.lines.append(f"history: {len(shapes)} blobs, {values:,} values"
                        + _history_guess(len(shapes), params))
    if shapes:
        report.lines.append("history shapes: " + ", ".join(fmt_shape(s) for s in shapes))
    try:
        record = read_sidecar(report.path)
    except CaffeliteError as exc:
        report.lines.append(f"sidecar: unreadable ({exc})")
        record = None
    if record is None:
        report.lines.append("sidecar: none (a resume restarts data at the beginning and "
                            "reseeds, as Caffe does)")
    else:
        report.lines.append(_sidecar_line(record))
    report.hints.append(f"resume with: caffelite train SOLVER --snapshot {report.path}")


def _sidecar_line(record):
    parts = [f"solver {record.get('type', '?')}", f"iter {record.get('iter', '?')}"]
    if "lr" in record:
        parts.append(f"lr {float(record['lr']):g}")
    smoothed = record.get("smoothed_loss") or {}
    if "value" in smoothed:
        parts.append(f"smoothed loss {float(smoothed['value']):g}")
    layer_states = sorted((record.get("train_net") or {}).get("layer_states") or {})
    if layer_states:
        parts.append(f"train data positions of {', '.join(layer_states)}")
    parts.append(f"{len(record.get('test_nets') or [])} test net(s)")
    return "sidecar (exact resume): " + ", ".join(parts)


def _binaryproto(report, blob, raw):
    from ..formats.binary import read_blob_array

    array = read_blob_array(blob).astype(np.float64)
    legacy = not blob.HasField("shape")
    if legacy:
        report.title += ", legacy num/channels/height/width header"
    dtype = "float64" if len(blob.double_data) else "float32"
    report.lines.append(f"shape: {fmt_shape(array.shape)} ({array.size:,} values, {dtype})")
    report.lines.append(f"min {array.min():.6g}   mean {array.mean():.6g}   "
                        f"max {array.max():.6g}")
    if array.ndim == 4 and array.shape[0] == 1 and array.shape[1] <= 4:
        means = " ".join(f"{m:.6g}" for m in array[0].mean(axis=(1, 2)))
        report.lines.append(f"per-channel mean: {means}")
    report.hints.append("a mean file: transform_param { mean_file: ... } or "
                        "caffelite.formats.binary.read_binaryproto()")


def _hdf5(report, parsed, raw):
    try:
        import h5py
    except ImportError:
        report.lines.append(f"{len(raw):,} bytes; summarising HDF5 needs h5py: pip install h5py")
        return
    try:
        f = h5py.File(report.path, "r")
    except OSError as exc:
        raise WeightsError(f"{report.path}: unreadable HDF5 file: truncated or corrupt "
                           f"({exc})") from None
    with f:
        _hdf5_summary(report, f)


def _group(node):
    return hasattr(node, "keys")


def _by_index(group):
    return sorted(group.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else k))


def _scalar(dataset):
    value = np.asarray(dataset[()]).reshape(-1)
    return value[0] if value.size else None


def _hdf5_summary(report, f):
    if "data" in f and _group(f["data"]):
        report.title = "HDF5 .caffemodel.h5 (Caffe's HDF5 weights snapshot)"
        rows, total = [], 0
        for name in f["data"].keys():
            blobs = [f["data"][name][k] for k in _by_index(f["data"][name])]
            count = sum(_count(b.shape) for b in blobs)
            total += count
            rows.append([name, ", ".join(fmt_shape(b.shape) for b in blobs) or "-",
                         f"{count:,}"])
        report.lines += _table(rows, ["layer", "blob shapes", "params"])
        report.lines.append(f"total params: {total:,}")
        report.hints.append("--snapshot needs the matching .solverstate.h5")
    elif "iter" in f and not _group(f["iter"]):
        report.title = "HDF5 .solverstate.h5 (Caffe's HDF5 solver snapshot)"
        report.lines.append(f"iter: {int(_scalar(f['iter'])):,}")
        if "learned_net" in f:
            name = _scalar(f["learned_net"])
            name = name.decode() if isinstance(name, bytes) else str(name)
            report.lines.append(f"learned_net: {name}")
        if "current_step" in f:
            report.lines.append(f"current_step: {int(_scalar(f['current_step']))}")
        history = [f["history"][k] for k in _by_index(f["history"])] if "history" in f else []
        report.lines.append(f"history: {len(history)} blobs, "
                            f"{sum(_count(h.shape) for h in history):,} values")
        if history:
            report.lines.append("history shapes: " + ", ".join(fmt_shape(h.shape)
                                                               for h in history))
        report.hints.append(f"resume with: caffelite train SOLVER --snapshot {report.path}")
    else:
        report.title = "HDF5 data file"
        for name in f.keys():
            node = f[name]
            if _group(node):
                report.lines.append(f"{name}/: group of {len(node.keys())}")
            else:
                report.lines.append(f"{name}: {fmt_shape(node.shape)} {node.dtype}")
        report.hints.append("an HDF5Data layer reads files listed in its hdf5_data_param.source")

