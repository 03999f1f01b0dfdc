"""Net building and running: Caffe's test_net.cpp cases (filtering, loss weights, shared
weights, backward needs, reshape, splits), a net-level gradient check and the BVLC deploy nets."""
import numpy as np
import pytest
from conftest import EXAMPLES, need_shared
from google.protobuf import text_format

from caffelite.net import Net
from caffelite.net_filter import filter_net, insert_splits
from caffelite.proto import caffelite_pb2 as pb

SEED = 1702


def parse(text):
    return text_format.Parse(text, pb.NetParameter())


def make_net(text, seed=SEED, **kwargs):
    """A net from NetParameter text; the same seed gives the same weights and dummy data."""
    return Net(parse(text), rng=np.random.default_rng(seed), **kwargs)


GAUSS = "weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' value: 0 }"

TINY = f"""
name: 'TinyTestNetwork'
layer {{ name: 'data' type: 'DummyData'
  dummy_data_param {{ shape {{ dim: 5 dim: 2 dim: 3 dim: 4 }}
                     data_filler {{ type: 'gaussian' std: 0.01 }}
                     shape {{ dim: 5 }} data_filler {{ type: 'constant' value: 0 }} }}
  top: 'data' top: 'label' }}
layer {{ name: 'innerproduct' type: 'InnerProduct'
  inner_product_param {{ num_output: 1000 {GAUSS} }}
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  bottom: 'data' top: 'innerproduct' }}
layer {{ name: 'loss' type: 'SoftmaxWithLoss' bottom: 'innerproduct' bottom: 'label'
  top: 'top_loss' }}
"""
ACCURACY = """
layer { name: 'loss' type: 'Accuracy' bottom: 'innerproduct' bottom: 'label' top: 'accuracy' }
"""

TINY_EUCLIDEAN = f"""
name: 'TinyTestEuclidLossNetwork'
layer {{ name: 'data' type: 'DummyData'
  dummy_data_param {{ num: 5 channels: 2 height: 3 width: 4 num: 5 channels: 1 height: 1
                     width: 1 data_filler {{ type: 'gaussian' std: 0.01 }} }}
  top: 'data' top: 'label' }}
layer {{ name: 'innerproduct' type: 'InnerProduct'
  inner_product_param {{ num_output: 1 {GAUSS} }}
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  bottom: 'data' top: 'innerproduct' }}
layer {{ name: 'loss' type: 'EuclideanLoss' bottom: 'innerproduct' bottom: 'label' }}
"""


def tricky_net(loss_weight=None):
    weight = f"loss_weight: {loss_weight}" if loss_weight is not None else ""
    return f"""
name: 'TrickyTestNetwork'
layer {{ name: 'data' type: 'DummyData'
  dummy_data_param {{ num: 5 channels: 2 height: 3 width: 4 num: 5 channels: 1 height: 1
                     width: 1 data_filler {{ type: 'gaussian' std: 0.01 }} }}
  top: 'data' top: 'label' }}
layer {{ name: 'innerproduct' type: 'InnerProduct'
  inner_product_param {{ num_output: 1000 {GAUSS} }}
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  bottom: 'data' top: 'transformed_data' }}
layer {{ name: 'innerproduct' type: 'InnerProduct'
  inner_product_param {{ num_output: 1 {GAUSS} }}
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  bottom: 'label' top: 'transformed_label' }}
layer {{ name: 'loss' type: 'SoftmaxWithLoss' {weight}
  bottom: 'transformed_data' bottom: 'transformed_label' }}
"""


def unshared_weights_net(loss_weight=None, midnet_loss_weight=None, force_backward=False,
                         bias_term=False, lr_w1=1, lr_b1=2, lr_w2=1, lr_b2=2):
    bias = "true" if bias_term else "false"

    def ip(k, bottom, lr_w, lr_b, extra=""):
        bias_param = f"param {{ lr_mult: {lr_b} }}" if bias_term else ""
        return f"""
layer {{ name: 'innerproduct{k}' type: 'InnerProduct'
  inner_product_param {{ num_output: 10 bias_term: {bias}
                        weight_filler {{ type: 'gaussian' std: 10 }} }}
  param {{ name: 'unsharedweights{k}' lr_mult: {lr_w} }} {bias_param}
  bottom: '{bottom}' top: 'innerproduct{k}' {extra} }}"""

    mid = f"loss_weight: {midnet_loss_weight}" if midnet_loss_weight is not None else ""
    last = f"loss_weight: {loss_weight}" if loss_weight is not None else ""
    return f"""
name: 'UnsharedWeightsNetwork' {"force_backward: true" if force_backward else ""}
layer {{ name: 'data' type: 'DummyData'
  dummy_data_param {{ num: 5 channels: 2 height: 3 width: 4
                     data_filler {{ type: 'gaussian' std: 0.01 }} }}
  top: 'data' }}
{ip(1, 'data', lr_w1, lr_b1, mid)}
{ip(2, 'data', lr_w2, lr_b2)}
layer {{ name: 'loss' type: 'EuclideanLoss' {last}
  bottom: 'innerproduct1' bottom: 'innerproduct2' }}
"""


