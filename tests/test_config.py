"""Configs: prototxt/YAML/JSON read and write, lossless round trips, errors, paths, convert."""
import json
import math
import os

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, need_shared
from google.protobuf import json_format, text_format

from caffelite.cli import main
from caffelite.errors import ConfigError
from caffelite.formats import config
from caffelite.proto import caffelite_pb2 as pb

EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.prototxt")) if EXAMPLES.exists() else []
LENET = EXAMPLES / "mnist" / "lenet.prototxt"


def message_cls(path):
    return pb.SolverParameter if "solver" in path.name else pb.NetParameter


# ---- lossless round trips --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_bvlc_example_round_trips_through_yaml_and_json(path, fmt, tmp_path):
    """prototxt -> YAML/JSON file -> message: equal, and the same text_format output."""
    original = config.parse_message(path.read_text(), message_cls(path), str(path))
    out = tmp_path / f"{path.stem}.{fmt}"
    config.write_message(original, out)
    back = config.parse_message(out.read_text(), message_cls(path), str(out))
    assert back == original
    assert text_format.MessageToString(back) == text_format.MessageToString(original)
    assert back.SerializeToString(deterministic=True) == \
        original.SerializeToString(deterministic=True)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_upgraded_examples_round_trip_through_the_public_readers(path, tmp_path):
    if message_cls(path) is pb.SolverParameter:
        solver = config.read_solver_param(path)
        config.write_solver_param(solver, tmp_path / "s.yaml")
        config.write_solver_param(solver, tmp_path / "s.prototxt")
        assert config.read_solver_param(tmp_path / "s.yaml") == solver
        assert config.read_solver_param(tmp_path / "s.prototxt") == solver
    else:
        net = config.read_net_param(path)
        config.write_net_param(net, tmp_path / "n.yml")
        config.write_net_param(net, tmp_path / "n.json")
        assert config.read_net_param(tmp_path / "n.yml") == net
        assert config.read_net_param(tmp_path / "n.json") == net


def test_examples_are_present_and_kinds_are_detected():
    need_shared(EXAMPLES)
    assert len(EXAMPLE_FILES) == 40
    for path in EXAMPLE_FILES:
        assert config.config_kind(path.read_text()) == ("solver" if "solver" in path.name
                                                        else "net"), path


TRICKY_FLOATS = [0.1, 1e-8, 0.00390625, 1 / 3, 3.4028234663852886e38, 1.401298464324817e-45,
                 1.17549435e-38, 16777217.0, 123456.789, -0.0, math.inf, -math.inf, 2.5e-7]


@pytest.mark.parametrize("fmt", ["yaml", "json", "prototxt"])
def test_float32_int64_and_double_values_round_trip_bit_exactly(fmt):
    solver = pb.SolverParameter(base_lr=0.1, random_seed=2**62 + 1, device_id=-2**31,
                                delta=1e-8, clip_gradients=math.nan)
    shape = solver.net_param.layer.add(name="in", type="Input").input_param.shape.add()
    shape.dim.extend([2**40 + 3, 1])
    blob = solver.net_param.layer[0].blobs.add(data=TRICKY_FLOATS,
                                                double_data=[0.1, 1 / 3, 1e-300, -0.0])
    blob.shape.dim.append(len(TRICKY_FLOATS))
    solver.net_param.layer[0].convolution_param.num_output = 2**32 - 1
    text = config.format_message(solver, fmt)
    back = config.parse_message(text, pb.SolverParameter, f"s.{fmt}")
    assert back.SerializeToString(deterministic=True) == \
        solver.SerializeToString(deterministic=True)
    got = np.array(back.net_param.layer[0].blobs[0].data, np.float32)
    assert got.tobytes() == np.array(TRICKY_FLOATS, np.float32).tobytes()


