"""caffelite time: Caffe's per-layer timing table, JSON output, and the backward it runs."""
import json
import re

import pytest
from click.testing import CliRunner
from conftest import ROOT

from caffelite import runtime
from caffelite.cli import main
from caffelite.cli.time import benchmark
from caffelite.net import Net
from caffelite.proto import caffelite_pb2 as pb

LENET = ROOT / "configs" / "lenet" / "lenet_train_test.prototxt"
TINY = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "x" top: "y"
        dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
                           data_filler { type: "gaussian" } data_filler { type: "gaussian" } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "deploy_only" type: "Sigmoid" bottom: "ip" top: "sig"
        include { stage: "deploy" } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
"""
LINE = re.compile(r"^\s*(\S+)\s+(forward|backward): ([0-9.e+-]+) ms\.")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(TINY)
    return path


def run_time(*args):
    result = CliRunner().invoke(main, ["time", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def parse_table(out):
    """{layer: {"forward": ms, "backward": ms}} from Caffe-style lines, in order."""
    table = {}
    for line in out.splitlines():
        match = LINE.match(line)
        if match:
            table.setdefault(match[1], {})[match[2]] = float(match[3])
    return table


def summary(out, what):
    return float(re.search(rf"^Average {what}: ([0-9.e+-]+) ms\.$", out, re.M)[1])


def test_table_lists_every_layer_with_positive_times(tiny):
    out = run_time("--model", tiny, "--iterations", 3)
    table = parse_table(out)
    assert list(table) == ["data", "ip", "relu", "loss"]  # TRAIN, no stage: no deploy_only
    assert all(set(t) == {"forward", "backward"} for t in table.values())
    assert all(t["forward"] > 0 for t in table.values())
    assert all(table[name]["backward"] > 0 for name in ("ip", "relu", "loss"))
    assert "data  backward" in out and "(no backward needed)" in out
    assert "Testing for 3 iterations." in out and "Initial loss: " in out
    on = "on" if runtime.compiled_kernels() else "off"
    assert f"Threads: {runtime.num_threads()}; compiled kernels: {on}." in out
    forward, backward = summary(out, "Forward pass"), summary(out, "Backward pass")
    both = summary(out, "Forward-Backward")
    assert 0 < forward <= both and 0 < backward <= both
    assert re.search(r"^Total Time: [0-9.e+-]+ ms\.$", out, re.M)


def test_json_output_and_stages(tiny):
    out = run_time("--model", tiny, "--iterations", 2, "--phase", "test", "--stage", "deploy",
                   "--json")
    result = json.loads(out)
    assert result["phase"] == "TEST" and result["iterations"] == 2
    assert result["compiled_kernels"] == runtime.compiled_kernels() and result["threads"] >= 1
    names = [layer["name"] for layer in result["layers"]]
    # ip feeds two layers: the net inserts Caffe's Split, named after the last producer
    assert names == ["data", "ip", "relu", "ip_relu_0_split", "deploy_only", "loss"]
    assert all(layer["forward_ms"] > 0 for layer in result["layers"])
    runs = {layer["name"]: layer["backward_runs"] for layer in result["layers"]}
    # the Sigmoid's top reaches no loss, the data needs no gradient
    assert runs == {"data": False, "ip": True, "relu": True, "ip_relu_0_split": True,
                    "deploy_only": False, "loss": True}
    assert result["forward_ms"] > 0 and result["backward_ms"] > 0
    assert result["total_ms"] >= result["forward_backward_ms"] > 0
    # EuclideanLoss(ip, y) = Σ(ip - y)² / 2N >= 0
    assert result["initial_loss"] >= 0


def test_backward_runs_exactly_what_the_net_runs(tiny):
    """Each layer's backward is called as Net.backward would call it: not at all for layers no
    loss needs, and with Caffe's propagate_down (no gradient into the data or the label)."""
    net = Net(str(tiny), phase=pb.TRAIN)
    calls = []
    for layer in net.layers:
        original = layer.backward

        def spy(top, propagate_down, bottom, layer=layer, original=original):
            calls.append((layer.name, list(propagate_down)))
            return original(top, propagate_down, bottom)

        layer.backward = spy
    result = benchmark(net, 2)
    per_pass = [("loss", [True, False]), ("relu", [True]), ("ip", [False])]
    assert calls == per_pass * 3  # warm-up + 2 timed passes, last layer first
    assert [layer["name"] for layer in result["layers"]] == ["data", "ip", "relu", "loss"]


def test_forward_only_net_says_so(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text("""
        layer { name: "data" type: "Input" top: "data"
                input_param { shape { dim: 2 dim: 5 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param { num_output: 3 } }""")
    out = run_time("--model", path, "--iterations", 2)
    assert list(parse_table(out)) == ["data", "ip"]
    assert "No layer needs backward" in out and "force_backward: true" in out


def test_lenet_with_data_layer():
    out = run_time("--model", LENET, "--iterations", 2)
    table = parse_table(out)
    assert list(table) == ["mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2",
                           "loss"]
    assert all(t["forward"] > 0 for t in table.values())
    assert all(table[name]["backward"] > 0 for name in list(table)[1:])
    out = run_time("--model", LENET, "--iterations", 1, "--phase", "TEST")
    table = parse_table(out)
    assert "accuracy" in table and "ip2_ip2_0_split" in table  # the Net's own Split layers


def test_usage_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["time", "--model", str(tmp_path / "none.prototxt")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "none.prototxt" in lines[0] and "no such file" in lines[0]
    result = CliRunner().invoke(main, ["time", "--model", str(LENET), "--iterations", "0"])
    assert result.exit_code == 2 and "--iterations" in result.output