SHARED_WEIGHTS = """
name: 'SharedWeightsNetwork'
layer { name: 'data' type: 'DummyData'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
                     data_filler { type: 'gaussian' std: 0.01 } }
  top: 'data' }
layer { name: 'innerproduct1' type: 'InnerProduct'
  inner_product_param { num_output: 10 bias_term: false
                        weight_filler { type: 'gaussian' std: 10 } }
  param { name: 'sharedweights' } bottom: 'data' top: 'innerproduct1' }
layer { name: 'innerproduct2' type: 'InnerProduct'
  inner_product_param { num_output: 10 bias_term: false
                        weight_filler { type: 'gaussian' std: 10 } }
  param { name: 'sharedweights' } bottom: 'data' top: 'innerproduct2' }
layer { name: 'loss' type: 'EuclideanLoss' bottom: 'innerproduct1' bottom: 'innerproduct2' }
"""


def diff_data_net(shared):
    names = ("sharedweights", "sharedweights") if shared else ("unshared1", "unshared2")
    return f"""
name: 'DiffDataSharedWeightsNetwork'
layer {{ name: 'data' type: 'DummyData'
  dummy_data_param {{ num: 10 channels: 10 height: 1 width: 1 num: 10 channels: 10
                     height: 1 width: 1 data_filler {{ type: 'gaussian' std: 10 }} }}
  top: 'data1' top: 'data2' }}
layer {{ name: 'innerproduct1' type: 'InnerProduct'
  inner_product_param {{ num_output: 10 bias_term: false
                        weight_filler {{ type: 'constant' value: 0.5 }} }}
  param {{ name: '{names[0]}' }} bottom: 'data1' top: 'innerproduct1' }}
layer {{ name: 'innerproduct2' type: 'InnerProduct'
  inner_product_param {{ num_output: 10 bias_term: false
                        weight_filler {{ type: 'constant' value: 0.5 }} }}
  param {{ name: '{names[1]}' }} bottom: 'innerproduct1' top: 'innerproduct2' }}
layer {{ name: 'loss' type: 'EuclideanLoss' bottom: 'data2' bottom: 'innerproduct2' }}
"""


def blob_diffs(net):
    return [b.diff.copy() for b in net.blob_list]


def param_diffs(net):
    return [b.diff.copy() for layer in net.layers for b in layer.blobs]


# -- blobs and layers ---------------------------------------------------------------------------
def test_blobs_and_layers_by_name():
    net = make_net(TINY)
    assert net.blob_names == ["data", "label", "innerproduct", "top_loss"]
    assert "loss" not in net.blobs and "top_loss" in net.blobs
    assert net.layer_names == ["data", "innerproduct", "loss"]
    assert net.layer_dict["innerproduct"] is net.layers[1]
    assert net.layers[1].type == "InnerProduct"
    assert list(net.params) == ["innerproduct"]
    assert [b.shape for b in net.params["innerproduct"]] == [(1000, 24), (1000,)]
    assert net.outputs == ["top_loss"] and net.inputs == []
    assert net.blob_loss_weights["top_loss"] == 1.0
    assert net.blob_loss_weights["innerproduct"] == 0.0
    assert net.params_lr == [1.0, 2.0] and net.params_weight_decay == [1.0, 0.0]


def test_layers_inherit_the_net_phase():
    text = TINY.replace("name: 'loss' type", "name: 'loss' phase: TRAIN type")
    net = make_net(text, phase=pb.TEST)
    assert [layer.phase for layer in net.layers] == [pb.TEST, pb.TEST, pb.TRAIN]
    assert [layer.layer_param.phase for layer in net.layers] == [pb.TEST, pb.TEST, pb.TRAIN]
    assert make_net(TINY, phase=pb.TRAIN).layers[0].phase == pb.TRAIN


# -- backward needs -------------------------------------------------------------------------------
def test_bottom_need_backward():
    net = make_net(TINY)
    assert net.bottom_need_backward == [[], [False], [True, False]]
    assert net.layer_need_backward == [False, True, True]


def test_bottom_need_backward_force():
    net = make_net(TINY + "force_backward: true")
    assert net.bottom_need_backward == [[], [True], [True, False]]  # labels refuse


def test_bottom_need_backward_euclidean_force():
    net = make_net(TINY_EUCLIDEAN + "force_backward: true")
    assert net.bottom_need_backward == [[], [True], [True, True]]


def test_bottom_need_backward_tricky():
    net = make_net(tricky_net())
    # The label input of the loss "needs backward" since it has weights under it.
    assert net.bottom_need_backward == [[], [False], [False], [True, True]]


def test_backward_with_accuracy_layer():
    net = make_net(TINY + ACCURACY)
    assert "accuracy" in net.blobs
    assert net.outputs == ["accuracy", "top_loss"]
    net.forward_backward()  # the Accuracy layer needs no backward
    # 'innerproduct' and 'label' fan out to two consumers each
    assert "innerproduct_innerproduct_0_split" in net.layer_names
    assert "label_data_1_split" in net.layer_names


def skip_prop_net(skip):
    flags = "propagate_down: true propagate_down: false" if skip else \
        "propagate_down: true propagate_down: true"
    return f"""
name: 'SkipPropTestNetwork'
layer {{ name: 'data' type: 'DummyData'
  dummy_data_param {{ shape {{ dim: 5 dim: 2 dim: 3 dim: 4 }}
                     data_filler {{ type: 'gaussian' std: 0.01 }}
                     shape {{ dim: 5 }} data_filler {{ type: 'constant' value: 0 }} }}
  top: 'data' top: 'label' }}
layer {{ name: 'silence' bottom: 'label' type: 'Silence' }}
layer {{ name: 'innerproduct' type: 'InnerProduct'
  inner_product_param {{ num_output: 1 {GAUSS} }}
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  bottom: 'data' top: 'innerproduct' }}
layer {{ name: 'ip_fake_labels' type: 'InnerProduct'
  inner_product_param {{ num_output: 1 {GAUSS} }}
  bottom: 'data' top: 'fake_labels' }}
layer {{ name: 'argmax' bottom: 'fake_labels' top: 'label_argmax' type: 'ArgMax' }}
layer {{ name: 'loss' bottom: 'innerproduct' bottom: 'label_argmax' {flags}
  top: 'cross_entropy_loss' type: 'SigmoidCrossEntropyLoss' loss_weight: 0.1 }}
"""