def test_yaml_is_readable_in_schema_order():
    net = text_format.Parse("""
        name: "tiny"
        layer { name: "data" type: "Input" top: "data"
                input_param { shape { dim: 64 dim: 1 dim: 28 dim: 28 } } }
        layer { top: "ip" bottom: "data" type: "InnerProduct" name: "ip"
                inner_product_param { weight_filler { type: "xavier" } num_output: 10 }
                param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
                include { phase: TRAIN } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label"
                loss_weight: 0.5 loss_param { normalization: BATCH_SIZE } }
        """, pb.NetParameter())
    assert config.format_message(net, "yaml") == """\
name: tiny
layer:
  - name: data
    type: Input
    top: data
    input_param:
      shape:
        - dim: [64, 1, 28, 28]

  - name: ip
    type: InnerProduct
    bottom: data
    top: ip
    param:
      - lr_mult: 1
      - lr_mult: 2
        decay_mult: 0
    include:
      - phase: TRAIN
    inner_product_param:
      num_output: 10
      weight_filler:
        type: xavier

  - name: loss
    type: SoftmaxWithLoss
    bottom: [ip, label]
    loss_weight: 0.5
    loss_param:
      normalization: BATCH_SIZE
"""


def test_json_uses_proto_names_and_protobuf_reads_it_too():
    net = config.read_net_param(need_shared(LENET))
    text = config.format_message(net, "json")
    tree = json.loads(text)
    assert tree["layer"][1]["convolution_param"]["weight_filler"] == {"type": "xavier"}
    assert tree["layer"][2]["pooling_param"]["pool"] == "MAX"
    assert tree["layer"][0]["input_param"]["shape"][0]["dim"] == [64, 1, 28, 28]
    assert "convolutionParam" not in text
    assert json_format.Parse(text, pb.NetParameter()) == net  # protobuf's own JSON reader


def test_hand_written_yaml_equals_bvlc_prototxt(tmp_path):
    """The deploy LeNet written by hand in YAML (scalars for one-item lists, enums by name,
    a merge key for the shared fillers) reads into the message Caffe's prototxt gives."""
    path = tmp_path / "lenet.yaml"
    path.write_text("""
name: LeNet
layer:
  - name: data
    type: Input
    top: data
    input_param: {shape: {dim: [64, 1, 28, 28]}}
  - name: conv1
    type: Convolution
    bottom: data
    top: conv1
    param: [{lr_mult: 1}, {lr_mult: 2}]
    convolution_param: &conv
      num_output: 20
      kernel_size: 5
      stride: 1
      weight_filler: {type: xavier}
      bias_filler: {type: constant}
  - {name: pool1, type: Pooling, bottom: conv1, top: pool1,
     pooling_param: {pool: MAX, kernel_size: 2, stride: 2}}
  - name: conv2
    type: Convolution
    bottom: pool1
    top: conv2
    param: [{lr_mult: 1}, {lr_mult: 2}]
    convolution_param:
      <<: *conv
      num_output: 50
  - {name: pool2, type: Pooling, bottom: conv2, top: pool2,
     pooling_param: {pool: 0, kernel_size: 2, stride: 2}}
  - name: ip1
    type: InnerProduct
    bottom: pool2
    top: ip1
    param: [{lr_mult: 1}, {lr_mult: 2}]
    inner_product_param:
      num_output: 500
      weight_filler: {type: xavier}
      bias_filler: {type: constant}
  - {name: relu1, type: ReLU, bottom: ip1, top: ip1}
  - name: ip2
    type: InnerProduct
    bottom: ip1
    top: ip2
    param: [{lr_mult: 1}, {lr_mult: 2}]
    innerProductParam:         # protobuf's JSON name is accepted as well
      num_output: 10
      weight_filler: {type: xavier}
      bias_filler: {type: constant}
  - {name: prob, type: Softmax, bottom: ip2, top: prob}
""")
    assert config.read_net_param(path) == config.read_net_param(need_shared(LENET))


def test_yaml_values_are_normalised_by_the_schema():
    solver = config.parse_solver_text("""
base_lr: 1e-3            # YAML 1.1 reads this as a string; the schema says float
weight_decay: 5e-4
test_iter: 100           # one value for a repeated field
stepvalue: [10, 20]
solver_mode: CPU
random_seed: "42"        # JSON writes int64 as strings
test_initialization: false
net_param:
  name: 1.10             # a string field keeps the text as written
  layer:
    name: d
    type: Data
    transform_param:     # present and empty
    include: {phase: 1}
""", "s.yaml")
    assert solver.base_lr == np.float32(1e-3) and solver.weight_decay == np.float32(5e-4)
    assert list(solver.test_iter) == [100] and list(solver.stepvalue) == [10, 20]
    assert solver.solver_mode == pb.SolverParameter.CPU and solver.random_seed == 42
    assert solver.HasField("test_initialization") and not solver.test_initialization
    assert solver.net_param.name == "1.10"
    layer = solver.net_param.layer[0]
    assert layer.HasField("transform_param") and layer.include[0].phase == pb.TEST


