"""Configs: NetParameter/SolverParameter <-> .prototxt | .yaml/.yml | .json, one schema.

A prototxt goes through protobuf's text_format. YAML and JSON are loaded, normalised against the
descriptor (a scalar given for a repeated field becomes a one-item list, enums by name, numbers
checked) with the line of every key kept for errors, then built with json_format.ParseDict.
Writers emit proto field names in the schema's declaration order and float32 values in their
shortest exact form, so prototxt -> YAML/JSON -> prototxt is lossless.
"""
import base64
import json
import math
import os

import numpy as np
import yaml
from google.protobuf import json_format, text_format

from ..errors import ConfigError, read_bytes
from ..proto import caffelite_pb2 as pb
from . import config_errors as E
from .config_limits import check_size
from .config_paths import (  # noqa: F401  (config.resolve_* is where readers look for them)
    URL_PREFIX,
    resolve_module,
    resolve_net_paths,
    resolve_path,
    resolve_solver_paths,
)
from .upgrade import upgrade_net_param, upgrade_snapshot_prefix, upgrade_solver_param


def config_format(path):
    """"yaml", "json" or "prototxt" (every other extension: .prototxt, .pt, .txt ...)."""
    ext = os.path.splitext(str(path))[1].lower()
    return {".yaml": "yaml", ".yml": "yaml", ".json": "json"}.get(ext, "prototxt")


def read_text(path):
    """A config file's text; a ConfigError (not an OSError) when it cannot be read."""
    data = read_bytes(path, ConfigError)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text config (binary data; a .caffemodel holds weights, "
                          "pass it as the weights, not as the model)") from None


# ---- reading -------------------------------------------------------------------------------

def parse_message(text, message_cls, filename="<string>", fmt=None):
    """Parse config text into a new message_cls, without upgrades; a string with a NUL
    character (no path or name has one: the OS would refuse it later) or a missing required
    field (clip_param's min and max) is a ConfigError."""
    msg = _parse_message(text, message_cls, filename, fmt)
    _check_strings(msg, filename)
    if not msg.IsInitialized():  # Caffe's text parser refuses a missing required field
        missing = ", ".join(_readable_path(msg, p) for p in msg.FindInitializationErrors())
        raise ConfigError(f"{filename}: missing required field(s): {missing}")
    return msg


def _readable_path(msg, path):
    """ "layer[14].clip_param.min" -> "clip_param.min of layer 'clip1'"."""
    head, _, rest = path.partition(".")
    name, _, index = head.rstrip("]").partition("[")
    if name in ("layer", "layers") and index.isdigit() and rest:
        layer = getattr(msg, name)[int(index)]
        return f"{rest} of layer '{layer.name or '#' + index}'"
    return path


def _check_strings(msg, filename, where=()):
    for field, value in msg.ListFields():
        name = ".".join(where + (field.name,))
        if field.cpp_type == field.CPPTYPE_MESSAGE:
            items = value if E.is_repeated(field) else [value]
            for i, item in enumerate(items):
                label = getattr(item, "name", "") if "name" in item.DESCRIPTOR.fields_by_name \
                    else ""
                step = f"{field.name} '{label}'" if label else (
                    f"{field.name}[{i}]" if E.is_repeated(field) else field.name)
                _check_strings(item, filename, where + (step,))
        elif field.type == field.TYPE_STRING:
            for item in (value if E.is_repeated(field) else [value]):
                if "\x00" in item:
                    raise ConfigError(f"{filename}: {name} holds a NUL character ({item!r}); "
                                      "remove it")


def _parse_message(text, message_cls, filename, fmt):
    fmt = fmt or config_format(filename)
    msg = message_cls()
    if fmt == "prototxt":
        check_size(text, filename)
        try:
            text_format.Parse(text, msg)
        except text_format.ParseError as exc:
            raise E.prototxt_error(exc, text, filename, msg.DESCRIPTOR.name) from None
        return msg
    tree, locate = (E.load_yaml if fmt == "yaml" else E.load_json)(text, filename)
    if tree is None:
        return msg
    if not isinstance(tree, dict):
        raise ConfigError(f"{filename}: the top level must be a mapping of "
                          f"{msg.DESCRIPTOR.name} fields, not {E.show(tree)}")
    clean = E.Normaliser(filename, locate).message(tree, msg.DESCRIPTOR, ())
    try:
        json_format.ParseDict(clean, msg)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise ConfigError(f"{filename}: {exc}") from None
    return msg


def parse_net_text(text, filename="<string>", fmt=None, upgrade=True):
    """A NetParameter from prototxt/YAML/JSON text (format from fmt or filename), upgraded."""
    net = parse_message(text, pb.NetParameter, filename, fmt)
    return upgrade_net_param(net, filename) if upgrade else net