def test_skip_propagate_down():
    net = make_net(skip_prop_net(skip=False))
    for name, need, bottoms in zip(net.layer_names, net.layer_need_backward,
                                   net.bottom_need_backward):
        if name == "loss":
            assert bottoms[1]  # propagate_down: true reaches the labels
        assert need == ("data" not in name and name != "silence"), name
    net = make_net(skip_prop_net(skip=True))
    for name, need, bottoms in zip(net.layer_names, net.layer_need_backward,
                                   net.bottom_need_backward):
        if name == "loss":
            assert not bottoms[1]
        assert need == (name in ("innerproduct", "loss")), name


def force_prop_net(force):
    return f"""
name: 'ForcePropTestNetwork'
layer {{ name: 'data' type: 'DummyData'
  dummy_data_param {{ shape {{ dim: 5 dim: 2 dim: 3 dim: 4 }}
                     data_filler {{ type: 'gaussian' std: 0.01 }}
                     shape {{ dim: 5 }} data_filler {{ type: 'constant' value: 0 }} }}
  top: 'data' top: 'label' }}
layer {{ name: 'innerproduct' type: 'InnerProduct'
  inner_product_param {{ num_output: 1 {GAUSS} }}
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  bottom: 'data' top: 'innerproduct' {"propagate_down: true" if force else ""} }}
layer {{ name: 'loss' bottom: 'innerproduct' bottom: 'label' top: 'cross_entropy_loss'
  type: 'SigmoidCrossEntropyLoss' }}
"""


@pytest.mark.parametrize("force", [False, True])
def test_force_propagate_down(force):
    net = make_net(force_prop_net(force))
    assert net.layer_need_backward == [False, True, True]
    assert net.bottom_need_backward == [[], [force], [True, False]]


def test_param_lr_mult_zero_freezes_and_prunes():
    text = TINY.replace("lr_mult: 1 decay_mult: 1", "lr_mult: 0").replace(
        "lr_mult: 2 decay_mult: 0", "lr_mult: 0")
    net = make_net(text)
    # nothing under the loss learns, so even the loss layer skips backward
    assert net.layer_need_backward == [False, False, False]
    assert net.bottom_need_backward == [[], [False], [False, False]]
    assert net.layers[1].param_propagate_down == [False, False]
    assert net.params_lr == [0.0, 0.0]


# -- loss weights ---------------------------------------------------------------------------------
LOSS_WEIGHTS = [2, 0, 1, -1, -2.5, 3.7]


def test_loss_weight():
    net = make_net(unshared_weights_net(force_backward=True))
    loss = net.forward_backward()
    assert abs(loss) >= 1e-2
    blobs, params = blob_diffs(net), param_diffs(net)
    for weight in LOSS_WEIGHTS:
        net = make_net(unshared_weights_net(loss_weight=weight, force_backward=True))
        margin = 1e-4 * abs(weight) + 1e-7
        assert net.forward_backward() == pytest.approx(loss * weight, abs=margin)
        for before, after in zip(blobs + params, blob_diffs(net) + param_diffs(net)):
            np.testing.assert_allclose(after, before * weight, atol=margin, rtol=1e-5)


def test_loss_weight_mid_net():
    net = make_net(unshared_weights_net(loss_weight=0, midnet_loss_weight=1,
                                        force_backward=True))
    loss = net.forward_backward()
    assert abs(loss) >= 1e-2
    data_grad = net.blobs["data"].diff.copy()
    for weight in LOSS_WEIGHTS:
        net = make_net(unshared_weights_net(loss_weight=0, midnet_loss_weight=weight,
                                            force_backward=True))
        margin = 1e-4 * abs(weight) + 1e-7
        assert net.forward_backward() == pytest.approx(loss * weight, abs=margin)
        np.testing.assert_allclose(net.blobs["data"].diff, data_grad * weight, atol=margin)


def _combo(loss_weight, midnet_loss_weight):
    net = make_net(unshared_weights_net(loss_weight=loss_weight,
                                        midnet_loss_weight=midnet_loss_weight,
                                        force_backward=True))
    loss = net.forward_backward()
    return net, loss, blob_diffs(net)