def test_empty_configs_give_empty_messages():
    for fmt in ("prototxt", "yaml", "json"):
        assert config.parse_message("", pb.NetParameter, f"x.{fmt}") == pb.NetParameter()


# ---- errors ----------------------------------------------------------------------------------

LENET_YAML = """\
name: LeNet
layer:
  - name: data
    type: Input
    top: data
    input_param:
      shape: {dim: [64, 1, 28, 28]}

  - name: conv1
    type: Convolution
    bottom: data
    top: conv1
    convolution_parm:
      num_output: 20
"""


def error(text, filename, solver=False):
    parse = config.parse_solver_text if solver else config.parse_net_text
    with pytest.raises(ConfigError) as info:
        parse(text, filename)
    exc = info.value
    # one clean error: no protobuf/yaml exception chained behind it
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    return str(exc)


def test_misspelt_field_in_yaml_names_file_line_layer_and_fix():
    assert error(LENET_YAML, "lenet.yaml") == (
        "unknown field 'convolution_parm' in layer 'conv1' (lenet.yaml:13); "
        "did you mean 'convolution_param'?")


def test_misspelt_field_in_prototxt_names_file_line_layer_and_fix():
    text = config.format_message(config.parse_net_text(LENET_YAML.replace("_parm", "_param"),
                                                       "x.yaml"))
    text = text.replace("convolution_param", "convolution_parm")
    line = text.splitlines().index("  convolution_parm {") + 1
    assert error(text, "lenet.prototxt") == (
        f"unknown field 'convolution_parm' in layer 'conv1' (lenet.prototxt:{line}); "
        "did you mean 'convolution_param'?")


def test_misspelt_field_in_json_and_nested_messages():
    text = json.dumps({"layer": [{"name": "a", "type": "ReLU"},
                                 {"name": "conv1", "convolution_param": {"kernel_sz": 3}}]},
                      indent=2)
    assert error(text, "n.json") == ("unknown field 'kernel_sz' in convolution_param of layer "
                                     "'conv1' (n.json:10); did you mean 'kernel_size'?")
    prototxt = 'layer {\n  name: "c"\n  convolution_param {\n    weight_filler { tipe: "x" }\n}}'
    assert error(prototxt, "n.prototxt") == ("unknown field 'tipe' in weight_filler of layer 'c' "
                                             "(n.prototxt:4); did you mean 'type'?")
    assert error("base_lr: 0.1\nmax_iters: 5\n", "s.yaml", solver=True) == (
        "unknown field 'max_iters' in SolverParameter (s.yaml:2); did you mean 'max_iter'?")
    assert "write param { lr_mult" in error("layer: {name: x, blobs_lr: 1}", "n.yaml")


def test_unknown_enum_value():
    expected = ("unknown value 'MAXX' for 'pool' in pooling_param of layer 'pool1' ({}:3); "
                "did you mean 'MAX'?")
    yaml_text = "layer:\n  - name: pool1\n    pooling_param: {pool: MAXX}\n"
    assert error(yaml_text, "p.yaml") == expected.format("p.yaml")
    prototxt = 'layer {\n  name: "pool1"\n  pooling_param { pool: MAXX }\n}\n'
    assert error(prototxt, "p.prototxt") == expected.format("p.prototxt")
    assert "one of TRAIN, TEST" in error("layer: {name: a, phase: 7}", "p.yaml")


def test_yaml_and_json_syntax_errors_give_the_line():
    msg = error("layer:\n  - name: a\n    type: ReLU\n   bad: indent\n", "bad.yaml")
    assert msg.startswith("YAML syntax error (bad.yaml:4): ")
    msg = error('{\n  "layer": [\n    {"name": "a"},\n  ]\n}\n', "bad.json")
    assert msg.startswith("JSON syntax error (bad.json:4): ")
    msg = error('layer {\n  name: "ip"\n  inner_product_param {\n    num_output: 5\n  }\n',
                "bad.prototxt")
    assert msg == ("syntax error in layer 'ip' (bad.prototxt:5): the file ends before the block "
                   "is closed: a '}' is missing")
    assert error("layer:\n  - name: a\n    top: x\n    top: y\n", "d.yaml") == (
        "'top' given twice (d.yaml:4); a repeated field takes a list: top: [a, b]")


