"""The real BVLC LeNet through `caffelite export` and onnxruntime, and the command's errors."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import LENET_BVLC, ROOT, need_shared
from onnx_check import assert_close, session

import caffelite
from caffelite.data.sources import load_source


def export(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "caffelite", "export", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.timeout(180)
def test_bvlc_lenet_predicts_the_bundled_test_digits_identically(tmp_path):
    """The caffemodel BVLC Caffe trained, exported by the command: onnxruntime's predictions
    on the 2,000 bundled test digits are caffelite's, digit for digit."""
    model = need_shared(LENET_BVLC / "lenet.prototxt")
    weights = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    out = tmp_path / "lenet.onnx"
    done = export(model, weights, "-o", out)
    assert done.returncode == 0, done.stderr
    assert "inputs data[N,1,28,28]; outputs prob[N,10]" in done.stdout
    images, labels = load_source("caffelite://mnist10k/test")
    images = images.astype(np.float32) * np.float32(0.00390625)  # Caffe's LeNet scale

    net = caffelite.Net(str(model), caffelite.TEST, weights=str(weights))
    ours = net.forward(data=images)["prob"].reshape(len(images), 10)
    sess = session(__import__("onnx").load(str(out)))
    theirs = sess.run(["prob"], {"data": images})[0]
    np.testing.assert_array_equal(theirs.argmax(1), ours.argmax(1))
    assert_close(ours, theirs, "prob")
    assert (theirs.argmax(1) == labels).mean() > 0.98
    import onnx

    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_a_train_val_net_in_its_test_phase(tmp_path):
    """configs/lenet's train/test net: the Data layer's top is the input, the loss and
    Accuracy are dropped with a note, the logits ip2 are the output; --static-batch and
    --opset are honoured."""
    out = tmp_path / "lenet.onnx"
    net = ROOT / "configs/lenet/lenet_train_test.prototxt"
    weights = tmp_path / "w.caffemodel"
    caffelite.Net(str(net), caffelite.TEST).save(str(weights))
    done = export(net, weights, "-o", out, "--phase", "TEST", "--static-batch", "--opset", 13)
    assert done.returncode == 0, done.stderr
    assert "inputs data[100,1,28,28]; outputs ip2[100,10]" in done.stdout
    assert "note: dropped layer 'loss' (SoftmaxWithLoss)" in done.stdout
    import onnx

    assert onnx.load(str(out)).opset_import[0].version == 13


PYLOSS = '''import caffelite


class Double(caffelite.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data
'''
PYNET = '''name: "py"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "double" type: "Python" bottom: "x" top: "y"
        python_param { module: "double_layer" layer: "Double" } }
'''


def test_a_layer_that_cannot_be_exported_exits_2_and_writes_nothing(tmp_path):
    (tmp_path / "double_layer.py").write_text(PYLOSS)
    (tmp_path / "net.prototxt").write_text(PYNET)
    weights = tmp_path / "w.caffemodel"
    sys.path.insert(0, str(tmp_path))
    try:
        caffelite.Net(str(tmp_path / "net.prototxt"), caffelite.TEST).save(str(weights))
    finally:
        sys.path.remove(str(tmp_path))
    done = export("net.prototxt", weights, "-o", "out.onnx", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("caffelite: error: layer 'double' (Python) cannot be "
                                  "exported to ONNX: a Python layer runs arbitrary Python code")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.onnx").exists()
    assert not any(p.name.endswith(".tmp") or p.suffix == ".onnx" for p in tmp_path.iterdir())


def test_missing_files_and_a_bad_opset(tmp_path):
    done = export(tmp_path / "none.prototxt", tmp_path / "w", "-o", tmp_path / "m.onnx")
    assert done.returncode == 2 and "no such net config file" in done.stderr
    model = need_shared(LENET_BVLC / "lenet.prototxt")
    weights = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    done = export(model, weights, "-o", tmp_path / "m.onnx", "--opset", 7)
    assert done.returncode == 2 and "opset 7 is not supported" in done.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_without_onnx_the_error_names_the_extra(monkeypatch):
    from caffelite.errors import CaffeliteError
    from caffelite.export.onnx_graph import require_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(CaffeliteError, match='pip install "caffelite\\[onnx\\]"'):
        require_onnx()


def test_input_shape_replaces_a_data_layer_whose_database_is_absent(tmp_path):
    """BVLC's lenet_train_test names LMDB folders that are not here: --input-shape makes its
    Data layers Inputs; the exported logits rank the digits as the deploy net does."""
    train_test = need_shared(LENET_BVLC / "lenet_train_test.prototxt")
    weights = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    out = tmp_path / "lenet.onnx"
    done = export(train_test, weights, "-o", out, "--input-shape", "data=64,1,28,28")
    assert done.returncode == 0, done.stderr
    assert "inputs data[N,1,28,28]; outputs ip2[N,10]" in done.stdout
    images = load_source("caffelite://mnist10k/test")[0][:200].astype(np.float32) / 256
    import onnx

    logits = session(onnx.load(str(out))).run(["ip2"], {"data": images})[0]
    net = caffelite.Net(str(LENET_BVLC / "lenet.prototxt"), caffelite.TEST,
                        weights=str(weights))
    prob = net.forward(data=images)["prob"].reshape(200, 10)
    np.testing.assert_array_equal(logits.argmax(1), prob.argmax(1))
    bad = export(train_test, weights, "-o", out, "--input-shape", "image=1,2")
    assert bad.returncode == 2 and "no data layer" in bad.stderr and "data, label" in bad.stderr