def test_combo_loss_weight():
    net, loss, base = _combo(1, 1)
    _, loss_main_2, grads_2 = _combo(2, 1)
    _, loss_main_3, grads_3 = _combo(3, 1)
    for name, g1, g2, g3 in zip(net.blob_names, base, grads_2, grads_3):
        if name == "innerproduct1_innerproduct1_0_split_0":  # carries the mid-net loss only
            np.testing.assert_array_equal(g2, g1)
            np.testing.assert_array_equal(g3, g1)
        else:
            assert np.all(np.abs(g2 - g1) > 1e-4), name
            np.testing.assert_allclose(2 * (g2 - g1), g3 - g1, atol=1e-4)
    _, loss_mid_2, grads_2 = _combo(1, 2)
    _, loss_mid_3, grads_3 = _combo(1, 3)
    changing = {"innerproduct1", "innerproduct1_innerproduct1_0_split_0",
                "data_data_0_split_0", "data"}
    for name, g1, g2, g3 in zip(net.blob_names, base, grads_2, grads_3):
        if name in changing:
            assert np.all(np.abs(g2 - g1) > 1e-4), name
            np.testing.assert_allclose(2 * (g2 - g1), g3 - g1, atol=1e-4)
        else:
            np.testing.assert_array_equal(g2, g1)
            np.testing.assert_array_equal(g3, g1)
    assert abs(loss_main_2 - loss) > 1e-4
    assert 2 * (loss_main_2 - loss) == pytest.approx(loss_main_3 - loss, abs=1e-4)
    assert abs(loss_mid_2 - loss) > 1e-4
    assert 2 * (loss_mid_2 - loss) == pytest.approx(loss_mid_3 - loss, abs=1e-4)


def test_auto_top_blob_of_loss_layer():
    net = make_net(TINY_EUCLIDEAN)
    assert net.top_names["loss"] == ["(automatic)"]
    assert net.outputs == []  # anonymous tops are never outputs
    loss = net.forward_prefilled()
    pred = net.blobs["innerproduct"].data.reshape(5)
    label = net.blobs["label"].data.reshape(5)
    assert loss == pytest.approx(((pred - label) ** 2).sum() / 2 / 5, rel=1e-4)


# -- shared weights -------------------------------------------------------------------------------
def test_unshared_weights_data_net():
    assert make_net(unshared_weights_net()).forward_prefilled() > 0


def test_shared_weights_data_net():
    assert make_net(SHARED_WEIGHTS).forward_prefilled() == pytest.approx(0, abs=1e-6)


def test_unshared_weights_diff_net():
    net = make_net(unshared_weights_net())
    net.forward_backward()
    grad1 = net.layer_dict["innerproduct1"].blobs[0].diff
    grad2 = net.layer_dict["innerproduct2"].blobs[0].diff
    assert np.all(np.abs(grad1) > 0)
    np.testing.assert_allclose(-grad1, grad2, rtol=1e-5)


def test_shared_weights_diff_net():
    net = make_net(SHARED_WEIGHTS)
    assert net.forward_prefilled() == pytest.approx(0, abs=1e-6)
    net.backward()
    assert not net.layer_dict["innerproduct1"].blobs[0].diff.any()
    assert not net.layer_dict["innerproduct2"].blobs[0].diff.any()


def test_shared_weights_update():
    net = make_net(diff_data_net(shared=True))
    w1, w2 = net.layers[1].blobs[0], net.layers[2].blobs[0]
    assert net.layer_names[1:3] == ["innerproduct1", "innerproduct2"]
    assert np.shares_memory(w1.data, w2.data) and np.shares_memory(w1.diff, w2.diff)
    assert len(net.learnable_params) == 1 and net.learnable_params[0] is w1
    assert net.param_owners == [-1, 0]
    net.forward_backward()
    assert np.all(w1.diff != 0)
    shared_diff = w1.diff.copy()
    expected = w1.data - w1.diff
    net.update()
    np.testing.assert_array_equal(w1.data, expected)
    assert np.shares_memory(w1.data, w2.data)

    net = make_net(diff_data_net(shared=False))
    w1, w2 = net.layers[1].blobs[0], net.layers[2].blobs[0]
    assert not np.shares_memory(w1.data, w2.data)
    assert not np.shares_memory(w1.diff, w2.diff)
    net.forward_backward()
    assert np.all(w1.diff != 0) and np.all(w2.diff != 0) and np.all(w1.diff != w2.diff)
    # the shared weight's diff is the sum of both users' gradients
    np.testing.assert_allclose(w1.diff + w2.diff, shared_diff, rtol=1e-5)
    expected1, expected2 = w1.data - w1.diff, w2.data - w2.diff
    net.update()
    np.testing.assert_array_equal(w1.data, expected1)
    np.testing.assert_array_equal(w2.data, expected2)
    assert np.all(w1.data != w2.data)


def test_shared_weights_resume():
    net = make_net(diff_data_net(shared=True))
    net.forward_backward()
    net.update()
    trained = net.layers[1].blobs[0].data.copy()
    snapshot = net.to_proto()
    net = make_net(diff_data_net(shared=True))
    net.copy_trained_layers_from(snapshot)
    w1, w2 = net.layers[1].blobs[0], net.layers[2].blobs[0]
    assert w1 is not w2
    assert np.shares_memory(w1.data, w2.data) and np.shares_memory(w1.diff, w2.diff)
    np.testing.assert_array_equal(w1.data, trained)


def test_param_propagate_down():
    def run(lr_w1, lr_w2, lr_b1, lr_b2):
        net = make_net(unshared_weights_net(bias_term=True, lr_w1=lr_w1, lr_w2=lr_w2,
                                            lr_b1=lr_b1, lr_b2=lr_b2))
        net.forward_backward()
        return [float(np.abs(d).sum()) for d in param_diffs(net)]

    sums = run(1, 1, 2, 2)
    assert len(sums) == 4 and all(s > 1e-3 for s in sums)
    assert run(2, 2, 4, 4) == pytest.approx(sums)
    # params in Caffe order: w1, b1, w2, b2
    assert run(1, 0, 0, 1) == pytest.approx([sums[0], 0, 0, sums[3]])
    assert run(0, 1, 1, 0) == pytest.approx([0, sums[1], sums[2], 0])


