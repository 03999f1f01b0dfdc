"""Config errors that name file:line, the enclosing layer and the closest valid name.

A prototxt ParseError from protobuf ("14:5 : Message type ... has no field named ...") becomes
"unknown field 'convolution_parm' in layer 'conv1' (lenet.prototxt:14); did you mean
'convolution_param'?". A loaded YAML/JSON tree (config_load.py) is checked against the
descriptor (Normaliser) with the same wording.
"""
import math
import re

import numpy as np

from ..errors import ConfigError
from ..proto import caffelite_pb2 as pb
from ..registry import suggest
from .config_load import Plain, json_line, load_json, load_yaml, quoted, where  # noqa: F401

# Fields that moved in Caffe's V1 -> V2 upgrade; a V2 layer that still uses them gets this hint.
LEGACY_HINTS = {
    "blobs_lr": "; write param { lr_mult: ... } (one param per blob)",
    "weight_decay": "; write param { decay_mult: ... } (one param per blob)",
    "blob_share_mode": "; write param { share_mode: ... }",
}
_LAYER_KEYS = ("layer", "layers")
_FD = pb.NetParameter.DESCRIPTOR.fields_by_name["name"]  # for the CPPTYPE_* constants
_INT_RANGES = {_FD.CPPTYPE_INT32: (-2**31, 2**31 - 1), _FD.CPPTYPE_UINT32: (0, 2**32 - 1),
               _FD.CPPTYPE_INT64: (-2**63, 2**63 - 1), _FD.CPPTYPE_UINT64: (0, 2**64 - 1)}
_FLOAT32_OVERFLOW = 2.0**128 - 2.0**103  # halfway from FLT_MAX to 2**128: rounds to inf
_NAMED_FLOATS = {"inf": math.inf, "+inf": math.inf, ".inf": math.inf, "infinity": math.inf,
                 "-inf": -math.inf, "-.inf": -math.inf, "-infinity": -math.inf,
                 "nan": math.nan, ".nan": math.nan}
_LAYER_MESSAGES = ("LayerParameter", "V1LayerParameter", "V0LayerParameter")
_TOKEN = re.compile(r"""\s+|\#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[\w.+-]+|.""")


def is_repeated(field):
    """FieldDescriptor.is_repeated, also on protobuf releases that only have `label`."""
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == field.LABEL_REPEATED


def context(layer=None, parent=None, message_name=None):
    """ "layer 'conv1'", "convolution_param of layer 'conv1'", "test_state" or "SolverParameter"."""
    if layer is not None:
        if parent and parent not in _LAYER_KEYS:
            return f"{parent} of layer {quoted(layer)}"
        return f"layer {quoted(layer)}"
    return parent or message_name or "the config"


def unknown_field(name, descriptor, ctx, loc):
    hint = LEGACY_HINTS.get(name) if descriptor.name == "LayerParameter" else None
    hint = hint or suggest(name, [f.name for f in descriptor.fields])
    return ConfigError(f"unknown field {quoted(name)} in {ctx} ({loc}){hint}")


def unknown_enum(value, field_name, enum_descriptor, ctx, loc):
    names = [v.name for v in enum_descriptor.values]
    hint = suggest(value, names) or f"; one of {', '.join(names)}"
    return ConfigError(f"unknown value {quoted(value)} for '{field_name}' in {ctx} "
                       f"({loc}){hint}")


def bad_value(field_name, detail, ctx, loc):
    return ConfigError(f"bad value for '{field_name}' in {ctx} ({loc}): {detail}")


class _Block:
    __slots__ = ("key", "start", "end", "name", "parent")

    def __init__(self, key, start, parent):
        self.key, self.start, self.end, self.name, self.parent = key, start, None, None, parent


def _blocks(text):
    """Every `key { ... }` block of a prototxt with its span and its own `name: "..."`."""
    blocks, stack, prev, prev2 = [], [], None, None
    for match in _TOKEN.finditer(text):
        tok = match.group()
        if tok.isspace() or tok.startswith("#"):
            continue
        if tok in "{<":
            key = prev2 if prev == ":" else prev
            stack.append(_Block(key, match.start(), stack[-1] if stack else None))
            blocks.append(stack[-1])
        elif tok in "}>" and stack:
            stack.pop().end = match.end()
        elif tok[0] in "\"'" and prev == ":" and prev2 == "name" and stack \
                and stack[-1].name is None:
            stack[-1].name = tok[1:-1]
        prev2, prev = prev, tok
    return blocks