@pytest.mark.parametrize("yaml_value, prototxt_value, detail", [
    ("num_output: 5.5", "num_output: 5.5", "integer"),
    ("num_output: -1", "num_output: -1", "range"),
    ("bias_term: maybe", "bias_term: maybe", "true"),
    ("kernel_size: {a: 1}", None, "expected an integer, got a mapping"),
    ("num_output: [1, 2]", None, "takes one value, not a list"),
])
def test_wrong_value_types(yaml_value, prototxt_value, detail):
    where = "bad value for '{}' in convolution_param of layer 'c' ({}:2): "
    field = yaml_value.split(":")[0]
    msg = error(f"layer:\n  - {{name: c, convolution_param: {{{yaml_value}}}}}\n", "w.yaml")
    assert msg.startswith(where.format(field, "w.yaml")) and detail in msg
    if prototxt_value:
        msg = error(f'layer {{ name: "c"\n convolution_param {{ {prototxt_value} }} }}',
                    "w.prototxt")
        assert msg.startswith(where.format(field, "w.prototxt")) and detail.lower() in msg.lower()
    assert "expected a mapping of LayerParameter" in error("layer: [5]", "w.yaml")
    assert "the top level must be a mapping" in error("- a\n- b\n", "w.yaml")


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nothere\.prototxt: no such file"):
        config.read_net_param(tmp_path / "nothere.prototxt")
    with pytest.raises(ConfigError, match="is a directory"):
        config.read_solver_param(tmp_path)
    weights = tmp_path / "lenet.caffemodel"
    weights.write_bytes(b"\n\x05LeNet\xa2\x06\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a text config.*caffemodel holds weights"):
        config.read_net_param(weights)


# ---- paths -----------------------------------------------------------------------------------

def test_resolve_path(tmp_path, monkeypatch):
    (tmp_path / "cfg" / "data").mkdir(parents=True)
    (tmp_path / "cfg" / "data" / "train.npz").write_bytes(b"")
    (tmp_path / "root" / "examples").mkdir(parents=True)
    (tmp_path / "root" / "examples" / "net.prototxt").write_text("")
    (tmp_path / "root" / "examples" / "mnist").mkdir()
    (tmp_path / "cwd_only.txt").write_text("")
    base = tmp_path / "cfg" / "solver.prototxt"
    monkeypatch.chdir(tmp_path)
    assert config.resolve_path("data/train.npz", base) == str(tmp_path / "cfg/data/train.npz")
    assert config.resolve_path("cwd_only.txt", base) == "cwd_only.txt"
    assert config.resolve_path("missing.npz", base) == "missing.npz"
    assert config.resolve_path("/abs/x.npz", base) == "/abs/x.npz"
    assert config.resolve_path("caffelite://mnist10k/train", base) == "caffelite://mnist10k/train"
    assert config.resolve_path("data/train.npz", None) == "data/train.npz"
    # a BVLC-style path from the Caffe root, named by a file deeper in the tree
    deep = tmp_path / "root" / "examples" / "mnist" / "solver.prototxt"
    assert config.resolve_path("examples/net.prototxt", deep) == \
        str(tmp_path / "root/examples/net.prototxt")


def test_resolve_bvlc_solver_net_path_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver_file = need_shared(EXAMPLES / "mnist" / "lenet_solver.prototxt")
    solver = config.resolve_solver_paths(config.read_solver_param(solver_file), solver_file)
    assert solver.net == str(EXAMPLES / "mnist" / "lenet_train_test.prototxt")
    assert solver.snapshot_prefix == "examples/mnist/lenet"  # an output: as written