def sharing_net(spec1, spec2, ip2="num_output: 10 bias_term: false"):
    """Two InnerProducts on 'data' (5, 24) with the given ParamSpecs."""
    return f"""
layer {{ name: 'data' type: 'DummyData' top: 'data'
        dummy_data_param {{ shape {{ dim: 5 dim: 24 }} }} }}
layer {{ name: 'innerproduct1' type: 'InnerProduct' bottom: 'data' top: 'innerproduct1'
        inner_product_param {{ num_output: 10 bias_term: false }} {spec1} }}
layer {{ name: 'innerproduct2' type: 'InnerProduct' bottom: 'data' top: 'innerproduct2'
        inner_product_param {{ {ip2} }} {spec2} }}
"""


def test_shared_param_strict_and_permissive():
    named = "param { name: 'w' }"
    with pytest.raises(ValueError, match=r"layer 'innerproduct2'.*cannot share param 'w' owned "
                                         r"by layer 'innerproduct1'.*shape mismatch, owner "
                                         r"shape \[10, 24\], this shape \[24, 10\]"):
        make_net(sharing_net(named, named, "num_output: 10 bias_term: false transpose: true"))
    # PERMISSIVE compares counts only: (10, 24) and its transposed layout (24, 10)
    permissive = "param { name: 'w' share_mode: PERMISSIVE }"
    net = make_net(sharing_net(named, permissive, "num_output: 10 bias_term: false "
                                                  "transpose: true"))
    w1 = net.layer_dict["innerproduct1"].blobs[0]
    w2 = net.layer_dict["innerproduct2"].blobs[0]
    assert w1.shape == (10, 24) and w2.shape == (24, 10)
    assert np.shares_memory(w1.data, w2.data) and np.shares_memory(w1.diff, w2.diff)
    with pytest.raises(ValueError, match=r"innerproduct2.*count mismatch"):
        make_net(sharing_net(named, permissive, "num_output: 11 bias_term: false"))


def test_shared_param_multipliers():
    with pytest.raises(ValueError, match=r"layer 'innerproduct2'.*shared param 'w' has lr_mult "
                                         r"2 but its owner 'innerproduct1' has 3"):
        make_net(sharing_net("param { name: 'w' lr_mult: 3 }", "param { name: 'w' lr_mult: 2 }"))
    # an owner without multipliers takes the user's
    net = make_net(sharing_net("param { name: 'w' }",
                               "param { name: 'w' lr_mult: 5 decay_mult: 0 }"))
    assert net.params_lr == [5.0] and net.params_weight_decay == [0.0]
    assert net.param_owners == [-1, 0]


# -- running parts of the net ---------------------------------------------------------------------
def test_from_to():
    net = make_net(TINY)
    net.forward_prefilled()
    net.backward()
    data_diff = net.blobs["data"].diff.copy()
    loss = float(net.output_blobs[0].data)
    n = len(net.layers)
    for i in range(1, n):  # layer 0 is skipped to keep the same data
        net.forward_from_to(1, 1)
        if i < n - 1:
            net.forward_from_to(i + 1)
        assert float(net.output_blobs[0].data) == loss
    for i in range(1, n):
        net.backward_from_to(end=i)
        net.backward_from_to(start=i - 1)
        np.testing.assert_array_equal(net.blobs["data"].diff, data_diff)


RESHAPABLE = """
name: 'ReshapableNetwork'
layer { name: 'data' type: 'Input' top: 'data'
  input_param { shape { dim: 1 dim: 3 dim: 100 dim: 100 } } }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
  convolution_param { num_output: 5 kernel_size: 3 stride: 2
    weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' value: 0.2 } } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'pool1' type: 'Pooling' bottom: 'conv1' top: 'pool1'
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: 'norm1' type: 'LRN' bottom: 'pool1' top: 'norm1' lrn_param { local_size: 3 } }
layer { name: 'softmax' type: 'Softmax' bottom: 'norm1' top: 'softmax' }
"""


def test_reshape(rng):
    blob1 = rng.standard_normal((2, 3, 12, 10)).astype(np.float32)
    blob2 = rng.standard_normal((4, 3, 9, 11)).astype(np.float32)
    net = make_net(RESHAPABLE)
    data, out = net.input_blobs[0], net.output_blobs[0]

    def run(x):
        data.reshape(x.shape)
        data.data[...] = x
        net.forward_prefilled()
        net.backward()
        return out.data.copy()

    out1, out2 = run(blob1), run(blob2)
    np.testing.assert_allclose(run(blob1), out1, rtol=1e-6)
    np.testing.assert_allclose(run(blob2), out2, rtol=1e-6)
    assert out1.shape[0] == 2 and out2.shape[0] == 4
    assert out1.shape[2:] != out2.shape[2:]


def test_in_place_layer_shares_the_blob():
    net = make_net(RESHAPABLE)
    relu = net.layer_dict["relu1"]
    assert net.bottom_vecs[2][0] is net.top_vecs[2][0] is net.blobs["conv1"]
    assert relu.type == "ReLU"
    assert net.blob_names.count("conv1") == 1


def test_outputs_are_alphabetical():
    net = make_net("""
layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
layer { name: 'z' type: 'ReLU' bottom: 'x' top: 'zeta' }
layer { name: 'a' type: 'Sigmoid' bottom: 'zeta' top: 'alpha' }
layer { name: 'm' type: 'TanH' bottom: 'zeta' top: 'mu' }
layer { name: 'b' type: 'AbsVal' bottom: 'x' top: 'beta' }
""")
    assert net.outputs == ["alpha", "beta", "mu"]
    assert net.inputs == ["x"]
    assert list(net.forward(x=np.ones((2, 3)))) == ["alpha", "beta", "mu"]


