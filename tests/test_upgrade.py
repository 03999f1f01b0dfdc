"""Caffe's upgrade paths: V0 and V1 nets, data and input fields, BatchNorm, solver_type."""
import re

import pytest
from conftest import EXAMPLES, SHARED, need_shared
from google.protobuf import text_format

from caffelite.errors import ConfigError
from caffelite.formats import config
from caffelite.formats.upgrade import (
    V1_LAYER_TYPES,
    net_needs_upgrade,
    upgrade_net_param,
    upgrade_solver_param,
)
from caffelite.proto import caffelite_pb2 as pb

EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.prototxt")) if EXAMPLES.exists() else []


def parse(text, cls=pb.NetParameter):
    return text_format.Parse(text, cls())


def is_solver(path):
    return config.config_kind(path.read_text()) == "solver"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_bvlc_example_reads_into_current_layers(path):
    if is_solver(path):
        solver = config.read_solver_param(path)
        assert not solver.HasField("solver_type")
        nets = [solver.net_param, solver.train_net_param, *solver.test_net_param]
    else:
        nets = [config.read_net_param(path)]
    for net in nets:
        assert not net.layers and not net.input and not net.input_dim and not net.input_shape
        assert all(layer.type for layer in net.layer), "a layer without a type string"


def test_bvlc_examples_are_present():
    need_shared(EXAMPLES)
    assert len(EXAMPLE_FILES) == 40
    legacy = [p.name for p in EXAMPLE_FILES if re.search(r"^\s*layers\s*\{", p.read_text(), re.M)]
    assert legacy == ["lenet_consolidated_solver.prototxt"]


def test_only_legacy_examples_need_an_upgrade():
    need_shared(EXAMPLES)
    legacy = [p.name for p in EXAMPLE_FILES if not is_solver(p) and net_needs_upgrade(
        config.parse_net_text(p.read_text(), str(p), upgrade=False))]
    assert legacy == ["cifar10_full_sigmoid_train_test_bn.prototxt"]  # 3-param BatchNorm


def test_consolidated_solver_inline_v1_net_equals_the_v2_lenet():
    """Caffe's own V1 LeNet (inline in the solver) upgrades into the layers that
    lenet_train_test.prototxt spells in V2 form: an independent statement of the same net."""
    path = need_shared(EXAMPLES / "mnist/lenet_consolidated_solver.prototxt")
    solver = config.read_solver_param(path)
    net = solver.net_param
    assert [layer.type for layer in net.layer] == [
        "Data", "Data", "Data", "Convolution", "Pooling", "Convolution", "Pooling",
        "InnerProduct", "ReLU", "InnerProduct", "Accuracy", "SoftmaxWithLoss"]
    lenet = config.read_net_param(EXAMPLES / "mnist/lenet_train_test.prototxt")
    v2 = {layer.name: layer for layer in lenet.layer}
    for layer in net.layer[3:]:
        if layer.name != "accuracy":  # the consolidated one runs in both test stages
            assert layer == v2[layer.name], layer.name
    train = net.layer[0]
    assert train.include[0].phase == pb.TRAIN
    assert train.transform_param.scale == pytest.approx(0.00390625)
    assert train.data_param.backend == pb.DataParameter.LMDB
    assert [r.stage for r in net.layer[1].include] == [["test-on-test-set"]]
    assert [s.stage for s in solver.test_state] == [["test-on-test-set"], ["test-on-train-set"]]


