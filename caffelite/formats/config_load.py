"""YAML and JSON config text -> (tree, locate): plain values with the line of every key.

YAML is composed node by node (config_limits.compose, bounded) to keep the line of every key;
JSON lines are found by searching for the key. Both are bounded in size, depth and values
(config_limits), and every failure is one ConfigError line naming the file and line.
"""
import json
import re

import yaml

from ..errors import ConfigError
from . import config_limits as limits


def where(filename, line=None):
    """ "file:line", or "file" when the syntax gives no line."""
    return f"{filename}:{line}" if line else str(filename)


def quoted(text):
    """'text' for a message; repr(text) when it holds a newline or a control character, so
    an error stays one printable line."""
    text = str(text)
    return f"'{text}'" if text.isprintable() else repr(text)


def json_line(text, key, layer=None):
    """Best line for `"key":` in JSON text (after the layer's "name" when given), else None."""
    start = 0
    if layer is not None:
        named = re.search(r'"name"\s*:\s*"' + re.escape(str(layer)) + '"', text)
        start = named.start() if named else 0
    pattern = re.compile('"' + re.escape(str(key)) + r'"\s*:')
    hit = pattern.search(text, start) or pattern.search(text)
    return text.count("\n", 0, hit.start()) + 1 if hit else None


class Plain:
    """A plain YAML scalar that YAML resolved to a non-string (5, 1.0, true, null, a date);
    string fields take its text as written."""

    __slots__ = ("value", "text")

    def __init__(self, value, text):
        self.value, self.text = value, text


def load_yaml(text, filename):
    """(tree, locate) for YAML text; locate(path, layer) -> the line of a key path. Size,
    depth and alias expansion are bounded (config_limits)."""
    limits.check_size(text, filename)
    lines, loader = {}, None
    try:
        loader = limits.yaml_loader(text)
        node = limits.compose(loader, filename)
        budget = [limits.MAX_VALUES]
        tree = None if node is None else _yaml_tree(loader, node, (), lines, filename, budget)
    except yaml.reader.ReaderError as exc:
        raise limits.reader_error(exc, text, filename) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = where(filename, mark.line + 1 if mark else None)
        problem = exc.problem or exc.context
        hint = "; check the indentation" if "block" in str(problem) else ""
        raise ConfigError(f"YAML syntax error ({loc}): {problem}{hint}") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"YAML syntax error ({filename}): {detail}") from None
    finally:
        if loader is not None:
            loader.dispose()

    def locate(path, layer):
        while path and path not in lines:
            path = path[:-1]
        return lines.get(path)

    return tree, locate


def _yaml_tree(loader, node, path, lines, filename, budget):
    """Python values from a composed YAML node, recording the line of every key and item.
    budget[0] counts down the values built: an alias is built again each time it is used."""
    line = node.start_mark.line + 1
    lines.setdefault(path, line)
    if len(path) > limits.MAX_DEPTH:
        raise limits.too_deep(filename, line)
    budget[0] -= 1
    if budget[0] < 0:
        raise limits.too_many(filename, line)
    if isinstance(node, yaml.SequenceNode):
        return [_yaml_tree(loader, item, path + (i,), lines, filename, budget)
                for i, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        first_explicit = node.merged  # `<<: *defaults` merged first (config_limits.compose)
        out, seen = {}, set()
        for i, (key_node, value_node) in enumerate(node.value):
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{where(filename, line)}: a key must be a field name")
            key = key_node.value
            if key in seen:
                raise ConfigError(f"{quoted(key)} given twice ({where(filename, line)}); a "
                                  f"repeated field takes a list: {key}: [a, b]")
            if i >= first_explicit:
                seen.add(key)
            sub = path + (key,)
            if key in out:  # a merged value overridden by an explicit one
                for stale in [p for p in lines if p[:len(sub)] == sub]:
                    del lines[stale]
            lines[sub] = line
            out[key] = _yaml_tree(loader, value_node, sub, lines, filename, budget)
        return out
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except Exception as exc:  # `!!int abc`, `!!bool maybe`, `!!binary` of bad base64 ...
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise ConfigError(f"bad value {node.value!r} for the tag {tag} "
                          f"({where(filename, line)}): {type(exc).__name__}; remove the tag "
                          "or give a value of its type") from None
    return value if isinstance(value, str) or node.style else Plain(value, node.value)


def load_json(text, filename):
    """(tree, locate) for JSON text; lines are found by searching for the key."""
    def pairs(items):
        out = {}
        for key, value in items:
            if key in out:
                raise ConfigError(f"{quoted(key)} given twice in an object ({filename}); a "
                                  "repeated field takes a list")
            out[key] = value
        return out

    limits.check_size(text, filename)
    try:
        tree = json.loads(text, object_pairs_hook=pairs) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"JSON syntax error ({where(filename, exc.lineno)}): {exc.msg}") \
            from None
    except RecursionError:
        raise limits.too_deep(filename, limits.json_depth_line(text)) from None
    limits.check_json_tree(tree, filename, text)

    def locate(path, layer):
        keys = [p for p in path if isinstance(p, str)]
        return json_line(text, keys[-1], layer) if keys else None

    return tree, locate