# -- filtering ------------------------------------------------------------------------------------
FILTER_BASE = """
name: 'TestNetwork'
layer {{ name: 'data' type: 'Data' top: 'data' top: 'label' {0} }}
layer {{ name: 'innerprod' type: 'InnerProduct' bottom: 'data' top: 'innerprod' {1} }}
layer {{ name: 'loss' type: 'SoftmaxWithLoss' bottom: 'innerprod' bottom: 'label' {2} }}
"""


def kept(state, rules):
    """Names of the layers FilterNet keeps for `state` text and per-layer `rules`."""
    param = parse(state + FILTER_BASE.format(*rules))
    filtered = filter_net(param)
    assert filter_net(filtered) == filtered  # idempotent
    assert filtered.state == param.state
    return [lp.name for lp in filtered.layer]


ALL = ["data", "innerprod", "loss"]


@pytest.mark.parametrize("state, rules, expected", [
    ("", ("", "", ""), ALL),
    ("", ("include { stage: 'mystage' }", "", ""), ["innerprod", "loss"]),
    ("", ("", "include { stage: 'mystage' }", ""), ["data", "loss"]),
    ("state { stage: 'mystage' }", ("", "include { stage: 'mystage' }", ""), ALL),
    ("", ("", "exclude { stage: 'mystage' }", ""), ALL),
    ("state { stage: 'mystage' }",
     ("", "include { stage: 'mystage' stage: 'myotherstage' }", "include { stage: 'mystage' }"),
     ["data", "loss"]),
    ("state { stage: 'mystage' }",
     ("", "include { stage: 'myotherstage' } include { stage: 'mystage' }",
      "include { stage: 'mystage' }"), ALL),
    ("state { stage: 'mystage' stage: 'myotherstage' }",
     ("", "include { stage: 'mystage' stage: 'myotherstage' }", "include { stage: 'mystage' }"),
     ALL),
    ("state { stage: 'mystage' }",
     ("", "include { not_stage: 'myotherstage' }", "include { not_stage: 'myotherstage' }"),
     ALL),
    ("state { stage: 'mystage' }",
     ("", "include { not_stage: 'mystage' }", "include { not_stage: 'mystage' }"), ["data"]),
    ("", ("", "include { min_level: 3 }", ""), ["data", "loss"]),
    ("", ("", "include { max_level: -3 }", ""), ["data", "loss"]),
    ("", ("", "include { min_level: 0 }", ""), ALL),
    ("state { level: 7 }", ("", "include { min_level: 3 }", ""), ALL),
    ("", ("", "include { max_level: 0 }", ""), ALL),
    ("state { level: -7 }", ("", "include { max_level: -3 }", ""), ALL),
    ("state { level: 4 phase: TRAIN }",
     ("", "include { min_level: 2 phase: TRAIN }", "include { min_level: 2 phase: TEST }"),
     ["data", "innerprod"]),
    ("state { level: 4 phase: TEST }",
     ("", "include { min_level: 2 phase: TRAIN }", "include { min_level: 2 phase: TEST }"),
     ["data", "loss"]),
    ("state { level: 2 phase: TRAIN }",
     ("", "include { min_level: 2 phase: TRAIN } include { phase: TEST }",
      "include { min_level: 2 phase: TEST } include { phase: TRAIN }"), ALL),
    ("state { level: 2 phase: TEST }",
     ("", "include { min_level: 2 phase: TRAIN } include { phase: TEST }",
      "include { min_level: 2 phase: TEST } include { phase: TRAIN }"), ALL),
    ("state { level: 4 phase: TRAIN }",
     ("", "exclude { min_level: 2 phase: TRAIN }", "exclude { min_level: 2 phase: TEST }"),
     ["data", "loss"]),
    ("state { level: 4 phase: TEST }",
     ("", "exclude { min_level: 2 phase: TRAIN }", "exclude { min_level: 2 phase: TEST }"),
     ["data", "innerprod"]),
])
def test_filter_net(state, rules, expected):
    assert kept(state, rules) == expected


def test_filter_lenet_train_test():
    param = parse("""
name: 'LeNet'
layer { name: 'mnist' type: 'Data' top: 'data' top: 'label' include: { phase: TRAIN } }
layer { name: 'mnist' type: 'Data' top: 'data' top: 'label' include: { phase: TEST } }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1' }
layer { name: 'accuracy' type: 'Accuracy' bottom: 'ip1' bottom: 'label' top: 'accuracy'
        include: { phase: TEST } }
""")
    param.state.phase = pb.TRAIN
    train = filter_net(param)
    assert [lp.include[0].phase for lp in train.layer if lp.include] == [pb.TRAIN]
    assert [lp.name for lp in train.layer] == ["mnist", "conv1"]
    param.state.phase = pb.TEST
    test = filter_net(param)
    assert [lp.name for lp in test.layer] == ["mnist", "conv1", "accuracy"]
    assert test.layer[0].include[0].phase == pb.TEST


def test_include_and_exclude_is_an_error():
    with pytest.raises(ValueError, match="layer 'innerprod'.*either include rules or exclude"):
        kept("", ("", "include { phase: TRAIN } exclude { phase: TEST }", ""))