V1_NET = """
name: "v1"
layers {
  name: "data" type: DATA top: "data" top: "label"
  data_param { source: "train_lmdb" backend: LMDB batch_size: 8
               scale: 0.5 mean_file: "mean.binaryproto" crop_size: 3 mirror: true }
  include { phase: TRAIN }
}
layers {
  name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "w" param: "b" blob_share_mode: STRICT blob_share_mode: PERMISSIVE
  convolution_param { num_output: 4 kernel_size: 3 }
  blobs { shape { dim: 1 } data: 0.5 }
  exclude { stage: "deploy" }
}
layers { name: "thr" type: THRESHOLD bottom: "conv" top: "thr" threshold_param { threshold: 0.1 } }
layers {
  name: "loss" type: SOFTMAX_LOSS bottom: "thr" bottom: "label" top: "loss"
  loss_weight: 2 loss_param { ignore_label: 3 } softmax_param { axis: 1 }
}
"""
V1_AS_V2 = """
name: "v1"
layer {
  name: "data" type: "Data" top: "data" top: "label"
  include { phase: TRAIN }
  transform_param { scale: 0.5 mean_file: "mean.binaryproto" crop_size: 3 mirror: true }
  data_param { source: "train_lmdb" backend: LMDB batch_size: 8 }
}
layer {
  name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { name: "w" share_mode: STRICT lr_mult: 1 decay_mult: 1 }
  param { name: "b" share_mode: PERMISSIVE lr_mult: 2 decay_mult: 0 }
  blobs { shape { dim: 1 } data: 0.5 }
  exclude { stage: "deploy" }
  convolution_param { num_output: 4 kernel_size: 3 }
}
layer { name: "thr" type: "Threshold" bottom: "conv" top: "thr" threshold_param { threshold: 0.1 } }
layer {
  name: "loss" type: "SoftmaxWithLoss" bottom: "thr" bottom: "label" top: "loss"
  loss_weight: 2 loss_param { ignore_label: 3 } softmax_param { axis: 1 }
}
"""


def test_v1_net_upgrades_every_field():
    net = config.parse_net_text(V1_NET, "v1.prototxt")
    assert net == parse(V1_AS_V2), text_format.MessageToString(net)


def test_v1_type_names_are_caffe_1_registered_types():
    """Every V1 enum maps to a type string that Caffe 1.0 registers (its list in the reference)."""
    doc = need_shared(SHARED / "reference" / "caffe-semantics.md").read_text()
    section = doc.split("## a.")[1].split("## b.")[0]
    registered = {t for t in re.findall(r"`([A-Z][A-Za-z0-9]*)`", section)
                  if not t.endswith("Parameter") and t != "Datum"}
    enum = pb.V1LayerParameter.LayerType.DESCRIPTOR
    assert set(V1_LAYER_TYPES) == {v.number for v in enum.values}
    assert V1_LAYER_TYPES[pb.V1LayerParameter.NONE] == ""
    assert {t for t in V1_LAYER_TYPES.values() if t} <= registered
    assert V1_LAYER_TYPES[pb.V1LayerParameter.SOFTMAX_LOSS] == "SoftmaxWithLoss"
    assert V1_LAYER_TYPES[pb.V1LayerParameter.INNER_PRODUCT] == "InnerProduct"


V0_NET = """
name: "v0net"
input: "data"
input_dim: 10 input_dim: 3 input_dim: 32 input_dim: 32
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer { name: "conv1" type: "conv" num_output: 16 kernelsize: 5 stride: 1 group: 2
          weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" }
          blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
         bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 5e-05 beta: 0.75 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 10 biasterm: false }
         bottom: "norm1" top: "fc" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "fc" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""
V0_AS_V2 = """
name: "v0net"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 10 dim: 3 dim: 32 dim: 32 } } }
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 16 pad: 2 kernel_size: 5 stride: 1 group: 2
                      weight_filler { type: "gaussian" std: 0.01 }
                      bias_filler { type: "constant" } }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75 } }
layer { name: "fc" type: "InnerProduct" bottom: "norm1" top: "fc"
        inner_product_param { num_output: 10 bias_term: false } }
layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" dropout_param { dropout_ratio: 0.3 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def test_v0_net_folds_padding_and_maps_fields():
    assert config.parse_net_text(V0_NET, "v0.prototxt") == parse(V0_AS_V2)


