"""The example configs (configs/mlp, lenet_bn, mnist_lstm, mnist_autoencoder): both forms, build,
train a little; slow runs train them to the accuracy docs/examples.md reports."""
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

import caffelite

CONFIGS = ROOT / "configs"
EXAMPLES = ("mlp", "lenet_bn", "mnist_lstm", "mnist_autoencoder")
LOSS = {"mlp": "loss", "lenet_bn": "loss", "mnist_lstm": "loss",
        "mnist_autoencoder": "cross_entropy_loss"}


def forms(name):
    """(solver.prototxt, train_test.prototxt, .yaml) of one example."""
    folder = CONFIGS / name
    return (folder / f"{name}_solver.prototxt", folder / f"{name}_train_test.prototxt",
            folder / f"{name}.yaml")


def solver_for(name, tmp_path, monkeypatch, form="yaml"):
    monkeypatch.chdir(tmp_path)  # any snapshot would land here, not in the tree
    solver_file, _, yaml_file = forms(name)
    return caffelite.get_solver(str(yaml_file if form == "yaml" else solver_file))


@pytest.mark.parametrize("name", EXAMPLES)
def test_yaml_and_prototxt_forms_give_the_same_messages(name):
    solver_file, net_file, yaml_file = forms(name)
    from_yaml = caffelite.read_solver_param(str(yaml_file))
    from_prototxt = caffelite.read_solver_param(str(solver_file))
    assert from_prototxt.net == net_file.name and not from_prototxt.HasField("net_param")
    assert from_yaml.HasField("net_param") and not from_yaml.HasField("net")
    assert from_yaml.net_param == caffelite.read_net_param(str(net_file))
    # everything but the way the net is named is the same solver
    from_yaml.ClearField("net_param")
    from_prototxt.ClearField("net")
    assert from_yaml == from_prototxt
    assert from_yaml.random_seed == 1701 and from_yaml.test_iter == [20]


@pytest.mark.parametrize("name", EXAMPLES)
def test_train_and_test_nets_read_the_bundled_digits(name, tmp_path, monkeypatch):
    solver = solver_for(name, tmp_path, monkeypatch)
    nets = {"train": (solver.net, 64, "train"), "test": (solver.test_nets[0], 100, "test")}
    for phase, (net, batch, source) in nets.items():
        data = net.layer_dict["mnist"].layer_param
        assert data.data_param.source == f"caffelite://mnist10k/{source}", phase
        assert net.blobs["data"].shape == (batch, 1, 28, 28), phase
    assert len(solver.test_nets) == 1
    if name != "mnist_autoencoder":
        assert "accuracy" in solver.test_nets[0].outputs
        assert "accuracy" not in solver.net.outputs


@pytest.mark.parametrize("name", EXAMPLES)
def test_a_few_iterations_lower_the_loss(name, tmp_path, monkeypatch):
    solver = solver_for(name, tmp_path, monkeypatch)
    losses = []
    for _ in range(30):
        solver.step(1)  # each step() restarts the smoothing: this is the iteration's loss
        losses.append(solver.smoothed_loss)
    assert all(math.isfinite(x) for x in losses), losses
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
    outputs = solver.test(0)
    assert all(np.isfinite(v) for v in outputs.values()), outputs
    assert outputs[LOSS[name]] < losses[0]
    if "accuracy" in outputs:
        assert 0.2 < outputs["accuracy"] <= 1  # well above chance after 30 iterations


