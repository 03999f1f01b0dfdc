"""The layer reference (docs/layers.md), generated from the registry and the schema."""
import inspect
import sys

from ..net_spec import param_field
from ..proto import caffelite_pb2 as pb
from ..registry import LAYERS


def _field_type(field):
    if field.message_type is not None:
        return field.message_type.name
    if field.enum_type is not None:
        return " | ".join(v.name for v in field.enum_type.values)
    return {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool", 9: "string",
            13: "uint32"}.get(field.type, "value")


def _default(field):
    if field.message_type is not None or _is_repeated(field):
        return ""
    if field.enum_type is not None:
        return field.enum_type.values_by_number[field.default_value].name
    value = field.default_value
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(
        value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def _is_repeated(field):
    from ..net_spec import is_repeated

    return is_repeated(field)


def parameter_table(field_name):
    message = pb.LayerParameter.DESCRIPTOR.fields_by_name[field_name].message_type
    rows = ["| field | type | default |", "|---|---|---|"]
    for field in message.fields:
        kind = _field_type(field) + (" (repeated)" if _is_repeated(field) else "")
        rows.append(f"| `{field.name}` | {kind} | {_default(field)} |")
    return "\n".join(rows)


def layer_section(type_name):
    cls = LAYERS.get(type_name)
    module_doc = (sys.modules[cls.__module__].__doc__ or "").strip()
    class_doc = inspect.cleandoc(cls.__doc__ or "")
    parts = [f"## {type_name}", "", module_doc, "", class_doc]
    field = param_field(type_name)
    if field:
        parts += ["", f"Parameters: `{field}` "
                      f"({pb.LayerParameter.DESCRIPTOR.fields_by_name[field].message_type.name})",
                  "", parameter_table(field)]
    return "\n".join(parts).rstrip() + "\n"


def render():
    from .. import layer_type_list

    names = layer_type_list()
    head = ["# Layer reference", "",
            "Generated from caffelite's layer registry and schema by "
            "`python -m caffelite.tools.layer_docs > docs/layers.md`; a test keeps it current.", "",
            "Every layer also takes LayerParameter's common fields: `name`, `type`, `bottom`, "
            "`top`, `phase`, `loss_weight`, `param` (ParamSpec: `name`, `share_mode`, "
            "`lr_mult`, `decay_mult`), `propagate_down`, `include`/`exclude` (NetStateRule).",
            "", " · ".join(f"[{n}](#{n.lower()})" for n in names), ""]
    return "\n".join(head) + "\n" + "\n".join(layer_section(n) for n in names)


if __name__ == "__main__":
    sys.stdout.write(render())
