"""Each remaining exportable layer type against onnxruntime: normalisation, activations,
structure, recurrent layers, in-place chains, and what is dropped or refused."""
import numpy as np
import pytest
from onnx_check import check, check_layer, layer_net, random_inputs

import caffelite
from caffelite.export import ExportError, export_onnx


def one(kind, params="", bottoms=("x",), tops=("t",), name="l"):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{kind}" {b} {t} {params} }}'


ACTIVATIONS = {
    "relu": one("ReLU"),
    "leaky_relu": one("ReLU", "relu_param { negative_slope: 0.1 }"),
    "prelu": one("PReLU"),
    "prelu_shared": one("PReLU", "prelu_param { channel_shared: true }"),
    "elu": one("ELU", "elu_param { alpha: 0.7 }"),
    "sigmoid": one("Sigmoid"),
    "tanh": one("TanH"),
    "bnll": one("BNLL"),
    "abs": one("AbsVal"),
    "power": one("Power", "power_param { power: 3 scale: 0.5 shift: 0.2 }"),
    "power_square": one("Power", "power_param { power: 2 scale: -1.5 }"),
    "power_one": one("Power", "power_param { power: 1 scale: 2 shift: -1 }"),
    "power_constant": one("Power", "power_param { power: 0 scale: 2 }"),
    "power_zero_scale": one("Power", "power_param { power: 2 scale: 0 shift: 3 }"),
    "exp": one("Exp"),
    "exp_base_2": one("Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }"),
    "clip": one("Clip", "clip_param { min: -0.5 max: 0.7 }"),
    "swish": one("Swish", "swish_param { beta: 1.5 }"),
    "threshold": one("Threshold", "threshold_param { threshold: 0.2 }"),
    "dropout": one("Dropout", "dropout_param { dropout_ratio: 0.3 }"),
}


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_activation(case, rng):
    x = {"x": (3 * rng.standard_normal((2, 3, 4, 5))).astype(np.float32)}
    check_layer(ACTIVATIONS[case], [(2, 3, 4, 5)], rng, inputs=x)


@pytest.mark.parametrize("params", ["", "log_param { base: 10 scale: 2 shift: 0.5 }",
                                    "log_param { base: 2 }"])
def test_log(params, rng):
    x = {"x": rng.uniform(0.1, 5, (2, 3, 4)).astype(np.float32)}
    check_layer(one("Log", params), [(2, 3, 4)], rng, inputs=x)


def test_bnll_far_from_zero(rng):
    """Caffe's two branches: no overflow for large x, and the small tail for very negative x."""
    x = {"x": np.array([[-80, -20, -1, 0, 1, 20, 80]], np.float32)}
    check_layer(one("BNLL"), [(1, 7)], rng, inputs=x)


def test_in_place_chain_keeps_blob_names(rng):
    """conv1 → ReLU, Dropout, Scale, Power all in place on conv1: the output is still named
    conv1 and holds the end of the chain; the intermediate versions are internal."""
    snippet = "\n".join([
        one("Convolution", "convolution_param { num_output: 4 kernel_size: 3 }",
            tops=("conv1",), name="conv1"),
        one("ReLU", "relu_param { negative_slope: 0.2 }", ("conv1",), ("conv1",), "relu1"),
        one("Dropout", "", ("conv1",), ("conv1",), "drop1"),
        one("Scale", "scale_param { bias_term: true }", ("conv1",), ("conv1",), "scale1"),
        one("Power", "power_param { power: 2 shift: 1 }", ("conv1",), ("conv1",), "pow1")])
    model = check_layer(snippet, [(2, 3, 6, 6)], rng)
    assert [o.name for o in model.graph.output] == ["conv1"]


def test_split_fan_out_and_an_output_read_elsewhere(rng):
    """A blob read by two layers (Caffe inserts a Split) and a Dropout that is not in place
    (an alias): every output keeps its blob name."""
    snippet = "\n".join([
        one("InnerProduct", "inner_product_param { num_output: 6 }", tops=("ip",), name="ip"),
        one("ReLU", "", ("ip",), ("r",), "relu"),
        one("Sigmoid", "", ("ip",), ("s",), "sig"),
        one("Dropout", "", ("ip",), ("d",), "drop")])
    model = check_layer(snippet, [(3, 5)], rng)
    assert sorted(o.name for o in model.graph.output) == ["d", "r", "s"]


BN = 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" %s }'


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 5)])
def test_batch_norm_global_statistics(shape, rng):
    """mean = b0/s and var = b1/s with Caffe's stored scale factor s, followed by Scale."""
    snippet = BN % "" + one("Scale", "scale_param { bias_term: true }", ("x",), ("x",), "sc")
    check_layer(snippet, [shape], rng)


def test_batch_norm_zero_factor_and_batch_statistics(rng):
    net = layer_net(BN % "", [(4, 3, 5, 6)], rng)
    for blob in net.params["bn"]:
        blob.data[...] = 0  # s = 0: mean and var are 0
    check(net, random_inputs(net, rng))
    check_layer(BN % "batch_norm_param { use_global_stats: false eps: 0.001 }",
                [(4, 3, 5, 6)], rng)


