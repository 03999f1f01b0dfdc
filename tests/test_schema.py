"""The schema: every field of Caffe 1.0's caffe.proto, and a generated module that is not stale."""
import csv
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED, need_shared
from google.protobuf import descriptor_pb2

from caffelite.proto import caffelite_pb2 as pb

FIELDS_TSV = SHARED / "reference" / "caffe_proto_fields.tsv"
F = descriptor_pb2.FieldDescriptorProto
LABELS = {F.LABEL_OPTIONAL: "optional", F.LABEL_REPEATED: "repeated",
          F.LABEL_REQUIRED: "required"}
SCALARS = {F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64",
           F.TYPE_UINT64: "uint64", F.TYPE_INT32: "int32", F.TYPE_BOOL: "bool",
           F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32"}


def compiled_file():
    """The FileDescriptorProto compiled into caffelite_pb2 (what the runtime actually uses)."""
    return descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)


def walk(file_proto):
    """{message path: DescriptorProto} and {enum path: EnumDescriptorProto}, nested as "A.B"."""
    messages, enums = {}, {}

    def visit(msg, prefix):
        name = prefix + msg.name
        messages[name] = msg
        for enum in msg.enum_type:
            enums[f"{name}.{enum.name}"] = enum
        for nested in msg.nested_type:
            visit(nested, name + ".")

    for msg in file_proto.message_type:
        visit(msg, "")
    for enum in file_proto.enum_type:
        enums[enum.name] = enum
    return messages, enums


def rows():
    with open(need_shared(FIELDS_TSV), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def same_default(field, expected):
    if field.type in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        # "1." / "1.0" / ".999" in Caffe's proto; compare the float32 values, not the spelling.
        return field.HasField("default_value") and \
            np.float32(field.default_value) == np.float32(expected)
    return field.default_value == expected


def test_every_caffe_field_and_enum_value_matches_the_compiled_schema():
    messages, enums = walk(compiled_file())
    problems, seen_fields, seen_values = [], set(), set()
    table = rows()
    assert len(table) == 534
    for row in table:
        where = f"{row['message']}.{row['field_name']}"
        if row["type"] == "enum":
            enum = enums.get(row["message"])
            values = {v.name: v.number for v in enum.value} if enum else {}
            if values.get(row["field_name"]) != int(row["number"]):
                problems.append(f"enum value {where} = {row['number']}: got "
                                f"{values.get(row['field_name'])}")
            seen_values.add((row["message"], row["field_name"]))
            continue
        fields = {f.name: f for f in messages[row["message"]].field} \
            if row["message"] in messages else {}
        field = fields.get(row["field_name"])
        if field is None:
            problems.append(f"missing field {where}")
            continue
        seen_fields.add((row["message"], field.name))
        type_name = SCALARS.get(field.type) or field.type_name.rsplit(".", 1)[-1]
        got = (field.number, LABELS[field.label], type_name,
               field.options.packed if field.options.HasField("packed") else False)
        want = (int(row["number"]), row["label"], row["type"], "packed" in row["notes"])
        if got != want:
            problems.append(f"{where}: (number, label, type, packed) {got} != {want}")
        if row["default"] and not same_default(field, row["default"]):
            problems.append(f"{where}: default {field.default_value!r} != {row['default']!r}")
        if not row["default"] and field.HasField("default_value"):
            problems.append(f"{where}: default {field.default_value!r} where Caffe has none")
    # Nothing beyond Caffe's schema either: every compiled field and enum value is a TSV row.
    for name, msg in messages.items():
        problems += [f"extra field {name}.{f.name}" for f in msg.field
                     if (name, f.name) not in seen_fields]
    for name, enum in enums.items():
        problems += [f"extra enum value {name}.{v.name}" for v in enum.value
                     if (name, v.name) not in seen_values]
    assert not problems, "\n".join(problems)
    assert len(seen_fields) + len(seen_values) == len(table)


def test_runtime_descriptors_agree_on_defaults_and_packing():
    # The same facts through the runtime classes users touch.
    assert pb.FillerParameter().type == "constant"
    assert pb.FillerParameter().variance_norm == pb.FillerParameter.FAN_IN
    assert pb.SolverParameter().solver_mode == pb.SolverParameter.GPU
    assert pb.SolverParameter().random_seed == -1
    assert np.float32(pb.SolverParameter().delta) == np.float32(1e-8)
    assert pb.NetState().phase == pb.TEST
    # On the wire as in Caffe's files: packed fields are one length-delimited record
    # (tag = number << 3 | 2), unpacked floats one fixed32 record each (number << 3 | 5).
    assert pb.BlobShape(dim=[1, 2]).SerializeToString() == b"\x0a\x02\x01\x02"
    blob = pb.BlobProto(data=[1.0, 2.0])
    assert blob.SerializeToString() == b"\x2a\x08" + np.array([1, 2], "<f4").tobytes()
    datum = pb.Datum(float_data=[1.0, 2.0])
    assert datum.SerializeToString() == b"".join(
        b"\x35" + np.float32(v).tobytes() for v in (1, 2))


def strip_for_comparison(file_proto):
    """Drop what differs between protoc releases but not in meaning: json_name (not stored in
    Python gencode), source info, and the spelling of float defaults ("0.999" vs "0.999000013")."""
    def visit(msgs):
        for msg in msgs:
            for field in msg.field:
                field.ClearField("json_name")
                if field.type in (F.TYPE_FLOAT, F.TYPE_DOUBLE) and field.HasField("default_value"):
                    field.default_value = repr(float(np.float32(field.default_value)))
            visit(msg.nested_type)

    file_proto.ClearField("source_code_info")
    visit(file_proto.message_type)
    return file_proto


def test_generated_module_is_not_stale(tmp_path):
    """proto/caffelite.proto compiled now gives the descriptor inside caffelite_pb2.py
    (regenerate with scripts/gen_proto.sh when this fails)."""
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpcio-tools not installed (pip install grpcio-tools) to compile the .proto")
    out = tmp_path / "caffelite.desc"
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
         f"--descriptor_set_out={out}", str(ROOT / "proto" / "caffelite.proto")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    assert strip_for_comparison(fresh) == strip_for_comparison(compiled_file()), \
        "caffelite_pb2.py is stale: run scripts/gen_proto.sh"
