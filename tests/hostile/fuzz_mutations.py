"""Mutations of configs and binaries for the fuzz test (test_fuzz.py).

Each is a pure function of its input, a random.Random and a count, so Hypothesis can replay
and shrink a failing case from the seeds it drew.
"""
import math
import re

HOSTILE_INTS = [0, 1, -1, 2, 3, 7, 64, 100000, 2**31 - 1, -2**31, 2**32 - 1, 10**6]
HOSTILE_FLOATS = [0.0, -1.0, 0.5, 2.0, 1e30, -1e30, math.nan, math.inf, -math.inf, 1e-45,
                  3.4e38]
TEXT_INSERTS = ["\x00", "\x1b", "{", "}", "[", "]", ":", '"', "&a ", "*a", "!!int ", "- ",
                "\n", "#", "layer {", "<<: ", "\t", "\\"]
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


# ---- text and bytes ---------------------------------------------------------------------------

def mutate_text(text, rnd, count):
    """count random edits: a number swapped for a hostile one, a line deleted, duplicated or
    swapped, a character inserted."""
    for _ in range(count):
        lines = text.splitlines(keepends=True) or [""]
        op = rnd.randrange(5)
        numbers = list(_NUMBER.finditer(text))
        if op == 0 and numbers:
            m = rnd.choice(numbers)
            value = rnd.choice(HOSTILE_INTS + HOSTILE_FLOATS)
            text = text[:m.start()] + _number_text(value) + text[m.end():]
        elif op == 1:
            del lines[rnd.randrange(len(lines))]
            text = "".join(lines)
        elif op == 2:
            i = rnd.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "".join(lines)
        elif op == 3:
            i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        else:
            at = rnd.randrange(len(text) + 1)
            text = text[:at] + rnd.choice(TEXT_INSERTS) + text[at:]
    return text


def _number_text(value):
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
    return repr(value)


def mutate_bytes(data, rnd, count):
    """count random edits: a byte flipped, a truncation, a span deleted or repeated, random
    bytes inserted, a varint made huge."""
    data = bytearray(data)
    for _ in range(count):
        op = rnd.randrange(6)
        n = len(data)
        if n == 0:
            data += bytes(rnd.randrange(256) for _ in range(8))
        elif op == 0:
            data[rnd.randrange(n)] ^= 1 << rnd.randrange(8)
        elif op == 1:
            del data[rnd.randrange(n):]
        elif op == 2:
            i = rnd.randrange(n)
            del data[i:i + rnd.randrange(1, 64)]
        elif op == 3:
            i = rnd.randrange(n)
            data[i:i] = data[i:i + rnd.randrange(1, 64)]
        elif op == 4:
            i = rnd.randrange(n + 1)
            data[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 9)))
        else:  # a length or dimension varint -> 2^31 - 1 or 2^63
            i = rnd.randrange(n)
            data[i:i + 1] = rnd.choice([b"\xff\xff\xff\xff\x07", b"\xff" * 9 + b"\x01"])
    return bytes(data)


# ---- structured (protobuf) mutations ---------------------------------------------------------

def _numeric_fields(message, path=()):
    """(message, field) for every numeric/bool field of message and of its present
    sub-messages (unset scalars included: setting them is a mutation too)."""
    out = []
    for field in message.DESCRIPTOR.fields:
        repeated = _is_repeated(field)
        if field.cpp_type == field.CPPTYPE_MESSAGE:
            if repeated:
                for item in getattr(message, field.name):
                    out += _numeric_fields(item, path + (field.name,))
            elif message.HasField(field.name):
                out += _numeric_fields(getattr(message, field.name), path + (field.name,))
        elif field.cpp_type not in (field.CPPTYPE_STRING,):
            out.append((message, field))
    return out


def _is_repeated(field):
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == field.LABEL_REPEATED


_RANGES = {"CPPTYPE_INT32": (-2**31, 2**31 - 1), "CPPTYPE_UINT32": (0, 2**32 - 1),
           "CPPTYPE_INT64": (-2**63, 2**63 - 1), "CPPTYPE_UINT64": (0, 2**64 - 1)}


