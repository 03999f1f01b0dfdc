"""pycaffe's Net API: constructors, forward/backward with inputs, start/end and extra blobs,
forward_all, reshape, parameters, weights in and out, shared test nets, layer states, errors."""
import numpy as np
import pytest
from conftest import EXAMPLES, LENET_BVLC, need_shared
from google.protobuf import text_format

import caffelite
from caffelite.errors import NetError, WeightsError
from caffelite.net import Net
from caffelite.proto import caffelite_pb2 as pb

LINEAR = """
name: 'linear' force_backward: true
layer { name: 'input' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 3 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
        inner_product_param { num_output: 4 weight_filler { type: 'gaussian' }
                              bias_filler { type: 'gaussian' } } }
layer { name: 'relu' type: 'ReLU' bottom: 'ip' top: 'out' }
"""


def linear(seed=0, **kwargs):
    return Net(text_format.Parse(LINEAR, pb.NetParameter()), rng=np.random.default_rng(seed),
               **kwargs)


def test_forward_with_inputs(rng):
    net = linear()
    w, b = (blob.data for blob in net.params["ip"])
    x = rng.standard_normal((2, 3)).astype(np.float32)
    out = net.forward(data=x)
    assert list(out) == ["out"]
    np.testing.assert_allclose(out["out"], np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-6)
    # another batch size: the input blob and every layer reshape to it
    x5 = rng.standard_normal((5, 3))
    out = net.forward(data=x5)
    assert out["out"].shape == (5, 4)
    np.testing.assert_allclose(out["out"], np.maximum(x5 @ w.T + b, 0), rtol=1e-5, atol=1e-6)
    # extra blobs, and stopping at a layer: its tops
    out = net.forward(blobs=["ip"], data=x)
    assert sorted(out) == ["ip", "out"]
    np.testing.assert_allclose(out["ip"], x @ w.T + b, rtol=1e-5, atol=1e-6)
    net.blobs["out"].data[...] = -1
    out = net.forward(end="ip", data=x)
    assert list(out) == ["ip"] and np.all(net.blobs["out"].data == -1)
    out = net.forward(start="relu")  # continues from the blobs as they are
    np.testing.assert_allclose(out["out"], np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-6)


def test_backward_with_top_diffs(rng):
    net = linear()
    w = net.params["ip"][0].data
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = net.forward(data=x)["out"].copy()
    dy = rng.standard_normal((2, 4)).astype(np.float32)
    net.clear_param_diffs()
    diffs = net.backward(out=dy)
    assert list(diffs) == ["data"]
    dip = dy * (y > 0)
    np.testing.assert_allclose(diffs["data"], dip @ w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][0].diff, dip.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][1].diff, dip.sum(0), rtol=1e-5, atol=1e-6)
    diffs = net.backward(diffs=["ip"], end="ip", out=dy)
    assert sorted(diffs) == ["data", "ip"]
    np.testing.assert_allclose(diffs["ip"], dip, rtol=1e-6)


def test_forward_all_batches_and_trims(rng):
    net = linear()
    w, b = (blob.data for blob in net.params["ip"])
    x = rng.standard_normal((5, 3)).astype(np.float32)
    out = net.forward_all(data=x)
    assert out["out"].shape == (5, 4)
    np.testing.assert_allclose(out["out"], np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-6)
    assert net.blobs["data"].shape == (2, 3)  # batches of the net's own size


def test_reshape_and_attributes():
    net = linear()
    net.blobs["data"].reshape(7, 3)
    net.reshape()
    assert net.blobs["out"].shape == (7, 4)
    assert net.inputs == ["data"] and net.outputs == ["out"]
    assert net.input_blobs == [net.blobs["data"]] and net.output_blobs == [net.blobs["out"]]
    assert list(net.blobs) == ["data", "ip", "out"]
    assert list(net.params) == ["ip"] and list(net.layer_dict) == ["input", "ip", "relu"]
    assert net.top_names["relu"] == ["out"] and net.bottom_names["ip"] == ["data"]
    assert dict(net.blob_loss_weights) == {"data": 0.0, "ip": 0.0, "out": 0.0}
    assert net.learnable_params == net.params["ip"]
    assert net.params_lr == [1.0, 1.0] and net.params_weight_decay == [1.0, 1.0]
    assert "linear" in repr(net)


def test_update_and_clear_param_diffs(rng):
    net = linear()
    w = net.params["ip"][0]
    before = w.data.copy()
    w.diff[...] = rng.standard_normal(w.shape)
    diff = w.diff.copy()
    net.update()
    np.testing.assert_array_equal(w.data, before - diff)
    net.clear_param_diffs()
    assert not w.diff.any()