ALL_IN_ONE = """
name: 'All-in-one Network'
layer { name: 'train-data' type: 'DummyData' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 1 dim: 10 } shape { dim: 1 dim: 1 } }
  include { phase: TRAIN stage: 'train' } }
layer { name: 'val-data' type: 'DummyData' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 1 dim: 10 } shape { dim: 1 dim: 1 } }
  include { phase: TEST stage: 'val' } }
layer { name: 'deploy-data' type: 'Input' top: 'data'
  input_param { shape { dim: 1 dim: 10 } } include { phase: TEST stage: 'deploy' } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 2 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss'
  include { phase: TRAIN stage: 'train' } include { phase: TEST stage: 'val' } }
"""


@pytest.mark.parametrize("phase, stage, layers", [
    (pb.TRAIN, "train", ["train-data", "ip", "loss"]),
    (pb.TEST, "val", ["val-data", "ip", "loss"]),
    (pb.TEST, "deploy", ["deploy-data", "ip"]),
])
def test_all_in_one_net(phase, stage, layers):
    net = make_net(ALL_IN_ONE, phase=phase, stages=[stage])
    assert net.layer_names == layers
    assert net.phase == phase
    assert list(net.state.stage) == [stage]


# -- splits ---------------------------------------------------------------------------------------
def test_insert_splits_with_loss_weight():
    out = insert_splits(parse("""
name: 'TestNetwork'
layer { name: 'data' type: 'Data' top: 'data' top: 'label' }
layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data' top: 'innerprod1'
        loss_weight: 2.5 }
layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'data' top: 'innerprod2' }
layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1' bottom: 'innerprod2' }
"""))
    expected = parse("""
name: 'TestNetwork'
layer { name: 'data' type: 'Data' top: 'data' top: 'label' }
layer { name: 'data_data_0_split' type: 'Split' bottom: 'data'
        top: 'data_data_0_split_0' top: 'data_data_0_split_1' }
layer { name: 'innerprod1' type: 'InnerProduct' bottom: 'data_data_0_split_0'
        top: 'innerprod1' }
layer { name: 'innerprod1_innerprod1_0_split' type: 'Split' bottom: 'innerprod1'
        top: 'innerprod1_innerprod1_0_split_0' top: 'innerprod1_innerprod1_0_split_1'
        loss_weight: 2.5 loss_weight: 0 }
layer { name: 'innerprod2' type: 'InnerProduct' bottom: 'data_data_0_split_1'
        top: 'innerprod2' }
layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1_innerprod1_0_split_1'
        bottom: 'innerprod2' }
""")
    assert out == expected


def test_insert_splits_three_consumers_and_in_place():
    out = insert_splits(parse("""
layer { name: 'data' type: 'Data' top: 'data' top: 'label' }
layer { name: 'relu' type: 'ReLU' bottom: 'data' top: 'data' }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'data' top: 'ip1' }
layer { name: 'ip2' type: 'InnerProduct' bottom: 'data' top: 'ip2' }
layer { name: 'ip3' type: 'InnerProduct' bottom: 'data' top: 'ip3' }
layer { name: 'l' type: 'EuclideanLoss' bottom: 'ip1' bottom: 'ip2' bottom: 'label' }
"""))
    names = [lp.name for lp in out.layer]
    # in place: the ReLU's output is a new producer of 'data'; the Data layer's has one use
    assert names == ["data", "relu", "data_relu_0_split", "ip1", "ip2", "ip3", "l"]
    assert list(out.layer[1].bottom) == ["data"]
    assert list(out.layer[2].top) == [f"data_relu_0_split_{k}" for k in range(3)]
    assert [out.layer[i].bottom[0] for i in (3, 4, 5)] == list(out.layer[2].top)


def test_net_splits_share_data_and_sum_diffs():
    net = make_net(unshared_weights_net(force_backward=True))
    split = net.layer_dict["data_data_0_split"]
    assert split.type == "Split"
    tops = net.top_vecs[net.layer_names.index("data_data_0_split")]
    net.forward_backward()
    assert all(np.shares_memory(t.data, net.blobs["data"].data) for t in tops)
    np.testing.assert_allclose(net.blobs["data"].diff, tops[0].diff + tops[1].diff, rtol=1e-6)


# -- errors ---------------------------------------------------------------------------------------
def test_unknown_layer_type():
    with pytest.raises(ValueError, match=r"layer 'innerproduct' \(InnerProdcut\): unknown layer "
                                         r"type 'InnerProdcut'; did you mean 'InnerProduct'"):
        make_net(TINY.replace("type: 'InnerProduct'", "type: 'InnerProdcut'"))


def test_bottom_nobody_produces():
    with pytest.raises(ValueError, match=r"layer 'innerproduct' \(InnerProduct\): bottom 'dat' "
                                         r".*produced by no earlier layer; did you mean 'data'"
                                         r".*Available blobs: data, label"):
        make_net(TINY.replace("bottom: 'data'", "bottom: 'dat'"))


def test_bottom_from_a_filtered_layer_names_it():
    text = TINY.replace("top: 'data' top: 'label' }", "top: 'data' top: 'label' "
                        "include { phase: TRAIN } }")
    with pytest.raises(ValueError, match=r"bottom 'data'.*Layer 'data' produces it but is "
                                         r"excluded in this net state \(phase TEST"):
        make_net(text)


