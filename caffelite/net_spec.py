"""NetSpec: build a NetParameter in Python, as pycaffe's net_spec (n.conv1 = L.Convolution(...)).

    from caffelite import NetSpec, layers as L, params as P
    n = NetSpec()
    n.data, n.label = L.Data(source="caffelite://mnist10k/train", batch_size=64, ntop=2,
                             transform_param=dict(scale=1 / 256))
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20)
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    n.to_proto()            # a NetParameter; caffelite.write_net_param(msg, "net.yaml")

Keyword arguments go to the layer's own `<type>_param` message when they are fields of it,
otherwise to LayerParameter itself (loss_weight, include, param, transform_param, ...).
"""
from collections import OrderedDict

from google.protobuf import json_format

from .errors import CaffeliteError
from .proto import caffelite_pb2 as pb
from .registry import suggest

# Types whose parameters live in a message not named after the type (Caffe's exceptions).
_PARAM_FIELD = {
    "Deconvolution": "convolution_param",
    "Im2col": "convolution_param",
    "RNN": "recurrent_param",
    "LSTM": "recurrent_param",
    "SoftmaxWithLoss": "softmax_param",
}
_LAYER_FIELDS = {f.name for f in pb.LayerParameter.DESCRIPTOR.fields}


def param_field(type_name):
    """The LayerParameter field holding type_name's parameters, or None."""
    if type_name in _PARAM_FIELD:
        return _PARAM_FIELD[type_name]
    wanted = type_name.lower() + "parameter"
    for field in pb.LayerParameter.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.name.lower() == wanted:
            return field.name
    return None


class Top:
    """One output of a Function; becomes a named blob in to_proto."""

    def __init__(self, fn, index):
        self.fn, self.index = fn, index

    @property
    def n(self):  # pycaffe's attribute name for the index
        return self.index

    def to_proto(self):
        """A NetParameter of every layer this Top depends on (pycaffe's Top.to_proto)."""
        return to_proto(self)


class Function:
    """A layer call: type, input Tops and keyword parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, top in enumerate(inputs):
            if not isinstance(top, Top):  # pycaffe's check, and its exception type
                raise TypeError(f"{type_name} input {index} is not a Top (type is "
                                f"{type(top)})")
        self.inputs = list(inputs)
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        if self.in_place and len(self.inputs) != 1:
            raise CaffeliteError(f"{type_name}: in_place needs exactly one bottom")
        self.tops = tuple(Top(self, i) for i in range(self.ntop))

    def to_layer_dict(self, names, autonames, produced):
        """A dict in proto field names for this layer. A bottom is named as its producer wrote
        its top, so a layer after an in-place one gets the blob's name, not the attribute's."""
        bottoms = [produced[id(top.fn)]["top"][top.index] for top in self.inputs]
        if self.in_place:  # the blob keeps the bottom's name; the layer takes the attribute's
            tops = list(bottoms)
        else:
            tops = [_top_name(t, names, autonames) for t in self.tops]
        if self in names:
            name = names[self]
        elif self.tops:
            name = _top_name(self.tops[0], names, autonames)
        else:
            name = _autoname(self, autonames)
        layer = {"name": name,
                 "type": self.type_name, "bottom": bottoms, "top": tops}
        own = param_field(self.type_name)
        own_fields = _message_fields(own)
        for key, value in self.params.items():
            if key in _LAYER_FIELDS and (key.endswith("param") or key not in own_fields):
                layer[key] = value
            elif key in own_fields:
                layer.setdefault(own, {})[key] = value
            elif key in _message_fields("loss_param") and self.type_name.endswith("Loss"):
                layer.setdefault("loss_param", {})[key] = value
            else:
                raise CaffeliteError(
                    f"{self.type_name}: unknown parameter '{key}'"
                    f"{suggest(key, _LAYER_FIELDS | own_fields)}")
        return layer


def _top_name(top, names, autonames):
    if top not in names:
        names[top] = _autoname(top, autonames)
    return names[top]


def _collect(roots, names):
    """Layer dicts of every Function the roots depend on, depth first, inputs first."""
    autonames, produced, layers = {}, {}, []
    for root in roots:
        # Post-order without recursion, so nets thousands of layers deep build too.
        stack = [(root.fn if isinstance(root, Top) else root, False)]
        while stack:
            fn, inputs_done = stack.pop()
            if id(fn) in produced:
                continue
            if inputs_done:
                produced[id(fn)] = layer = fn.to_layer_dict(names, autonames, produced)
                layers.append(layer)
                continue
            stack.append((fn, True))
            stack.extend((top.fn, False) for top in reversed(fn.inputs))
    return layers


def _net_message(layers, name=None):
    net = {"layer": layers}
    if name:
        net["name"] = name
    try:
        message = listify(net, pb.NetParameter.DESCRIPTOR)
        return json_format.ParseDict(message, pb.NetParameter())
    except json_format.ParseError as exc:
        raise CaffeliteError(f"NetSpec: {exc}") from None


def to_proto(*tops):
    """pycaffe's net_spec.to_proto: a NetParameter of the layers the tops need, auto-named."""
    return _net_message(_collect(tops, {}))