def test_constructors_phase_level_stages():
    param = text_format.Parse(LINEAR + """
layer { name: 'train_only' type: 'Sigmoid' bottom: 'out' top: 't' include { phase: TRAIN } }
layer { name: 'deep' type: 'TanH' bottom: 'out' top: 'd' include { min_level: 2 } }
layer { name: 'staged' type: 'AbsVal' bottom: 'out' top: 's' include { stage: 'x' } }
""", pb.NetParameter())
    names = lambda net: net.layer_names[3:]  # noqa: E731
    assert names(Net(param)) == []  # TEST by default
    assert Net(param).phase == caffelite.TEST
    assert "train_only" in names(Net(param, caffelite.TRAIN))
    assert "train_only" in names(Net(param, phase="TRAIN"))
    assert "deep" in names(Net(param, level=2))
    assert "staged" in names(Net(param, stages=["x"]))
    assert "staged" in names(Net(param, stages="x"))
    param.state.phase = pb.TRAIN  # a solver's net: the state inside the message applies
    assert Net(param).phase == caffelite.TRAIN
    with pytest.raises(NetError, match="phase must be TRAIN or TEST"):
        Net(param, phase="VAL")
    with pytest.raises(TypeError, match="path or a NetParameter"):
        Net(42)


def test_net_level_inputs_are_upgraded():
    param = text_format.Parse("""
input: 'data' input_shape { dim: 1 dim: 2 }
layer { name: 'relu' type: 'ReLU' bottom: 'data' top: 'out' }
""", pb.NetParameter())
    net = Net(param)
    assert net.layer_names == ["input", "relu"] and net.inputs == ["data"]
    assert net.blobs["data"].shape == (1, 2)


def test_rng_seeded_by_set_random_seed():
    caffelite.set_random_seed(7)
    a = Net(text_format.Parse(LINEAR, pb.NetParameter())).params["ip"][0].data
    caffelite.set_random_seed(7)
    b = Net(text_format.Parse(LINEAR, pb.NetParameter())).params["ip"][0].data
    np.testing.assert_array_equal(a, b)
    c = Net(text_format.Parse(LINEAR, pb.NetParameter())).params["ip"][0].data
    assert not np.array_equal(a, c)
    net = linear(seed=3)
    assert all(layer.rng is net.rng for layer in net.layers)


# -- weights --------------------------------------------------------------------------------------
def test_save_and_copy_from(tmp_path, rng):
    source, target = linear(seed=0), linear(seed=1)
    path = tmp_path / "linear.caffemodel"
    source.save(path)
    x = rng.standard_normal((2, 3))
    assert not np.allclose(target.forward(data=x)["out"], source.forward(data=x)["out"])
    target.copy_from(path)
    np.testing.assert_array_equal(target.forward(data=x)["out"], source.forward(data=x)["out"])
    proto = source.to_proto()
    assert [lp.name for lp in proto.layer] == ["input", "ip", "relu"]
    assert len(proto.layer[1].blobs) == 2 and not len(proto.layer[1].blobs[0].diff)
    assert len(source.to_proto(write_diff=True).layer[1].blobs[0].diff) == 12


def test_pycaffe_positional_weights_and_phase():
    model = need_shared(LENET_BVLC / "lenet.prototxt")
    weights = LENET_BVLC / "lenet_iter_5000.caffemodel"
    net = Net(str(model), str(weights), caffelite.TEST)
    other = Net(model, phase=caffelite.TEST, weights=weights)
    for name in ("conv1", "conv2", "ip1", "ip2"):
        np.testing.assert_array_equal(net.params[name][0].data, other.params[name][0].data)
    param = caffelite.formats.binary.load_caffemodel(weights)
    ip2 = [lp for lp in param.layer if lp.name == "ip2"][0]
    np.testing.assert_array_equal(net.params["ip2"][0].data,
                                  caffelite.formats.binary.read_blob_array(ip2.blobs[0]))


def test_share_trained_layers_with():
    train, test = linear(seed=0), linear(seed=1)
    test.share_trained_layers_with(train)
    for mine, theirs in zip(test.params["ip"], train.params["ip"]):
        assert np.shares_memory(mine.data, theirs.data)
        assert not np.shares_memory(mine.diff, theirs.diff)
    train.params["ip"][0].data[...] = 3
    assert np.all(test.params["ip"][0].data == 3)
    wide = Net(text_format.Parse(LINEAR.replace("num_output: 4", "num_output: 5"),
                                 pb.NetParameter()))
    with pytest.raises(NetError, match=r"param 0 of layer 'ip'.*\[4, 3\].*\[5, 3\]"):
        wide.share_trained_layers_with(train)