def test_top_produced_twice():
    text = TINY + "layer { name: 'relu' type: 'ReLU' bottom: 'innerproduct' top: 'label' }"
    with pytest.raises(ValueError, match=r"layer 'relu'.*top 'label' is produced by an "
                                         "earlier layer too"):
        make_net(text)


def test_bad_layer_parameters_raise_via_the_layer():
    with pytest.raises(ValueError, match=r"layer 'innerproduct' \(InnerProduct\).*num_output"):
        make_net(TINY.replace("num_output: 1000", ""))


def test_propagate_down_count_and_param_spec_count():
    with pytest.raises(ValueError, match=r"layer 'loss'.*propagate_down has 1 values"):
        make_net(TINY.replace("top: 'top_loss'", "top: 'top_loss' propagate_down: true"))
    with pytest.raises(ValueError, match=r"layer 'innerproduct'.*3 param specs"):
        make_net(TINY.replace("param { lr_mult: 2 decay_mult: 0 }",
                              "param { lr_mult: 2 decay_mult: 0 } param { }"))


# -- gradients of a whole net ---------------------------------------------------------------------
GRAD_NET = """
name: 'GradNet' force_backward: true
layer { name: 'input' type: 'Input' top: 'data' top: 'label'
        input_param { shape { dim: 4 dim: 6 } shape { dim: 4 } } }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'data' top: 'ip1'
        inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.5 }
                              bias_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'relu1' type: 'ReLU' bottom: 'ip1' top: 'ip1' loss_weight: 0.3 }
layer { name: 'ip2' type: 'InnerProduct' bottom: 'ip1' top: 'ip2'
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.5 }
                              bias_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'ip3' type: 'InnerProduct' bottom: 'ip1' top: 'ip3'
        param { lr_mult: 0 } param { lr_mult: 0 }
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'ip4' type: 'InnerProduct' bottom: 'ip3' top: 'ip4'
        param { name: 'w4' } param { }
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'ip5' type: 'InnerProduct' bottom: 'ip3' top: 'ip5'
        param { name: 'w4' } param { }
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'loss1' type: 'SoftmaxWithLoss' bottom: 'ip2' bottom: 'label' top: 'l1' }
layer { name: 'loss2' type: 'SoftmaxWithLoss' bottom: 'ip4' bottom: 'label' top: 'l2'
        loss_weight: 0.5 }
layer { name: 'loss3' type: 'SoftmaxWithLoss' bottom: 'ip5' bottom: 'label' top: 'l3'
        loss_weight: 2 }
"""


def test_net_gradient_matches_numeric_differences(rng):
    """d(net loss)/d(input, every param) from Net.backward against central differences of the
    loss: exercises splits (ip1 with a mid-net loss, ip3, label), in place, shared weights."""
    net = make_net(GRAD_NET, dtype=np.float64)
    x = rng.standard_normal((4, 6))
    label = np.array([0, 2, 1, 2], dtype=np.float64)
    net.forward(data=x, label=label)
    assert any(lp.type == "Split" for lp in net.net_param.layer)
    net.clear_param_diffs()
    net.forward_backward()
    blobs = [net.blobs["data"]] + [p for p in net.learnable_params]
    analytic = [b.diff.copy() for b in blobs]
    assert len(net.learnable_params) == 9  # ip5's weight is ip4's
    step = 1e-5
    for blob, grad in zip(blobs, analytic):
        flat = blob.data.reshape(-1)
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + step
            plus = net.forward_prefilled()
            flat[k] = saved - step
            minus = net.forward_prefilled()
            flat[k] = saved
            numeric = (plus - minus) / (2 * step)
            assert grad.reshape(-1)[k] == pytest.approx(numeric, rel=1e-5, abs=1e-7), blob


# -- BVLC's deploy nets ---------------------------------------------------------------------------
DEPLOY_NETS = ["mnist/lenet.prototxt", "cifar10/cifar10_quick.prototxt",
               "cifar10/cifar10_full.prototxt", "siamese/mnist_siamese.prototxt",
               "net_surgery/conv.prototxt", "net_surgery/bvlc_caffenet_full_conv.prototxt"]


def test_deploy_net_list_is_complete():
    """Every example net with an Input layer or net-level inputs is in DEPLOY_NETS."""
    need_shared(EXAMPLES)
    found = set()
    for path in EXAMPLES.rglob("*.prototxt"):
        text = path.read_text()
        if 'type: "Input"' in text or "type: 'Input'" in text or \
                any(line.startswith(("input:", "input_shape", "input_dim"))
                    for line in text.splitlines()):
            found.add(path.relative_to(EXAMPLES).as_posix())
    assert found == set(DEPLOY_NETS)


@pytest.mark.parametrize("path", DEPLOY_NETS)
def test_bvlc_deploy_nets_build_and_run(path, rng):
    net = Net(need_shared(EXAMPLES / path), rng=np.random.default_rng(0))
    assert net.inputs == ["data"] and net.outputs
    shape = net.blobs["data"].shape
    if path.startswith("siamese"):
        shape = (2,) + shape[1:]  # 10000 digits in the file; two are enough here
    elif "full_conv" in path:
        shape = (1, 3, 227, 227)  # the fully convolutional net runs at any size >= 227
    x = rng.standard_normal(shape).astype(np.float32)
    out = net.forward(data=x)
    assert list(out) == net.outputs
    for name, value in out.items():
        assert value.shape[0] == shape[0] and np.all(np.isfinite(value)), name
    if "prob" in out:  # Softmax over channels
        np.testing.assert_allclose(out["prob"].sum(axis=1), 1, rtol=1e-5)