def test_resolve_net_paths(tmp_path):
    for name in ("train.npz", "mean.binaryproto", "h5list.txt", "images.txt", "H.binaryproto",
                 "windows.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "imgs").mkdir()
    net = config.parse_net_text("""
        layer { name: "a" type: "Data" data_param { source: "train.npz" }
                transform_param { mean_file: "mean.binaryproto" } }
        layer { name: "b" type: "Data" data_param { source: "caffelite://mnist10k/test" } }
        layer { name: "c" type: "HDF5Data" hdf5_data_param { source: "h5list.txt" } }
        layer { name: "d" type: "ImageData"
                image_data_param { source: "images.txt" root_folder: "imgs/" } }
        layer { name: "e" type: "InfogainLoss" infogain_loss_param { source: "H.binaryproto" } }
        layer { name: "f" type: "WindowData" window_data_param { source: "windows.txt" } }
        layer { name: "g" type: "HDF5Output" hdf5_output_param { file_name: "out.h5" } }
        """)
    base = tmp_path / "net.yaml"
    resolved = config.resolve_net_paths(net, base)
    layers = {layer.name: layer for layer in resolved.layer}
    assert layers["a"].data_param.source == str(tmp_path / "train.npz")
    assert layers["a"].transform_param.mean_file == str(tmp_path / "mean.binaryproto")
    assert layers["b"].data_param.source == "caffelite://mnist10k/test"
    assert layers["c"].hdf5_data_param.source == str(tmp_path / "h5list.txt")
    assert layers["d"].image_data_param.source == str(tmp_path / "images.txt")
    assert layers["d"].image_data_param.root_folder == str(tmp_path / "imgs") + "/"
    assert layers["e"].infogain_loss_param.source == str(tmp_path / "H.binaryproto")
    assert layers["f"].window_data_param.source == str(tmp_path / "windows.txt")
    assert layers["g"].hdf5_output_param.file_name == "out.h5"
    assert net.layer[0].data_param.source == "train.npz", "the input message must not change"


def test_resolve_solver_paths_covers_inline_nets(tmp_path):
    for name in ("net.prototxt", "t1.prototxt", "w.caffemodel", "train.npz"):
        (tmp_path / name).write_text("")
    solver = config.parse_solver_text("""
        net: "net.prototxt" test_net: "t1.prototxt" weights: "w.caffemodel"
        train_net_param { layer { name: "d" type: "Data" data_param { source: "train.npz" } } }
        """)
    resolved = config.resolve_solver_paths(solver, tmp_path / "solver.prototxt")
    assert resolved.net == str(tmp_path / "net.prototxt")
    assert list(resolved.test_net) == [str(tmp_path / "t1.prototxt")]
    assert list(resolved.weights) == [str(tmp_path / "w.caffemodel")]
    assert resolved.train_net_param.layer[0].data_param.source == str(tmp_path / "train.npz")


# ---- caffelite convert -----------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def test_convert_net_prototxt_yaml_json_and_back(tmp_path):
    src = need_shared(EXAMPLES / "mnist" / "lenet_train_test.prototxt")
    expected = config.format_message(config.read_net_param(src))
    result = run(src, tmp_path / "n.yaml")
    assert result.exit_code == 0, result.output
    assert "wrote net" in result.output
    assert run(tmp_path / "n.yaml", tmp_path / "n.json").exit_code == 0
    assert run(tmp_path / "n.json", tmp_path / "n.prototxt").exit_code == 0
    assert (tmp_path / "n.prototxt").read_text() == expected


def test_convert_solver_upgrades_inline_v1_net(tmp_path):
    src = need_shared(EXAMPLES / "mnist" / "lenet_consolidated_solver.prototxt")
    result = run(src, tmp_path / "s.yaml")
    assert result.exit_code == 0, result.output
    assert "wrote solver" in result.output and "upgraded" in result.output
    solver = config.read_solver_param(tmp_path / "s.yaml")
    assert solver.net_param.layer[3].type == "Convolution" and not solver.net_param.layers
    assert run(src, tmp_path / "raw.prototxt", "--no-upgrade").exit_code == 0
    raw = config.parse_message((tmp_path / "raw.prototxt").read_text(), pb.SolverParameter)
    assert len(raw.net_param.layers) == 12
    assert run(tmp_path / "s.yaml", tmp_path / "n.json", "--kind", "net").exit_code == 2


def test_convert_errors_are_one_line_with_status_2(tmp_path):
    bad = tmp_path / "lenet.yaml"
    bad.write_text(LENET_YAML)
    for args in ([bad, tmp_path / "x.prototxt"], [tmp_path / "missing.yaml", tmp_path / "y.json"]):
        result = run(*args)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("caffelite: error: "), result.output
    assert "did you mean 'convolution_param'" in run(bad, tmp_path / "x.prototxt").output
    assert not os.path.exists(tmp_path / "x.prototxt")