@pytest.mark.parametrize("params", ["", "scale_param { axis: 0 num_axes: 0 }",
                                    "scale_param { axis: 1 num_axes: 2 bias_term: true }",
                                    "scale_param { axis: -1 num_axes: 1 }"])
def test_scale_learned(params, rng):
    check_layer(one("Scale", params), [(2, 3, 4, 5)], rng)


def test_scale_and_bias_by_a_second_bottom(rng):
    check_layer(one("Scale", "scale_param { axis: 1 bias_term: true }", ("x", "y")),
                [(2, 3, 4, 5), (3, 4)], rng, static_batch=True)
    check_layer(one("Scale", "scale_param { axis: 0 }", ("x", "y")), [(2, 3, 4, 5), (2, 3)],
                rng)
    check_layer(one("Bias", "bias_param { axis: 1 }", ("x", "y")), [(2, 3, 4, 5), (3,)], rng,
                static_batch=True)
    check_layer(one("Bias", "bias_param { num_axes: 2 }"), [(2, 3, 4, 5)], rng)


@pytest.mark.parametrize("params", ["", "mvn_param { across_channels: true }",
                                    "mvn_param { normalize_variance: false }",
                                    "mvn_param { across_channels: true eps: 0.01 }"])
def test_mvn(params, rng):
    check_layer(one("MVN", params), [(2, 3, 4, 5)], rng)


@pytest.mark.parametrize("params,shape", [
    ("inner_product_param { num_output: 5 }", (3, 2, 4, 2)),
    ("inner_product_param { num_output: 5 axis: 2 }", (3, 2, 4, 2)),
    ("inner_product_param { num_output: 5 transpose: true bias_term: false }", (3, 7)),
    ("inner_product_param { num_output: 4 axis: -1 transpose: true }", (3, 2, 6)),
])
def test_inner_product(params, shape, rng):
    check_layer(one("InnerProduct", params), [shape], rng)


@pytest.mark.parametrize("params", ["", "eltwise_param { operation: SUM coeff: 0.5 coeff: -2 "
                                    "coeff: 1 }", "eltwise_param { operation: PROD }",
                                    "eltwise_param { operation: MAX }"])
def test_eltwise(params, rng):
    check_layer(one("Eltwise", params, ("x", "y", "z")), [(2, 3, 4)] * 3, rng)


def test_concat_slice_flatten_reshape_crop(rng):
    check_layer(one("Concat", "concat_param { axis: 2 }", ("x", "y")), [(2, 3, 4), (2, 3, 1)],
                rng)
    check_layer(one("Slice", "slice_param { axis: 1 slice_point: 1 slice_point: 4 }",
                    tops=("a", "b", "c")), [(2, 6, 3)], rng)
    check_layer(one("Slice", "slice_param { axis: -1 }", tops=("a", "b")), [(2, 3, 4)], rng)
    check_layer(one("Flatten", "flatten_param { axis: 1 end_axis: 2 }"), [(2, 3, 4, 5)], rng)
    check_layer(one("Flatten", ""), [(2, 3, 4, 5)], rng)
    for shape in ("dim: 0 dim: -1 dim: 2", "dim: 2 dim: 60", "dim: -1"):
        model = check_layer(one("Reshape", f"reshape_param {{ shape {{ {shape} }} }}"),
                            [(2, 3, 4, 5)], rng, static_batch="dim: 2 dim: 60" in shape)
        assert model.graph.output
    check_layer(one("Reshape", "reshape_param { shape { dim: 6 dim: 2 } axis: 1 num_axes: 2 }"),
                [(2, 3, 4, 5)], rng)
    check_layer(one("Crop", "crop_param { axis: 2 offset: 1 offset: 2 }", ("x", "y")),
                [(2, 3, 7, 8), (2, 3, 4, 5)], rng)
    check_layer(one("Crop", "crop_param { axis: 1 offset: 1 }", ("x", "y")),
                [(2, 5, 7, 8), (2, 3, 4, 5)], rng)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax_over_one_axis(axis, rng):
    x = {"x": (3 * rng.standard_normal((2, 3, 4, 5))).astype(np.float32)}
    check_layer(one("Softmax", f"softmax_param {{ axis: {axis} }}"), [(2, 3, 4, 5)], rng,
                inputs=x)


@pytest.mark.parametrize("params", ["", "argmax_param { top_k: 3 }",
                                    "argmax_param { top_k: 2 out_max_val: true }",
                                    "argmax_param { axis: 1 top_k: 2 }",
                                    "argmax_param { axis: 2 out_max_val: true }"])
