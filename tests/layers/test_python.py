"""Python layer: pycaffe's interface, BVLC's linreg.prototxt with our pyloss, errors."""
import sys
from pathlib import Path

import numpy as np
import pytest

import caffelite
from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.conftest import EXAMPLES, need_shared
from tests.gradient_check import blob_from, check_gradient, make_layer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def fixtures_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def python_layer(module, layer, extra=""):
    return make_layer(f"type: 'Python' python_param {{ module: '{module}' layer: '{layer}' "
                      f"{extra} }}")


def test_linreg_example_net(fixtures_on_path):
    path = need_shared(EXAMPLES / "pycaffe" / "linreg.prototxt")
    net = caffelite.Net(str(path), caffelite.TRAIN, rng=np.random.default_rng(4))
    assert type(net.layer_dict["loss"]).__name__ == "PythonLayer"
    assert net.outputs == ["loss"]
    loss = net.forward()["loss"]
    ipx, ipy = net.blobs["ipx"].data, net.blobs["ipy"].data
    expected = ((ipx - ipy) ** 2).sum() / ipx.shape[0] / 2
    np.testing.assert_allclose(loss, [expected], rtol=1e-5)
    net.backward()
    np.testing.assert_allclose(net.blobs["ipx"].diff, (ipx - ipy) / 10, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.blobs["ipy"].diff, (ipy - ipx) / 10, rtol=1e-5, atol=1e-7)
    # the InnerProduct weights get gradients through the Python loss
    x = net.blobs["x"].data.reshape(10, -1)
    np.testing.assert_allclose(net.params["ipx"][0].diff, (ipx - ipy).T @ x / 10, rtol=1e-4,
                               atol=1e-6)


def test_python_loss_matches_formula_and_gradient(fixtures_on_path, rng):
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    layer = python_layer("pyloss", "EuclideanLossLayer")
    layer.layer_param.loss_weight.append(2.0)
    bottom, top = [blob_from(a), blob_from(b)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, [((a - b) ** 2).sum() / 8])
    layer.backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[0].diff, 2 * (a - b) / 4)
    check_gradient(python_layer("pyloss", "EuclideanLossLayer"), [blob_from(a), blob_from(b)],
                   [Blob(dtype=np.float64)], threshold=1e-2)


def test_param_str_phase_and_blobs(fixtures_on_path, rng):
    layer = python_layer("pyscale", "ChannelScaleLayer", "param_str: '2.5'")
    layer.phase = caffelite.TEST
    x = rng.normal(size=(2, 3, 2))
    bottom, top = [blob_from(x)], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    assert layer.user.seen == {"param_str": "2.5", "phase": caffelite.TEST}
    assert len(layer.blobs) == 1 and layer.blobs is layer.user.blobs
    np.testing.assert_array_equal(layer.blobs[0].data, [2.5] * 3)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, 2.5 * x)
    layer.blobs[0].data[...] = rng.normal(size=3)
    check_gradient(layer, bottom, [Blob(dtype=np.float64)], setup=False)


def test_module_given_as_a_file_path(rng):
    layer = python_layer(FIXTURES / "pyscale.py", "ChannelScaleLayer")
    bottom, top = [blob_from(rng.normal(size=(2, 3)))], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, bottom[0].data)


def test_module_found_in_the_working_directory(tmp_path, monkeypatch, rng):
    (tmp_path / "cwd_only_layer.py").write_text(
        "import caffelite\n\n\nclass Copy(caffelite.Layer):\n"
        "    def setup(self, bottom, top):\n        pass\n\n"
        "    def reshape(self, bottom, top):\n        top[0].reshape(*bottom[0].shape)\n\n"
        "    def forward(self, bottom, top):\n        top[0].data[...] = bottom[0].data\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    layer = python_layer("cwd_only_layer", "Copy")
    bottom, top = [blob_from(rng.normal(size=(2, 3)))], [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data)
    assert str(tmp_path) not in sys.path


def test_import_errors_name_the_layer(fixtures_on_path, tmp_path, monkeypatch):
    bottom, top = [blob_from(np.ones((2, 3)))], [Blob(dtype=np.float64)]
    with pytest.raises(NetError, match=r"layer 'test' \(Python\).*'no_such_module'.*PYTHONPATH"):
        python_layer("no_such_module", "X").setup(bottom, top)
    with pytest.raises(NetError, match=r"no class 'ChannelScale'; did you mean "
                                       r"'ChannelScaleLayer'"):
        python_layer("pyscale", "ChannelScale").setup(bottom, top)
    with pytest.raises(NetError, match="subclass of caffelite.Layer"):
        python_layer("pyloss", "np").setup(bottom, top)
    with pytest.raises(NetError, match="no such file"):
        python_layer(tmp_path / "missing.py", "X").setup(bottom, top)
    (tmp_path / "broken_dep_layer.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(NetError, match="failed.*no_such_dependency_xyz"):
        python_layer("broken_dep_layer", "X").setup(bottom, top)
    with pytest.raises(NetError, match="needs both"):
        make_layer("type: 'Python' python_param { module: 'pyloss' }").setup(bottom, top)