def test_v0_data_layer_fields_go_to_their_params():
    net = config.parse_net_text("""
        layers { layer { name: "mnist" type: "data" source: "train-leveldb" batchsize: 64
                         scale: 0.00390625 cropsize: 24 mirror: true meanfile: "mean.binaryproto"
                         rand_skip: 5 } top: "data" top: "label" }
        layers { layer { name: "loss" type: "softmax_loss" } bottom: "data" bottom: "label" }
        layers { layer { name: "win" type: "window_data" source: "w.txt" det_fg_threshold: 0.6
                         det_context_pad: 16 det_crop_mode: "square" } top: "w" }
        """, "v0.prototxt")
    assert net == parse("""
        layer { name: "mnist" type: "Data" top: "data" top: "label"
                transform_param { scale: 0.00390625 crop_size: 24 mirror: true
                                  mean_file: "mean.binaryproto" }
                data_param { source: "train-leveldb" batch_size: 64 rand_skip: 5 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" }
        layer { name: "win" type: "WindowData" top: "w"
                window_data_param { source: "w.txt" fg_threshold: 0.6 context_pad: 16
                                    crop_mode: "square" } }
        """)


def test_v0_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"unknown V0 layer type 'convv' in layer 'c1'.*'conv'"):
        config.parse_net_text('layers { layer { name: "c1" type: "convv" } top: "x" }', "a.pt")
    with pytest.raises(ConfigError, match="reads blob 'nothing'"):
        config.parse_net_text('layers { layer { name: "r" type: "relu" } bottom: "nothing" }')
    with pytest.raises(ConfigError, match="padding layer 'p' must feed"):
        config.parse_net_text('input: "d" layers { layer { name: "p" type: "padding" pad: 1 } '
                              'bottom: "d" top: "q" } layers { layer { name: "r" type: "relu" } '
                              'bottom: "q" top: "q" }')
    with pytest.warns(UserWarning, match="'num_output' does not apply to layer 'r'"):
        config.parse_net_text('layers { layer { name: "r" type: "relu" num_output: 3 } top: "x" }')


def test_input_dim_becomes_a_leading_input_layer():
    net = config.parse_net_text("""
        name: "deploy" input: "data" input_dim: 1 input_dim: 3 input_dim: 227 input_dim: 227
        input: "im_info" input_dim: 1 input_dim: 3 input_dim: 1 input_dim: 1
        layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }""")
    assert net == parse("""
        name: "deploy"
        layer { name: "input" type: "Input" top: "data" top: "im_info"
                input_param { shape { dim: [1, 3, 227, 227] } shape { dim: [1, 3, 1, 1] } } }
        layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }""")


def test_input_shape_becomes_a_leading_input_layer_and_bare_input_is_dropped():
    net = config.parse_net_text('input: "x" input_shape { dim: 2 dim: 5 } '
                                'layer { name: "ip" type: "InnerProduct" bottom: "x" }')
    assert [layer.type for layer in net.layer] == ["Input", "InnerProduct"]
    assert list(net.layer[0].input_param.shape[0].dim) == [2, 5]
    legacy_caffemodel = config.parse_net_text('input: "x" layer { name: "ip" }')
    assert [layer.name for layer in legacy_caffemodel.layer] == ["ip"]
    assert not legacy_caffemodel.input


def test_input_count_mismatch_is_an_error():
    with pytest.raises(ConfigError, match="need 4 input_dim values"):
        config.parse_net_text('input: "x" input_dim: 1 input_dim: 2', "d.prototxt")
    with pytest.raises(ConfigError, match="2 input.*1 input_shape"):
        config.parse_net_text('input: "x" input: "y" input_shape { dim: 1 }', "d.prototxt")