def _message_fields(field_name):
    if not field_name:
        return set()
    message = pb.LayerParameter.DESCRIPTOR.fields_by_name[field_name].message_type
    return {f.name for f in message.fields}


def _autoname(obj, autonames):
    fn = obj.fn if isinstance(obj, Top) else obj
    autonames[fn.type_name] = autonames.get(fn.type_name, 0) + 1
    return f"{fn.type_name}{autonames[fn.type_name]}"


def is_repeated(field):
    """Whether a FieldDescriptor is repeated, on every protobuf version we support."""
    if hasattr(field, "is_repeated"):  # protobuf >= 6 (`label` is gone in 7)
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def listify(value, descriptor):
    """Wrap scalars given for repeated fields in lists, recursively (kernel_size=5 -> [5])."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            out[key] = item
            continue
        repeated = is_repeated(field)
        if repeated and not isinstance(item, (list, tuple)):
            item = [item]
        if field.message_type is not None:
            sub = field.message_type
            item = [listify(v, sub) for v in item] if repeated else listify(item, sub)
        out[key] = item
    return out


class NetSpec:
    """Attributes assigned Tops (or tuples of Tops) name blobs; to_proto() writes the net."""

    def __init__(self, name=None):
        super().__setattr__("tops", OrderedDict())
        super().__setattr__("name", name)

    def __setattr__(self, key, value):
        self.tops[key] = value

    def __getattr__(self, key):
        try:
            return self.tops[key]
        except KeyError:
            raise AttributeError(key) from None

    __setitem__ = __setattr__
    __getitem__ = __getattr__

    def __delitem__(self, key):
        del self.tops[key]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        """The NetParameter: blobs and layers named by the attributes they were assigned to,
        the rest `<Type><k>`."""
        names = {value: key for key, value in self.tops.items()}
        return _net_message(_collect(self.tops.values(), names), self.name)


def layer_function(type_name):
    """`layers.<Type>(*bottoms, **params)`: the Top, a tuple of Tops when ntop > 1, or the
    Function itself when ntop is 0 (assigning that to a NetSpec names the layer)."""

    def make(*inputs, **params):
        fn = Function(type_name, inputs, params)
        if fn.ntop == 0:
            return fn
        return fn.tops[0] if fn.ntop == 1 else fn.tops

    make.__name__ = type_name
    return make


class _Layers:
    def __getattr__(self, type_name):
        return layer_function(type_name)


class _Params:
    """`params.Pooling.MAX`: the enum values of a type's parameter message."""

    def __getattr__(self, type_name):
        field = param_field(type_name)
        if field is None:
            raise AttributeError(f"no parameter message for layer type '{type_name}'")
        message = pb.LayerParameter.DESCRIPTOR.fields_by_name[field].message_type

        class Enums:
            pass

        for enum in message.enum_types:
            for value in enum.values:
                setattr(Enums, value.name, value.number)
        return Enums


layers = _Layers()
params = _Params()