def test_arg_max_with_caffes_tie_rule(params, rng):
    """Small integers make many ties: Caffe ranks the larger index first."""
    x = {"x": rng.integers(0, 3, (3, 4, 5)).astype(np.float32)}
    check_layer(one("ArgMax", params), [(3, 4, 5)], rng, inputs=x)


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reduction(op, axis, rng):
    params = f"reduction_param {{ operation: {op} axis: {axis} coeff: -1.5 }}"
    check_layer(one("Reduction", params), [(2, 3, 4)], rng)


def test_tile_embed_batch_reindex_filter_parameter(rng):
    check_layer(one("Tile", "tile_param { axis: 1 tiles: 3 }"), [(2, 3, 2)], rng)
    indices = {"x": rng.integers(0, 7, (3, 4)).astype(np.float32)}
    check_layer(one("Embed", "embed_param { num_output: 5 input_dim: 7 }"), [(3, 4)], rng,
                inputs=indices)
    reindex = {"x": rng.standard_normal((4, 3)).astype(np.float32),
               "y": np.array([3, 0, 0, 2, 1], np.float32)}
    check_layer(one("BatchReindex", "", ("x", "y")), [(4, 3), (5,)], rng, inputs=reindex)
    keep = {"x": rng.standard_normal((5, 3)).astype(np.float32),
            "y": np.array([1, 0, 1, 1, 0], np.float32)}
    check_layer(one("Filter", "", ("x", "y")), [(5, 3), (5,)], rng, inputs=keep)
    snippet = (one("Parameter", "parameter_param { shape { dim: 3 dim: 2 } }", (), ("p",), "p")
               + one("Eltwise", "", ("x", "p"), ("s",), "sum"))
    check_layer(snippet, [(3, 2)], rng, static_batch=True)


def test_constant_dummy_data_is_a_constant(rng):
    snippet = (one("DummyData", 'dummy_data_param { shape { dim: 2 dim: 3 } data_filler { '
                   'type: "constant" value: 0.5 } }', (), ("c",), "dummy")
               + one("Eltwise", "eltwise_param { operation: PROD }", ("x", "c"), ("p",), "m"))
    model = check_layer(snippet, [(2, 3)], rng, static_batch=True)
    assert [i.name for i in model.graph.input] == ["x"]
    random = (one("DummyData", 'dummy_data_param { shape { dim: 2 dim: 3 } data_filler { '
                  'type: "gaussian" } }', (), ("r",), "noise")
              + one("Eltwise", "", ("x", "r"), ("s",), "sum"))
    net = layer_net(random, [(2, 3)], rng)
    model = export_onnx(net)
    assert [i.name for i in model.graph.input] == ["x", "r"]  # random data is an input
    x = rng.standard_normal((2, 3)).astype(np.float32)
    net.forward(x=x)
    from onnx_check import run

    out = run(model, {"x": x, "r": net.blobs["r"].data})
    np.testing.assert_allclose(out["s"], net.blobs["s"].data, rtol=1e-6)
    assert model.producer_name == "caffelite" and caffelite.export_onnx is export_onnx


def test_losses_and_accuracy_are_dropped_with_a_note(rng, caplog):
    snippet = (one("InnerProduct", "inner_product_param { num_output: 3 }", tops=("ip",),
                   name="ip")
               + one("SoftmaxWithLoss", "", ("ip", "y"), ("loss",), "loss")
               + one("Accuracy", "", ("ip", "y"), ("acc",), "acc"))
    net = layer_net(snippet, [(4, 5), (4,)], rng)
    with caplog.at_level("INFO", logger="caffelite"):
        model = export_onnx(net)
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["ip"]
    assert "dropped layer 'loss' (SoftmaxWithLoss)" in caplog.text
    assert "dropped layer 'acc' (Accuracy)" in caplog.text


def test_a_layer_that_cannot_be_exported_names_itself(rng):
    net = layer_net(one("Pooling", "pooling_param { pool: MAX kernel_size: 2 }",
                        tops=("p", "mask")), [(1, 2, 4, 4)], rng)
    with pytest.raises(ExportError, match="layer 'l' \\(Pooling\\).*argmax mask"):
        export_onnx(net)
    fixed = layer_net(one("Reshape", "reshape_param { shape { dim: 2 dim: -1 } }"),
                      [(2, 3)], rng)
    with pytest.raises(ExportError, match="dynamic batch.*--static-batch"):
        export_onnx(fixed)
    with pytest.raises(ExportError, match="opset 9"):
        export_onnx(fixed, opset=9, static_batch=True)


def test_opset_choices(rng):
    net = layer_net(one("MVN") + one("Softmax", "", ("t",), ("s",), "sm"), [(2, 3, 4)], rng)
    for opset in (13, 18, 21):
        model = check(net, random_inputs(net, rng), opset=opset)
        assert model.opset_import[0].version == opset


def test_train_phase_dropout_is_exported_as_identity_with_a_note(rng):
    net = layer_net(one("Dropout"), [(2, 3)], rng, phase=caffelite.TRAIN)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    from onnx_check import run

    out = run(export_onnx(net), {"x": x})
    np.testing.assert_array_equal(out["t"], x)