def test_old_batch_norm_params_get_zero_lr_and_decay():
    net = config.read_net_param(need_shared(
        EXAMPLES / "cifar10/cifar10_full_sigmoid_train_test_bn.prototxt"))
    norms = [layer for layer in net.layer if layer.type == "BatchNorm"]
    assert len(norms) == 3
    for layer in norms:
        assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(0, 0)] * 3
    assert not net_needs_upgrade(net)  # and then it is current
    one_param = config.parse_net_text('layer { type: "BatchNorm" param { lr_mult: 1 } }')
    assert one_param.layer[0].param[0].lr_mult == 1  # only the old three-param form is touched


def test_mixing_layer_and_layers_is_an_error():
    with pytest.raises(ConfigError, match=r"mix\.prototxt: the net mixes 'layer'.*'layers'"):
        config.parse_net_text('layer { name: "a" } layers { name: "b" type: RELU }', "mix.prototxt")


def test_data_fields_in_a_v2_layer_move_unless_they_conflict():
    net = config.parse_net_text('layer { name: "d" type: "Data" data_param { scale: 0.5 } }')
    assert net.layer[0].transform_param.scale == 0.5
    assert not net.layer[0].data_param.HasField("scale")
    with pytest.raises(ConfigError, match="layer 'd' sets scale in both"):
        config.parse_net_text('layer { name: "d" type: "Data" data_param { scale: 0.5 } '
                              'transform_param { scale: 2 } }')


@pytest.mark.parametrize("enum_name, type_name", [
    ("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"), ("RMSPROP", "RMSProp"),
    ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_solver_type_enum_becomes_type_string(enum_name, type_name):
    solver = config.parse_solver_text(f"base_lr: 0.1 solver_type: {enum_name}")
    assert solver.type == type_name and not solver.HasField("solver_type")


def test_solver_type_and_type_together_is_an_error():
    with pytest.raises(ConfigError, match="s.prototxt: both 'solver_type'.*and 'type'"):
        config.parse_solver_text('solver_type: ADAM type: "Adam"', "s.prototxt")


def test_inline_nets_in_a_yaml_solver_are_upgraded(tmp_path):
    path = tmp_path / "solver.yaml"
    path.write_text("""
base_lr: 0.01
solver_type: NESTEROV
train_net_param:
  layers:
    - {name: ip, type: INNER_PRODUCT, blobs_lr: [1, 2], inner_product_param: {num_output: 3}}
test_net_param:
  - input: data
    input_dim: [1, 2, 3, 4]
    layer: {name: relu, type: ReLU, bottom: data, top: data}
""")
    solver = config.read_solver_param(path)
    assert solver.type == "Nesterov"
    assert solver.train_net_param.layer[0].type == "InnerProduct"
    assert [p.lr_mult for p in solver.train_net_param.layer[0].param] == [1, 2]
    test_net = solver.test_net_param[0]
    assert [layer.name for layer in test_net.layer] == ["input", "relu"]
    assert list(test_net.layer[0].input_param.shape[0].dim) == [1, 2, 3, 4]


def test_snapshot_prefix_rule(tmp_path):
    path = tmp_path / "my_solver.prototxt"
    path.write_text("base_lr: 0.1")
    assert config.read_solver_param(path).snapshot_prefix == str(tmp_path / "my_solver")
    (tmp_path / "snaps").mkdir()
    path.write_text(f'base_lr: 0.1 snapshot_prefix: "{tmp_path / "snaps"}"')
    assert config.read_solver_param(path).snapshot_prefix == str(tmp_path / "snaps" / "my_solver")
    path.write_text('snapshot_prefix: "out/lenet"')
    assert config.read_solver_param(path).snapshot_prefix == "out/lenet"


def test_upgrade_functions_work_in_place_and_return_the_message():
    net = parse('layers { name: "r" type: RELU }')
    assert upgrade_net_param(net, "x") is net and net.layer[0].type == "ReLU"
    solver = parse("solver_type: ADAM", pb.SolverParameter)
    assert upgrade_solver_param(solver) is solver and solver.type == "Adam"
    current = parse('layer { name: "r" type: "ReLU" }')
    assert upgrade_net_param(pb.NetParameter(layer=current.layer)) == current
