"""scripts/bench.py: both sides train the same model, and the script runs end to end."""
import json
import sys

import numpy as np
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import bench  # noqa: E402

from caffelite import runtime  # noqa: E402

torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")


@pytest.fixture(autouse=True)
def restore_threads():
    """bench.set_threads is process-wide (caffelite, OpenBLAS, PyTorch): put them back."""
    saved = runtime.num_threads(), runtime.blas_threads(), torch.get_num_threads()
    yield
    runtime.set_num_threads(saved[0])
    if saved[1] is not None:
        runtime.set_blas_threads(saved[1])
    torch.set_num_threads(saved[2])


def copy_weights(net, model):
    """caffelite's learnable params (layer order) into the PyTorch model's (weight, bias) pairs."""
    params = [blob.data for blob in net.learnable_params]
    targets = list(model.parameters())
    assert [p.shape for p in params] == [tuple(t.shape) for t in targets]
    with torch.no_grad():
        for source, target in zip(params, targets):
            target.copy_(torch.from_numpy(source))


def torch_side(name, batch, channels_last):
    bench.set_threads(1)
    return bench.TorchSide(name, batch, np.random.default_rng(0), channels_last)


@pytest.mark.parametrize("name", sorted(bench.NETS))
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_model_same_loss_and_gradients(name, channels_last):
    """With caffelite's weights and batch, PyTorch's model gives the same loss and the same
    parameter gradients: the benchmark times one computation twice."""
    ours = bench.make_side("caffelite", name, 4)
    theirs = torch_side(name, 4, channels_last)
    copy_weights(ours.net, theirs.model)
    x = torch.from_numpy(ours.net.blobs["data"].data.copy())
    y = torch.from_numpy(ours.net.blobs["label"].data.astype(np.int64))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    loss = float(ours.net.forward_backward())
    expected = theirs.loss(theirs.model(x), y)
    expected.backward()

    assert loss == pytest.approx(expected.item(), rel=1e-5)
    for blob, param in zip(ours.net.learnable_params, theirs.model.parameters()):
        np.testing.assert_allclose(blob.diff, param.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_script_prints_ratios_as_json(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--nets", "lenet:4", "--iters", "2",
                                      "--warmup", "1", "--threads", "1", "--no-memory",
                                      "--json"])
    bench.main()
    report = json.loads(capsys.readouterr().out)
    assert report["threads"] == 1
    assert [row["mode"] for row in report["results"]] == ["train_step", "forward"]
    for row in report["results"]:
        assert set(row["ms"]) == {"caffelite", "torch", "torch_cl"}
        for timing in row["ms"].values():
            assert 0 < timing["min"] <= timing["median"] <= timing["max"]
        assert set(row["ratio"]) == {"torch", "torch_cl"}
        for ratio in row["ratio"].values():
            assert 0 < ratio["q1"] <= ratio["median"] <= ratio["q3"]


def test_ratios_pair_neighbouring_iterations():
    """The ratio is taken per iteration: a host that slows down for the second half moves
    both sides, and the paired ratio stays where it was."""
    ours = [10.0, 10.0, 20.0, 20.0]
    theirs = [8.0, 8.0, 16.0, 16.0]
    ms, ratios = bench.summary({"caffelite": ours, "torch_cl": theirs})
    assert ms["caffelite"] == {"median": 15.0, "min": 10.0, "max": 20.0}
    assert ratios["torch_cl"] == {"median": 1.25, "q1": 1.25, "q3": 1.25}
    _, single = bench.summary({"caffelite": [3.0], "torch": [2.0]})
    assert single["torch"] == {"median": 1.5, "q1": 1.5, "q3": 1.5}


def test_sides_take_turns_in_blocks_each_after_an_untimed_run():
    calls = []

    class Side:
        def __init__(self, name):
            self.name = name

        def train_step(self):
            calls.append(self.name)

    times = bench.time_alternately({"a": Side("a"), "b": Side("b")}, "train_step", iters=7,
                                   warmup=1, block=3)
    assert [len(t) for t in times.values()] == [7, 7]
    # warm-up a b; then per block one untimed run and up to 3 timed ones, a's block first
    assert "".join(calls) == "ab" + "aaaabbbb" * 2 + "aabb"
