"""Bounds on config input, so hostile or broken YAML/JSON fails fast with one line.

A config describes a net or a solver: a few hundred kilobytes at most, nested a dozen levels
(NetParameter > layer > convolution_param > weight_filler). Beyond that it is an accident or an
attack, and PyYAML would take minutes (a 10 MB flat list), memory without bound (a "billion
laughs" alias bomb expands each alias again), or the C stack (100,000 nested brackets crash
libyaml's recursive composer). So: the text's size is checked first; YAML is composed here from
the parser's events (libyaml's parser is iterative and lazy: parsing stops at the first level too
deep), with aliases counted as the values they expand to; JSON's depth is checked after
decoding (its decoder stops at Python's recursion limit).
"""
import os
import re

import yaml

from ..errors import ConfigError

MAX_DEPTH = 64  # nested mappings/lists; Caffe's schema needs about 8
MAX_VALUES = 250_000  # scalars, lists and mappings after alias expansion
DEFAULT_MAX_BYTES = 16 * 2**20


def max_config_bytes():
    """$CAFFELITE_MAX_CONFIG_BYTES, else 16 MiB."""
    value = os.environ.get("CAFFELITE_MAX_CONFIG_BYTES")
    try:
        return int(float(value)) if value else DEFAULT_MAX_BYTES
    except ValueError:
        raise ConfigError(f"CAFFELITE_MAX_CONFIG_BYTES={value!r} is not a number of bytes") \
            from None


def check_size(text, filename):
    """A ConfigError when config text is larger than max_config_bytes()."""
    limit = max_config_bytes()
    if len(text) > limit:
        raise ConfigError(f"{filename}: {len(text)} characters, more than the {limit} a config "
                          "may have (CAFFELITE_MAX_CONFIG_BYTES raises the limit); a config "
                          "describes a net or a solver, weights and data go in other files")


def too_deep(filename, line=None):
    loc = f"{filename}:{line}" if line else str(filename)
    return ConfigError(f"{loc}: nesting deeper than {MAX_DEPTH} levels; a Caffe config needs "
                       "about 8")


def too_many(filename, line=None):
    loc = f"{filename}:{line}" if line else str(filename)
    return ConfigError(f"{loc}: more than {MAX_VALUES} values, counting each use of an alias "
                       "(aliases repeated inside aliases, or not a config)")


def yaml_loader(text):
    """A safe YAML loader for text: libyaml's when PyYAML has it, else the pure-Python one."""
    cls = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None
    return (cls or yaml.SafeLoader)(text)


def reader_error(exc, text, filename):
    """One line for a yaml ReaderError (a control character, invalid UTF-8)."""
    position = getattr(exc, "position", None)
    line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
    loc = f"{filename}:{line}" if line else str(filename)
    character = exc.character  # a str from PyYAML's reader, an int from libyaml's
    code = ord(character) if isinstance(character, str) else character
    shown = f"#x{code:04x}" if isinstance(code, int) else repr(code)
    return ConfigError(f"YAML syntax error ({loc}): unacceptable character {shown} "
                       f"({exc.reason}); remove it (a config is plain text)")


def _tag(loader, event, kind, value):
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(kind, value, event.implicit)
    return tag


def compose(loader, filename):
    """The single document of the loader's stream as a yaml Node (None when empty), built
    without recursion: MAX_DEPTH and MAX_VALUES bound it as the events arrive. An anchor is
    usable once its node is complete, so an alias cannot refer to its own ancestor."""
    loader.get_event()  # StreamStart
    if loader.check_event(yaml.StreamEndEvent):
        loader.get_event()
        return None
    loader.get_event()  # DocumentStart
    anchors, stack, root, count = {}, [], None, 0
    while not loader.check_event(yaml.DocumentEndEvent):
        event = loader.get_event()
        line = event.start_mark.line + 1 if event.start_mark else None
        count += 1
        if count > MAX_VALUES:
            raise too_many(filename, line)
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise too_deep(filename, line)
            sequence = isinstance(event, yaml.SequenceStartEvent)
            kind = yaml.SequenceNode if sequence else yaml.MappingNode
            node = kind(_tag(loader, event, kind, None), [], event.start_mark, None,
                        flow_style=event.flow_style)
            stack.append((node, event.anchor))
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            node, anchor = stack.pop()
            node.end_mark = event.end_mark
            if isinstance(node, yaml.MappingNode):
                count += _merge_keys(node, filename)
                if count > MAX_VALUES:
                    raise too_many(filename, line)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise ConfigError(f"{filename}:{line}: alias *{event.anchor} names no complete "
                                  "anchor above it")
            node, anchor = anchors[event.anchor], None
        else:  # ScalarEvent
            node = yaml.ScalarNode(_tag(loader, event, yaml.ScalarNode, event.value),
                                   event.value, event.start_mark, event.end_mark,
                                   style=event.style)
            anchor = event.anchor
        if anchor is not None:
            anchors[anchor] = node
        if stack:
            stack[-1][0].value.append(node)
        else:
            root = node
    loader.get_event()  # DocumentEnd
    if not loader.check_event(yaml.StreamEndEvent):
        mark = loader.peek_event().start_mark
        raise ConfigError(f"{filename}:{mark.line + 1 if mark else '?'}: a second YAML "
                          "document ('---'); a config is one document")
    return root


_MERGE = "tag:yaml.org,2002:merge"


def _merge_keys(node, filename):
    """Pair a composed mapping's items and apply its `<<` merge keys now (PyYAML's
    flatten_mapping, whose recursion and copies an alias bomb would blow up): the merged pairs
    come first, explicit ones last (they win), and `node.merged` says how many were merged.
    Returns that number, which counts towards MAX_VALUES."""
    merged, own = [], []
    for key, value in zip(node.value[::2], node.value[1::2]):
        if key.tag != _MERGE:
            if key.tag == "tag:yaml.org,2002:value":
                key.tag = "tag:yaml.org,2002:str"
            own.append((key, value))
            continue
        sources = value.value[::-1] if isinstance(value, yaml.SequenceNode) else [value]
        for source in sources:  # in a list, the first mapping wins: it is merged last
            if not isinstance(source, yaml.MappingNode):
                raise ConfigError(f"{filename}:{source.start_mark.line + 1}: '<<' merges "
                                  f"mappings (or a list of them), not {source.id}s")
            merged.extend(source.value)
    node.value = merged + own
    node.merged = len(merged)
    return len(merged)


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth_line(text):
    """The line where JSON text first nests deeper than MAX_DEPTH, or None (strings skipped)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


def check_json_tree(tree, filename, text=None):
    """A ConfigError when decoded JSON nests deeper than MAX_DEPTH or holds more than
    MAX_VALUES values (checked without recursion)."""
    stack, count = [(tree, 0)], 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise too_deep(filename, json_depth_line(text) if text else None)
        if count > MAX_VALUES:
            raise too_many(filename)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