@pytest.mark.parametrize("name", EXAMPLES)
def test_both_forms_train_identically(name, tmp_path, monkeypatch):
    runs = []
    for form in ("prototxt", "yaml"):
        solver = solver_for(name, tmp_path, monkeypatch, form)
        solver.step(3)
        runs.append([p.data.copy() for p in solver.net.learnable_params])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_mlp_has_each_activation_and_dropout_in_train_only(tmp_path, monkeypatch):
    solver = solver_for("mlp", tmp_path, monkeypatch)
    types = [layer.type for layer in solver.net.layers]
    for kind in ("Sigmoid", "TanH", "ReLU", "PReLU", "Dropout", "SoftmaxWithLoss"):
        assert kind in types
    shapes = [solver.net.params[f"ip{i}"][0].shape for i in range(1, 6)]
    assert shapes == [(512, 784), (256, 512), (128, 256), (64, 128), (10, 64)]
    # PReLU: one slope per unit, Caffe's default 0.25, learned without decay
    slopes = solver.net.params["prelu2"][0]
    np.testing.assert_array_equal(slopes.data, np.full(256, 0.25, np.float32))
    index = solver.net.learnable_params.index(slopes)
    assert solver.net.params_weight_decay[index] == 0
    # TRAIN: Dropout keeps each unit of max(ip1, 0) scaled by 1 / (1 - 0.2), or zeroes it
    net = solver.net
    net.forward()
    w, b = (p.data for p in net.params["ip1"])
    relu = np.maximum(net.blobs["data"].data.reshape(64, 784) @ w.T + b, 0)
    out = net.blobs["ip1"].data
    kept = out != 0
    np.testing.assert_allclose(out[kept], relu[kept] / 0.8, rtol=1e-5, atol=1e-6)  # float32 sums
    assert 0.15 < 1 - kept[relu > 0].mean() < 0.25
    # TEST: Dropout is the identity; PReLU follows its formula with the 0.25 slopes
    test_net = solver.test_nets[0]
    test_net.share_trained_layers_with(solver.net)
    test_net.forward()
    ip2 = test_net.blobs["ip1"].data @ test_net.params["ip2"][0].data.T
    ip2 += test_net.params["ip2"][1].data
    expected = np.maximum(ip2, 0) + 0.25 * np.minimum(ip2, 0)
    np.testing.assert_allclose(test_net.blobs["ip2"].data, expected, rtol=1e-5, atol=1e-5)