def test_layer_states_round_trip():
    text = """
layer { name: 'mnist' type: 'Data' top: 'data' top: 'label'
        data_param { source: 'caffelite://mnist10k/test' batch_size: 3 } }
layer { name: 'silence' type: 'Silence' bottom: 'data' bottom: 'label' }
"""
    net = Net(text_format.Parse(text, pb.NetParameter()))
    state = net.layer_states()
    first = net.forward(blobs=["label"])["label"].copy()
    net.forward()
    assert net.layer_states() != state
    net.load_layer_states(state)
    np.testing.assert_array_equal(net.forward(blobs=["label"])["label"], first)
    with pytest.raises(NetError, match="no layer 'mnst' with a state"):
        net.load_layer_states({"mnst": {}})


# -- errors naming the file and the layer ---------------------------------------------------------
def test_forward_backward_argument_errors():
    net = linear()
    with pytest.raises(NetError, match=r"'dat' is not one of the net's inputs.*did you mean "
                                       r"'data'"):
        net.forward(dat=np.zeros((2, 3)))
    with pytest.raises(NetError, match="has no layer 'rlu'; did you mean 'relu'"):
        net.forward(end="rlu")
    with pytest.raises(NetError, match="has no blob 'oot'"):
        net.forward(blobs=["oot"])
    with pytest.raises(NetError, match=r"diff for 'out' has shape \(3, 4\)"):
        net.backward(out=np.zeros((3, 4)))


def lenet_variant(tmp_path, old, new):
    text = need_shared(LENET_BVLC / "lenet.prototxt").read_text()
    assert old in text
    path = tmp_path / "lenet.prototxt"
    path.write_text(text.replace(old, new, 1))
    return path


def test_unknown_layer_type_names_file_and_layer(tmp_path):
    path = lenet_variant(tmp_path, 'type: "Pooling"', 'type: "Pooling2"')
    with pytest.raises(NetError, match=rf"^{path}: layer 'pool1' \(Pooling2\): unknown layer "
                                       r"type 'Pooling2'; did you mean 'Pooling'"):
        Net(path)


def test_missing_bottom_names_file_layer_and_blob(tmp_path):
    path = lenet_variant(tmp_path, 'bottom: "conv1"', 'bottom: "conv_1"')
    with pytest.raises(NetError, match=rf"^{path}: layer 'pool1' \(Pooling\): bottom 'conv_1' "
                                       r"\(index 0\) is produced by no earlier layer; did you "
                                       r"mean 'conv1'\? Available blobs: conv1, data"):
        Net(path)


def test_bad_layer_parameters_name_file_and_layer(tmp_path):
    path = lenet_variant(tmp_path, "kernel_size: 5", "kernel_size: 0")
    with pytest.raises(NetError, match=rf"^{path}: layer 'conv1' \(Convolution\)"):
        Net(path)


def test_weights_not_fitting_name_file_layer_and_shapes(tmp_path):
    path = lenet_variant(tmp_path, "num_output: 500", "num_output: 400")
    weights = LENET_BVLC / "lenet_iter_5000.caffemodel"
    net = Net(path)
    with pytest.raises(WeightsError, match=rf"^{weights}: cannot copy param 0 of layer 'ip1': "
                                           r"shape mismatch, file has \[500, 800\], net has "
                                           r"\[400, 800\]"):
        net.copy_from(weights)


def test_truncated_caffemodel_names_the_file(tmp_path):
    weights = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    truncated = tmp_path / "lenet_iter_5000.caffemodel"
    truncated.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(WeightsError, match=rf"^{truncated}: not a valid .caffemodel "
                                           r"\(truncated\?"):
        Net(LENET_BVLC / "lenet.prototxt", weights=truncated)


def test_bvlc_train_test_net_filters_by_phase():
    path = need_shared(EXAMPLES / "mnist/lenet_train_test.prototxt")
    param = caffelite.read_net_param(path)
    from caffelite.net_filter import filter_net

    for phase, layers in ((pb.TRAIN, 9), (pb.TEST, 10)):  # Accuracy is TEST-only
        param.state.phase = phase
        kept = filter_net(param)
        assert len(kept.layer) == layers
        assert kept.layer[0].data_param.batch_size == (64 if phase == pb.TRAIN else 100)


def test_debug_info_logs_mean_abs_values(caplog, rng):
    net = Net(text_format.Parse("debug_info: true" + LINEAR, pb.NetParameter()))
    x = rng.standard_normal((2, 3))
    with caplog.at_level("INFO", logger="caffelite"):
        net.forward(data=x)
        net.backward(out=np.ones((2, 4)))
    lines = [r.getMessage() for r in caplog.records]
    ip = np.abs(net.blobs["ip"].data).mean()
    assert f"    [Forward] Layer ip, top blob ip data: {ip:g}" in lines
    assert any(line.startswith("    [Forward] Layer ip, param blob 1 data: ") for line in lines)
    data_diff = np.abs(net.blobs["data"].diff).mean()
    assert f"    [Backward] Layer ip, bottom blob data diff: {data_diff:g}" in lines
    assert any(line.startswith("    [Backward] Layer ip, param blob 0 diff: ") for line in lines)
