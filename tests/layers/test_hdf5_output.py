"""HDF5Output: the file h5py reads back holds the bottoms as `data` and `label` in Caffe's
4-D shapes; later forwards append; HDF5Data -> HDF5Output copies a file as Caffe's test does."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from tests.gradient_check import blob_from, make_layer

h5py = pytest.importorskip("h5py")


def output_layer(path):
    return make_layer(f'type: "HDF5Output" bottom: "d" bottom: "l" '
                      f'hdf5_output_param {{ file_name: "{path}" }}', dtype=np.float32)


def read(path):
    with h5py.File(path, "r") as f:
        return {name: (f[name][()], f[name].dtype) for name in f}


def test_writes_data_and_label_with_legacy_shapes(tmp_path):
    rng = np.random.default_rng(0)
    data, label = rng.standard_normal((4, 3, 2, 5)), np.arange(4.0)
    bottom = [blob_from(data, np.float32), blob_from(label, np.float32)]
    layer = output_layer(tmp_path / "out.h5")
    layer.setup(bottom, [])
    assert read(tmp_path / "out.h5") == {}  # created empty at setup
    layer.forward(bottom, [])
    stored = read(tmp_path / "out.h5")
    assert sorted(stored) == ["data", "label"]
    assert stored["data"][1] == stored["label"][1] == np.float32
    np.testing.assert_array_equal(stored["data"][0], data.astype(np.float32))
    np.testing.assert_array_equal(stored["label"][0], label.reshape(4, 1, 1, 1))


def test_later_forwards_append_rows(tmp_path):
    layer = output_layer(tmp_path / "out.h5")
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((3, 6)), rng.standard_normal((3, 2))) for _ in range(3)]
    bottom = [Blob((3, 6), np.float32), Blob((3, 2), np.float32)]
    layer.setup(bottom, [])
    for data, label in batches:
        bottom[0].data[...], bottom[1].data[...] = data, label
        layer.forward(bottom, [])
    stored = read(tmp_path / "out.h5")
    np.testing.assert_array_equal(stored["data"][0],
                                  np.concatenate([d for d, _ in batches]).astype(np.float32)
                                  .reshape(9, 6, 1, 1))
    np.testing.assert_array_equal(stored["label"][0],
                                  np.concatenate([b for _, b in batches]).astype(np.float32)
                                  .reshape(9, 2, 1, 1))


def test_setup_truncates_an_existing_file(tmp_path):
    with h5py.File(tmp_path / "out.h5", "w") as f:
        f.create_dataset("data", data=np.ones((7, 1, 1, 1)))
        f.create_dataset("old", data=np.ones(2))
    bottom = [blob_from(np.zeros((2, 1)), np.float32), blob_from(np.zeros(2), np.float32)]
    layer = output_layer(tmp_path / "out.h5")
    layer.setup(bottom, [])
    layer.forward(bottom, [])
    stored = read(tmp_path / "out.h5")
    assert sorted(stored) == ["data", "label"] and stored["data"][0].shape == (2, 1, 1, 1)


def test_a_net_copies_an_hdf5_data_file(tmp_path):
    """Caffe's test_hdf5_output_layer: HDF5Data reads a file, HDF5Output writes it again."""
    from caffelite.net import Net

    rng = np.random.default_rng(2)
    data, label = rng.standard_normal((6, 2, 3, 4)), rng.integers(0, 9, (6,))
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=label)
    (tmp_path / "in.txt").write_text("in.h5\n")
    (tmp_path / "net.prototxt").write_text(f"""
      layer {{ name: "in" type: "HDF5Data" top: "data" top: "label"
               hdf5_data_param {{ source: "in.txt" batch_size: 6 }} }}
      layer {{ name: "out" type: "HDF5Output" bottom: "data" bottom: "label"
               hdf5_output_param {{ file_name: "{tmp_path / 'out.h5'}" }} }}""")
    net = Net(str(tmp_path / "net.prototxt"), phase="TEST")
    net.forward()
    stored = read(tmp_path / "out.h5")
    np.testing.assert_array_equal(stored["data"][0], data.astype(np.float32))
    np.testing.assert_array_equal(stored["label"][0], label.astype(np.float32).reshape(6, 1, 1, 1))


def test_bad_input(tmp_path):
    with pytest.raises(NetError, match="file_name is empty"):
        output_layer("").setup([Blob((2,)), Blob((2,))], [])
    with pytest.raises(NetError, match=r"cannot create .*nodir/out\.h5"):
        output_layer(tmp_path / "nodir" / "out.h5").setup([Blob((2,)), Blob((2,))], [])
    with pytest.raises(NetError, match="data bottom has 3 rows and the label bottom 2"):
        output_layer(tmp_path / "a.h5").setup([Blob((3, 1)), Blob((2,))], [])
    with pytest.raises(NetError, match="bottom 0 has 5 axes"):
        output_layer(tmp_path / "b.h5").setup([Blob((2, 1, 1, 1, 1)), Blob((2,))], [])
    layer = output_layer(tmp_path / "c.h5")
    bottom = [Blob((2, 3), np.float32), Blob((2,), np.float32)]
    layer.setup(bottom, [])
    layer.forward(bottom, [])
    bottom[0].reshape((2, 4))
    with pytest.raises(NetError, match=r"'data' rows are \(4, 1, 1\) in this forward, "
                                       r"\(3, 1, 1\) before"):
        layer.forward(bottom, [])
    assert read(tmp_path / "c.h5")["label"][0].shape == (2, 1, 1, 1)  # nothing half-written