def _offset(text, line, column):
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return starts[min(max(line, 1), len(starts)) - 1] + max(column - 1, 0)


def _at_end(text, offset):
    return re.fullmatch(r"\s*\S*\s*", text[offset:]) is not None


def enclosing(text, line, column):
    """(layer name or None, innermost block key or None) around a 1-based line:column."""
    offset = _offset(text, line, column)
    at_end = _at_end(text, offset)  # at the last token: the unclosed block is the context
    inner = None
    for block in _blocks(text):
        if block.start <= offset and (block.end is None or offset < block.end and not at_end):
            inner = block  # blocks come in start order, so the last one is the innermost
    layer, block = None, inner
    while block is not None:
        if block.key in _LAYER_KEYS:
            layer = block.name if block.name is not None else "?"
            break
        block = block.parent
    return layer, (inner.key if inner is not None else None)


_PROTO_MESSAGES = (
    (re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"'), "field"),
    (re.compile(r'Enum type "([\w.]+)" has no value named (\S+?)\.?$'), "enum"),
    (re.compile(r'Enum type "([\w.]+)" has no value with number (-?\d+)'), "enum"),
    (re.compile(r'Message type "([\w.]+)" should not have multiple "(\w+)" fields'), "twice"),
)
_VALUE_ERRORS = ("Couldn't parse", "Value out of range", "Expected string", 'Expected "true"',
                 "Invalid", "Expected integer", "Expected double")


def prototxt_error(exc, text, filename, message_name):
    """A ConfigError for protobuf's text_format.ParseError `exc` raised while parsing `text`."""
    line, column = exc.GetLine() or 0, exc.GetColumn() or 0
    detail = re.sub(r"^\d+:\d+ : ", "", str(exc))
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    for prefix in (f"'{source}': ", f"'{source.strip()}': "):
        if detail.startswith(prefix):
            detail = detail[len(prefix):]
    layer, parent = enclosing(text, line, column)
    ctx, loc = context(layer, parent, message_name), where(filename, line or None)
    for pattern, kind in _PROTO_MESSAGES:
        match = pattern.search(detail)
        if not match:
            continue
        type_name, item = match.groups()
        field = _field_before(source, column)
        if kind == "field":
            return unknown_field(item, _message(type_name), ctx, loc)
        if kind == "twice":
            return ConfigError(f"{quoted(item)} given twice in {ctx} ({loc}); it takes one value")
        enum = pb.DESCRIPTOR.pool.FindEnumTypeByName(type_name)
        return unknown_enum(item, field or "?", enum, ctx, loc)
    if detail.startswith(_VALUE_ERRORS):
        return bad_value(_field_before(source, column) or "?", detail, ctx, loc)
    if detail.startswith('Expected "}"') and _at_end(text, _offset(text, line, column)):
        detail = "the file ends before the block is closed: a '}' is missing"
    return ConfigError(f"syntax error in {ctx} ({loc}): {detail}")


def _message(full_name):
    return pb.DESCRIPTOR.pool.FindMessageTypeByName(full_name)


def _field_before(source, column):
    """The field name left of the value at `column` on a prototxt line ("num_output: 5.5")."""
    found = re.findall(r"(\w+)\s*:", source[:max(column - 1, 0)])
    return found[-1] if found else None


def prototxt_top_keys(text):
    """The field names used at the top level of a prototxt (to tell a solver from a net)."""
    keys, depth, prev = set(), 0, None
    for match in _TOKEN.finditer(text):
        tok = match.group()
        if tok.isspace() or tok.startswith("#"):
            continue
        if depth == 0 and tok in (":", "{", "<") and prev and re.fullmatch(r"\w+", prev):
            keys.add(prev)
        depth += (tok in "{<") - (tok in "}>")
        prev = tok
    return keys


# ---- YAML/JSON trees checked against the schema -----------------------------------------

def show(value):
    """A value as an error message quotes it."""
    if isinstance(value, Plain):
        return repr(value.text) if value.text else "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else repr(value)


class _Bad(Exception):
    """A value that does not fit its field; Normaliser adds the field, layer and line."""


class Normaliser:
    """Loaded YAML/JSON -> the dict json_format.ParseDict expects, or a ConfigError naming the
    file, line, layer and the closest valid name."""

    def __init__(self, filename, locate):
        self.filename, self.locate = filename, locate

    def message(self, tree, descriptor, path, layer=None, parent=None):
        if descriptor.name in _LAYER_MESSAGES:
            name = tree.get("name")
            name = name.text if isinstance(name, Plain) else name
            if isinstance(name, str):
                layer = name
            elif descriptor.name != "V0LayerParameter":
                layer = f"#{path[-1]}" if path and isinstance(path[-1], int) else "?"
        by_json = {f.json_name: f for f in descriptor.fields}
        ctx = context(layer, parent, descriptor.name)
        out = {}
        for key, value in tree.items():
            field = descriptor.fields_by_name.get(key) or by_json.get(key)
            sub = path + (key,)
            if field is None:
                raise unknown_field(key, descriptor, ctx, self._loc(sub, layer))
            if field.name in out:
                raise ConfigError(f"'{field.name}' given twice ({self._loc(sub, layer)})")
            try:
                if is_repeated(field):
                    items = value if isinstance(value, list) else [] if value is None else [value]
                    subs = [sub + (i,) if isinstance(value, list) else sub
                            for i in range(len(items))]
                    out[field.name] = [self.value(field, v, s, layer, ctx)
                                       for v, s in zip(items, subs)]
                elif isinstance(value, list):
                    raise _Bad(f"takes one value, not {show(value)}")
                else:
                    out[field.name] = self.value(field, value, sub, layer, ctx)
            except _Bad as exc:
                raise bad_value(field.name, str(exc), ctx, self._loc(sub, layer)) from None
        return out

    def _loc(self, path, layer):
        return where(self.filename, self.locate(path, layer))

    def value(self, field, value, path, layer, ctx):
        kind = field.cpp_type
        raw = value.value if isinstance(value, Plain) else value
        if kind == field.CPPTYPE_MESSAGE:
            if raw is None:
                return {}  # `transform_param:` with nothing under it: present and empty
            if not isinstance(value, dict):
                raise _Bad(f"expected a mapping of {field.message_type.name} fields, "
                           f"got {show(value)}")
            return self.message(value, field.message_type, path, layer, field.name)
        if kind == field.CPPTYPE_ENUM:
            text = value.text if isinstance(value, Plain) else value
            enum = field.enum_type
            if isinstance(text, str) and text in enum.values_by_name:
                return text
            if isinstance(text, str) and re.fullmatch(r"[-+]?\d+", text.strip()):
                text = int(text)
            if isinstance(text, int) and not isinstance(text, bool) \
                    and text in enum.values_by_number:
                return enum.values_by_number[text].name
            raise unknown_enum(text, field.name, enum, ctx, self._loc(path, layer))
        if kind == field.CPPTYPE_BOOL:
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            if not isinstance(raw, bool):
                raise _Bad(f"expected true or false, got {show(value)}")
            return raw
        if kind in _INT_RANGES:
            return _to_int(raw, value, *_INT_RANGES[kind])
        if kind in (field.CPPTYPE_FLOAT, field.CPPTYPE_DOUBLE):
            return _to_float(raw, value, kind == field.CPPTYPE_FLOAT)
        if isinstance(value, Plain) and value.text:
            return value.text
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {show(value)}")
        return value  # string, or base64 text for a bytes field


def _to_int(raw, value, low, high):
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    elif isinstance(raw, str) and re.fullmatch(r"\s*[-+]?\d+\s*", raw):
        raw = int(raw)  # JSON writes 64-bit integers as strings
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise _Bad(f"expected an integer, got {show(value)}")
    if not low <= raw <= high:
        raise _Bad(f"{raw} is out of range [{low}, {high}]")
    return raw


def _to_float(raw, value, float32):
    number = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        number = float(raw)
    elif isinstance(raw, str):
        text = raw.strip().lower()
        try:
            number = _NAMED_FLOATS[text] if text in _NAMED_FLOATS else float(text)
        except ValueError:
            pass
    if number is None:
        raise _Bad(f"expected a number, got {show(value)}")
    if not math.isfinite(number):  # ParseDict takes these spellings only
        return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
    if float32:
        if abs(number) >= _FLOAT32_OVERFLOW:
            raise _Bad(f"{number} is too large for a float")
        # The float32 value itself: ParseDict refuses "3.4028235e+38" (FLT_MAX written
        # shortest), whose double is a hair above FLT_MAX.
        number = float(np.float32(number))
    return number