def _hostile_value(field, rnd):
    f = field
    if f.cpp_type in (f.CPPTYPE_FLOAT, f.CPPTYPE_DOUBLE):
        return rnd.choice(HOSTILE_FLOATS)
    if f.cpp_type == f.CPPTYPE_BOOL:
        return rnd.random() < 0.5
    if f.cpp_type == f.CPPTYPE_ENUM:
        return rnd.choice([v.number for v in f.enum_type.values])
    names = {getattr(f, name): name for name in _RANGES}
    low, high = _RANGES[names[f.cpp_type]]
    return min(max(rnd.choice(HOSTILE_INTS), low), high)


def set_numeric(message, rnd):
    fields = _numeric_fields(message)
    if not fields:
        return
    owner, field = rnd.choice(fields)
    value = _hostile_value(field, rnd)
    if _is_repeated(field):
        values = getattr(owner, field.name)
        if len(values) and rnd.random() < 0.6:
            values[rnd.randrange(len(values))] = value
        else:
            values.append(value)
    else:
        setattr(owner, field.name, value)


def mutate_net(net, rnd, count, layer_types):
    """count structural edits of a NetParameter's layers."""
    from caffelite.proto import caffelite_pb2 as pb

    layer_params = [f.name for f in pb.LayerParameter.DESCRIPTOR.fields
                    if f.name.endswith("_param") and f.cpp_type == f.CPPTYPE_MESSAGE
                    and not _is_repeated(f)]
    for _ in range(count):
        layers = net.layer
        if not len(layers):
            return
        lp = layers[rnd.randrange(len(layers))]
        if lp.type == "Data" and rnd.random() < 0.7:
            lp = layers[rnd.randrange(len(layers))]  # the layers after the data, mostly
        op = rnd.randrange(10)
        if op >= 8:
            _append_template(net, rnd, layer_types, layer_params)
            continue
        if op <= 2:
            set_numeric(lp, rnd)
        elif op == 3 and len(lp.bottom) and len(lp.top):
            lp.top[0] = lp.bottom[0]  # in place
        elif op == 4:
            lp.type = rnd.choice(layer_types)
        elif op == 5:
            getattr(lp, rnd.choice(layer_params)).SetInParent()
            set_numeric(lp, rnd)
        elif op == 6:
            del layers[rnd.randrange(len(layers))]
        else:
            shapes = [s for s in lp.input_param.shape] + [s for s in
                                                          lp.dummy_data_param.shape]
            if shapes:
                shape = rnd.choice(shapes)
                if len(shape.dim) and rnd.random() < 0.7:
                    shape.dim[rnd.randrange(len(shape.dim))] = rnd.choice([0, 1, 2**20])
                else:
                    shape.ClearField("dim")  # 0-D
            else:
                set_numeric(lp, rnd)


HOSTILE_STRINGS = ["", "/dev/zero", "/", "no_such.caffemodel", "x" * 300, "\x00", "..",
                   "conv1", "ip1", "data"]


def _repeated_fields(message):
    """(message, field) for every non-empty repeated field, in message and its sub-messages."""
    out = []
    for field, value in message.ListFields():
        if _is_repeated(field):
            out.append((message, field))
            if field.cpp_type == field.CPPTYPE_MESSAGE:
                for item in value:
                    out += _repeated_fields(item)
        elif field.cpp_type == field.CPPTYPE_MESSAGE:
            out += _repeated_fields(value)
    return out


def _string_fields(message):
    out = []
    for field in message.DESCRIPTOR.fields:
        if field.cpp_type == field.CPPTYPE_MESSAGE:
            items = getattr(message, field.name) if _is_repeated(field) else (
                [getattr(message, field.name)] if message.HasField(field.name) else [])
            for item in items:
                out += _string_fields(item)
        elif field.type == field.TYPE_STRING and not _is_repeated(field):
            out.append((message, field))
    return out