def test_lenet_bn_normalises_each_convolution_and_keeps_statistics_out_of_the_solver(
        tmp_path, monkeypatch):
    solver = solver_for("lenet_bn", tmp_path, monkeypatch)
    net = solver.net
    assert [layer.type for layer in net.layers[1:5]] == [
        "Convolution", "BatchNorm", "Scale", "Pooling"]
    for conv in ("conv1", "conv2"):
        assert len(net.params[conv]) == 1  # no bias: Scale's beta takes its place
        # no weight decay: it would only shrink weights whose scale BatchNorm removes
        assert net.params_weight_decay[net.learnable_params.index(net.params[conv][0])] == 0
    for n, channels in ((1, 20), (2, 50)):
        mean, var, factor = net.params[f"bn{n}"]
        assert mean.shape == var.shape == (channels,) and factor.shape == (1,)
        for blob in (mean, var, factor):
            assert net.params_lr[net.learnable_params.index(blob)] == 0
        gamma, beta = net.params[f"scale{n}"]
        assert gamma.shape == beta.shape == (channels,)
        np.testing.assert_array_equal(gamma.data, 1)
    solver.step(2)
    # TRAIN: after BatchNorm, each channel of the batch has mean 0 and variance 1 (Scale's
    # gamma and beta are 1 and 0 up to two small updates, so check the BatchNorm top).
    net.forward()
    conv = net.blobs["conv1"].data  # in place: BatchNorm then Scale wrote over conv1
    gamma, beta = (b.data for b in net.params["scale1"])
    normalised = (conv - beta[:, None, None]) / gamma[:, None, None]
    np.testing.assert_allclose(normalised.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(normalised.var(axis=(0, 2, 3)), 1, atol=1e-2)
    # the moving-average statistics have been accumulated (three forwards here)
    mean, var, factor = net.params["bn1"]
    assert factor.data[0] > 0 and np.all(var.data > 0)


def test_mnist_lstm_reads_each_digit_row_by_row(tmp_path, monkeypatch):
    solver = solver_for("mnist_lstm", tmp_path, monkeypatch)
    for net, batch in ((solver.net, 64), (solver.test_nets[0], 100)):
        net.share_trained_layers_with(solver.net)
        net.forward()
        blobs = {name: blob.data for name, blob in net.blobs.items()}
        # (T, N, K): step t of stream n is row t of digit n
        np.testing.assert_array_equal(blobs["sequence"],
                                      blobs["data"][:, 0].transpose(1, 0, 2))
        cont = np.ones((28, batch), np.float32)
        cont[0] = 0
        np.testing.assert_array_equal(blobs["cont"], cont)
        assert blobs["lstm"].shape == (28, batch, 128)
        np.testing.assert_array_equal(blobs["final_state"], blobs["lstm"][27])
        w, b = (p.data for p in net.params["ip"])
        np.testing.assert_allclose(blobs["ip"], blobs["lstm"][27] @ w.T + b, rtol=1e-5,
                                   atol=1e-6)
    # The first row reaches the classifier through 27 steps of the cell. With the initial
    # weights the forget gates are near 0.5 and its trace fades (0.5^27); open them (bias of
    # gate rows f, the second quarter, to 10) and changing row 0 moves the scores.
    net = solver.test_nets[0]
    net.params["lstm"][1].data[128:256] = 10
    net.forward()
    before = net.blobs["ip"].data.copy()
    net.blobs["data"].data[:, :, 0, :] += 1.0
    net.forward(start="slice_rows")
    assert np.abs(net.blobs["ip"].data - before).max() > 1e-4


def test_mnist_autoencoder_reconstructs_at_the_input_size(tmp_path, monkeypatch):
    solver = solver_for("mnist_autoencoder", tmp_path, monkeypatch)
    net = solver.test_nets[0]
    net.share_trained_layers_with(solver.net)
    outputs = net.forward()
    shapes = {name: net.blobs[name].shape for name in ("encode1", "encode2", "decode2",
                                                       "decode1", "flatdecode")}
    assert shapes == {"encode1": (100, 16, 14, 14), "encode2": (100, 8, 7, 7),
                      "decode2": (100, 16, 14, 14), "decode1": (100, 1, 28, 28),
                      "flatdecode": (100, 784)}
    assert [layer.type for layer in net.layers].count("Deconvolution") == 2
    x = net.blobs["data"].data.reshape(100, 784).astype(np.float64)
    z = net.blobs["decode1"].data.reshape(100, 784).astype(np.float64)
    recon = 1 / (1 + np.exp(-z))
    assert outputs["l2_error"] == pytest.approx(((recon - x) ** 2).sum() / 200, rel=1e-4)
    cross_entropy = -(x * np.log(recon) + (1 - x) * np.log(1 - recon)).sum() / 100
    assert outputs["cross_entropy_loss"] == pytest.approx(cross_entropy, rel=1e-4)
    # l2_error is watched, not trained on
    assert set(solver.net.outputs) == {"cross_entropy_loss", "l2_error"}
    assert solver.net.blob_loss_weights["l2_error"] == 0
    assert solver.net.blob_loss_weights["cross_entropy_loss"] == 1


# -- end to end: the runs docs/examples.md reports --------------------------------------------
TEST_OUTPUT = re.compile(r"Iteration (\d+), Testing net|Test net output #\d+: (\S+) = (\S+)")


def train_from_cli(name, tmp_path):
    """`caffelite train configs/<name>/<name>.yaml` from another directory; the last test's
    outputs (its iteration, {name: value})."""
    process = subprocess.run([sys.executable, "-m", "caffelite", "train",
                              str(CONFIGS / name / f"{name}.yaml"), "--log", "train.log",
                              "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    iteration, outputs = None, {}
    for match in TEST_OUTPUT.finditer((tmp_path / "train.log").read_text()):
        if match.group(1):
            iteration, outputs = int(match.group(1)), {}
        else:
            outputs[match.group(2)] = float(match.group(3))
    max_iter = caffelite.read_solver_param(str(CONFIGS / name / f"{name}.yaml")).max_iter
    assert iteration == max_iter
    assert (tmp_path / f"{name}_iter_{max_iter}.caffemodel").is_file()
    print(f"\n{name}: {max_iter} iterations, final test {outputs}")
    return outputs


@pytest.mark.slow
def test_mnist_lstm_reaches_090_on_the_test_digits(tmp_path):
    assert train_from_cli("mnist_lstm", tmp_path)["accuracy"] >= 0.90


@pytest.mark.slow
def test_mlp_reaches_095(tmp_path):
    assert train_from_cli("mlp", tmp_path)["accuracy"] >= 0.95


@pytest.mark.slow
def test_lenet_bn_reaches_097(tmp_path):
    assert train_from_cli("lenet_bn", tmp_path)["accuracy"] >= 0.97


@pytest.mark.slow
def test_mnist_autoencoder_reconstruction_error(tmp_path):
    outputs = train_from_cli("mnist_autoencoder", tmp_path)
    # l2_error = sum of squared pixel errors / (2 N): per pixel, 2 l2 / 784
    assert 2 * outputs["l2_error"] / 784 < 0.01


def test_examples_are_listed_in_the_docs():
    text = (ROOT / "docs" / "examples.md").read_text()
    for name in EXAMPLES:
        assert f"caffelite train configs/{name}/{name}.yaml" in text
