"""The prefetch thread never keeps a process alive or hangs it: a normal exit and Ctrl-C in a
child process training from an LMDB; the in-memory path honours the data-parallel shard."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from dbfixtures import forward, make_data_layer, write_images_db

pytest.importorskip("lmdb")

CHILD = """
import sys, time
from google.protobuf import text_format
from caffelite.net import Net
from caffelite.proto import caffelite_pb2 as pb
net = Net(text_format.Parse('''layer {{ name: "d" type: "Data" top: "data" top: "label"
    data_param {{ source: "{source}" backend: LMDB batch_size: 2 }} }}''', pb.NetParameter()),
    phase=pb.TRAIN)
net.forward()
print("ready", flush=True)
if "{mode}" == "wait":
    while True:
        net.forward()
        time.sleep(0.01)
"""


def child(source, mode):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-c", CHILD.format(source=source, mode=mode)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture
def source(tmp_path, rng):
    images = rng.integers(0, 256, (5, 1, 4, 4), dtype=np.uint8)
    return write_images_db(tmp_path / "db", "lmdb", images, np.arange(5))


@pytest.mark.timeout(60)
def test_a_process_with_a_prefetch_thread_exits(source):
    process = child(source, "exit")
    out, err = process.communicate(timeout=50)
    assert process.returncode == 0, err
    assert out.strip() == "ready"


@pytest.mark.timeout(60)
def test_ctrl_c_ends_a_process_reading_batches(source):
    process = child(source, "wait")
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0 and "KeyboardInterrupt" in err


def test_in_memory_sources_read_their_shard(tmp_path, rng, monkeypatch):
    from caffelite.data import shard

    images = rng.integers(0, 256, (10, 1, 2, 2), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.arange(10))
    text = (f'name: "data" type: "Data" top: "data" top: "label" data_param {{ source: '
            f'"{tmp_path / "d.npz"}" batch_size: 3 }}')
    monkeypatch.setattr(shard, "_rank", 1)
    monkeypatch.setattr(shard, "_count", 2)
    layer, top = make_data_layer(text)
    assert list(forward(layer, top)[1]) == [3, 4, 5]
    assert list(forward(layer, top)[1]) == [9, 0, 1]
    assert layer.get_state() == {"cursor": 2}


def test_imagedata_without_pillow_names_the_extra(tmp_path, monkeypatch):
    from dbfixtures import png_bytes

    from caffelite.errors import NetError

    (tmp_path / "a.png").write_bytes(png_bytes(np.zeros((3, 3, 3), np.uint8)))
    (tmp_path / "list.txt").write_text("a.png 0\n")
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    text = (f'name: "images" type: "ImageData" top: "data" top: "label" image_data_param {{ '
            f'source: "{tmp_path / "list.txt"}" root_folder: "{tmp_path}/" batch_size: 1 }}')
    with pytest.raises(NetError, match=r'Pillow package, which is not installed: pip install '
                                       r'"caffelite\[data\]"'):
        make_data_layer(text)
