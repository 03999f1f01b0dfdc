"""Code execution paths: `inspect` never imports a Python layer's module, and a relative
python_param.module is looked up only beside the net file, in the working directory and on
sys.path, each import logged."""
import logging
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import caffelite
from caffelite.cli import main
from caffelite.errors import NetError

LAYER = '''
import pathlib
pathlib.Path(__file__).with_suffix(".ran").write_text("imported")
import caffelite

class Double(caffelite.Layer):
    def setup(self, bottom, top):
        pass
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)
    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data
'''


def _net(module):
    return ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
            f'layer {{ name: "py" type: "Python" bottom: "x" top: "y" python_param {{ '
            f'module: "{module}" layer: "Double" }} }}\n')


@pytest.fixture
def clean_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("rb_layer"):
            del sys.modules[name]


def test_inspect_does_not_import_the_module(tmp_path, clean_modules):
    (tmp_path / "rb_layer_a.py").write_text(LAYER)
    net = tmp_path / "net.prototxt"
    net.write_text(_net("rb_layer_a"))
    result = CliRunner().invoke(main, ["inspect", str(net)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "rb_layer_a.ran").exists()
    assert "Python layer 'py' (module 'rb_layer_a'): inspect does not import its code" \
        in result.output
    assert "py" in result.output and "Python" in result.output  # still listed


def test_module_beside_the_net_file_is_imported_and_logged(tmp_path, caplog, clean_modules):
    (tmp_path / "rb_layer_b.py").write_text(LAYER)
    net = tmp_path / "net.prototxt"
    net.write_text(_net("rb_layer_b"))
    with caplog.at_level(logging.INFO, logger="caffelite"):
        built = caffelite.Net(str(net), caffelite.TEST)
    assert (tmp_path / "rb_layer_b.ran").exists()
    built.blobs["x"].data[...] = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(built.forward()["y"], 2 * np.arange(6).reshape(2, 3))
    logged = [r.getMessage() for r in caplog.records]
    assert f"Python layer 'py': module '{tmp_path / 'rb_layer_b.py'}' from " \
           f"{tmp_path / 'rb_layer_b.py'}" in logged


@pytest.mark.parametrize("module", ["rb_layer_c", "rb_layer_c.py", "lib/rb_layer_c.py"])
def test_directories_above_the_net_file_are_not_searched(tmp_path, monkeypatch, module,
                                                         clean_modules):
    (tmp_path / "lib").mkdir()
    (tmp_path / "rb_layer_c.py").write_text(LAYER)
    (tmp_path / "lib" / "rb_layer_c.py").write_text(LAYER)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "net.prototxt").write_text(_net(module))
    monkeypatch.chdir(nested)
    with pytest.raises(NetError, match=r"layer 'py' \(Python\)"):
        caffelite.Net(str(nested / "net.prototxt"), caffelite.TEST)
    assert not (tmp_path / "rb_layer_c.ran").exists()
    assert not (tmp_path / "lib" / "rb_layer_c.ran").exists()


def test_working_directory_is_searched(tmp_path, monkeypatch, clean_modules):
    (tmp_path / "rb_layer_d.py").write_text(LAYER)
    elsewhere = tmp_path / "nets"
    elsewhere.mkdir()
    (elsewhere / "net.prototxt").write_text(_net("rb_layer_d.py"))
    monkeypatch.chdir(tmp_path)
    caffelite.Net(str(elsewhere / "net.prototxt"), caffelite.TEST)
    assert (tmp_path / "rb_layer_d.ran").exists()