def mutate_proto(data, message_type, rnd, count):
    """The serialized message_type in data with count structural edits: a number set to a
    hostile value (shape dims, iter, ...), a repeated item dropped or a value list cut short,
    a string (a name, learned_net) replaced. Bytes that do not parse are returned as they are.
    """
    message = message_type()
    try:
        message.ParseFromString(data)
    except Exception:  # a seed that is already damaged: mutate_bytes covers it
        return data
    for _ in range(count):
        op = rnd.randrange(4)
        repeated, strings = _repeated_fields(message), _string_fields(message)
        if op == 2 and repeated:
            owner, field = rnd.choice(repeated)
            values = getattr(owner, field.name)
            if field.cpp_type == field.CPPTYPE_MESSAGE or rnd.random() < 0.5:
                del values[rnd.randrange(len(values))]
            else:
                del values[rnd.randrange(len(values)):]
        elif op == 3 and strings:
            owner, field = rnd.choice(strings)
            setattr(owner, field.name, rnd.choice(HOSTILE_STRINGS))
        else:
            set_numeric(message, rnd)
    return message.SerializeToString()


def _append_template(net, rnd, layer_types, layer_params):
    """A new layer of a random type at the end: 1-3 bottoms from the blobs made so far, a new
    top (or in place), its own parameter message with a few hostile numbers."""
    blobs = [top for lp in net.layer for top in lp.top]
    if not blobs:
        return
    lp = net.layer.add(name=f"fuzz{len(net.layer)}", type=rnd.choice(layer_types))
    lp.bottom.extend(rnd.choice(blobs) for _ in range(rnd.randint(1, 3)))
    lp.top.append(lp.bottom[0] if rnd.random() < 0.2 else f"fuzz_top{len(net.layer)}")
    if rnd.random() < 0.3:
        lp.top.append(f"fuzz_top{len(net.layer)}_b")
    key = lp.type.lower().replace("_", "")
    own = [name for name in layer_params if name[:-len("_param")].replace("_", "") in key]
    if own:
        getattr(lp, rnd.choice(own)).SetInParent()
    for _ in range(rnd.randint(0, 3)):
        set_numeric(lp, rnd)


SHAPES = [(2, 3, 4, 5), (2, 3), (2,), (), (2, 0, 3), (4, 1, 6, 6), (2, 3, 4), (3, 2, 1, 1),
          (6,), (2, 3, 4, 0), (2, 0, 4, 4), (0, 3, 4, 4), (0, 3)]


def template_net(rnd, layer_types, count):
    """A NetParameter: an Input of three blobs of random shapes (0-D and empty ones too),
    then one layer of a random type on 1-3 of them, with its parameter message and `count`
    random numbers in it; in place sometimes. Caffe's valid uses and the edges around them."""
    from caffelite.proto import caffelite_pb2 as pb

    net = pb.NetParameter(name="template", force_backward=rnd.random() < 0.5)
    source = net.layer.add(name="in", type="Input")
    for i in range(3):
        source.top.append(f"b{i}")
        source.input_param.shape.add().dim.extend(rnd.choice(SHAPES))
    layer_params = [f.name for f in pb.LayerParameter.DESCRIPTOR.fields
                    if f.name.endswith("_param") and f.cpp_type == f.CPPTYPE_MESSAGE
                    and not _is_repeated(f)]
    lp = net.layer.add(name="t", type=rnd.choice(layer_types))
    lp.bottom.extend(f"b{rnd.randrange(3)}" for _ in range(rnd.randint(1, 3)))
    lp.top.append(lp.bottom[0] if rnd.random() < 0.15 else "out")
    if rnd.random() < 0.3:
        lp.top.append("out2")
    key = lp.type.lower()
    own = [name for name in layer_params if name[:-len("_param")].replace("_", "") in key]
    if own:
        getattr(lp, rnd.choice(own)).SetInParent()
    for _ in range(count):
        set_numeric(lp, rnd)
    return net


def mutate_solver(solver, rnd, count):
    for _ in range(count):
        op = rnd.randrange(4)
        if op <= 1:
            set_numeric(solver, rnd)
        elif op == 2:
            solver.lr_policy = rnd.choice(["fixed", "step", "exp", "inv", "multistep", "poly",
                                           "sigmoid", "Poly", ""])
        else:
            solver.type = rnd.choice(["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta",
                                      "Adam", "sgd", ""])