def parse_solver_text(text, filename="<string>", fmt=None, upgrade=True):
    """A SolverParameter from config text; inline nets (net_param: ...) upgraded too."""
    solver = parse_message(text, pb.SolverParameter, filename, fmt)
    return upgrade_solver_param(solver, filename) if upgrade else solver


def read_net_param(path):
    """The NetParameter in a .prototxt/.yaml/.yml/.json file, upgraded to V2 layers."""
    return parse_net_text(read_text(path), str(path))


def read_solver_param(path):
    """The SolverParameter in a config file: upgraded, with Caffe's snapshot_prefix rule."""
    solver = parse_solver_text(read_text(path), str(path))
    return upgrade_snapshot_prefix(solver, path)


def config_kind(text, fmt="prototxt"):
    """"solver" when the top-level keys include a SolverParameter-only field, else "net"."""
    if fmt == "prototxt":
        keys = E.prototxt_top_keys(text)
    else:
        try:
            tree, _ = (E.load_yaml if fmt == "yaml" else E.load_json)(text, "<config>")
        except ConfigError:
            return "net"  # the real parse reports the syntax error with its line
        keys = set(tree) if isinstance(tree, dict) else set()
    solver_only = set(pb.SolverParameter.DESCRIPTOR.fields_by_name) - set(
        pb.NetParameter.DESCRIPTOR.fields_by_name)
    return "solver" if keys & solver_only else "net"


# ---- writing -------------------------------------------------------------------------------

class _FlowList(list):
    """A list of scalars, written inline in YAML: `dim: [64, 1, 28, 28]`."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # indent block sequences under their key


_Dumper.add_representer(_FlowList, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def _short_float(value):
    """The float32 `value` as the double of its shortest decimal (0.1f -> 0.1, not 0.100000001):
    reading that decimal back into a float32 gives the same bits."""
    return float(str(np.float32(value))) if math.isfinite(value) else value


def _tree(msg, fmt):
    """msg as plain dicts/lists in schema declaration order, enums by name."""
    present = {field.name: value for field, value in msg.ListFields()}
    out = {}
    for field in msg.DESCRIPTOR.fields:
        if field.name not in present:
            continue
        value = present[field.name]
        if not E.is_repeated(field):
            out[field.name] = _scalar(field, value, fmt)
            continue
        items = [_scalar(field, item, fmt) for item in value]
        if fmt == "yaml" and field.cpp_type != field.CPPTYPE_MESSAGE:
            items = items[0] if len(items) == 1 else _FlowList(items)
        out[field.name] = items
    return out


def _scalar(field, value, fmt):
    kind = field.cpp_type
    if kind == field.CPPTYPE_MESSAGE:
        return _tree(value, fmt)
    if kind == field.CPPTYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known else value
    if field.type == field.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if kind == field.CPPTYPE_FLOAT:
        value = _short_float(value)
    if kind in (field.CPPTYPE_FLOAT, field.CPPTYPE_DOUBLE) and value.is_integer() \
            and abs(value) < 2**53 and math.copysign(1.0, value) > 0:
        return int(value)  # `lr_mult: 1`, as in prototxt; -0.0 keeps its sign as a float
    if kind in (field.CPPTYPE_FLOAT, field.CPPTYPE_DOUBLE) and fmt == "json" \
            and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return value


def _json_text(value, depth=0):
    """JSON with two-space indentation and lists of numbers/strings kept on one line."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_json_text(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _json_text(v, depth + 1) for v in value) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)


def format_message(msg, fmt="prototxt"):
    """msg as config text: "prototxt" (Caffe's text format), "yaml" or "json"."""
    if fmt == "prototxt":
        return text_format.MessageToString(msg, as_utf8=True)
    tree = _tree(msg, fmt)
    if fmt == "json":
        return _json_text(tree) + "\n"
    text = yaml.dump(tree, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)
    return _space_layers(text)


def _space_layers(text):
    """A blank line between layers (the items under a `layer:`/`layers:` key), for reading."""
    out, item_indent, first = [], None, False
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if item_indent is not None and stripped.startswith("- ") and indent == item_indent:
            if not first:
                out.append("\n")
            first = False
        elif item_indent is not None and indent <= item_indent - 2 and stripped.strip():
            item_indent = None
        key = stripped[2:] if stripped.startswith("- ") else stripped  # "- layer:" in a list
        if key.rstrip() in ("layer:", "layers:"):
            item_indent, first = indent + len(stripped) - len(key) + 2, True
        out.append(line)
    return "".join(out)


def write_message(msg, path):
    """Write msg to path in the format its extension names (.yaml/.yml, .json, else prototxt)."""
    text = format_message(msg, config_format(path))
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror})") from None


def write_net_param(net_param, path):
    """Write a NetParameter as .prototxt, .yaml/.yml or .json (by path's extension)."""
    write_message(net_param, path)


def write_solver_param(solver_param, path):
    """Write a SolverParameter (inline nets included) as .prototxt, .yaml/.yml or .json."""
    write_message(solver_param, path)
