"""caffemodel/binaryproto I/O: raw packed-float writing checked against protobuf's own parser and
serializer, legacy headers, atomic writes, and clear errors for bad files."""
import os
import stat

import numpy as np
import pytest
from conftest import LENET_BVLC, need_shared
from google.protobuf import text_format

from caffelite.errors import WeightsError
from caffelite.formats import binary
from caffelite.net import Net
from caffelite.proto import caffelite_pb2 as pb

SHAPES = [(), (0,), (1,), (7,), (2, 3), (2, 3, 4, 5), (3, 1, 2, 1, 2)]


def reference_blob(array, diff=None):
    """The BlobProto protobuf's API builds (Caffe's Blob::ToProto), slow but unquestionable."""
    proto = pb.BlobProto()
    proto.shape.SetInParent()
    proto.shape.dim.extend(np.shape(array))
    proto.data.extend(np.asarray(array, np.float32).ravel().tolist())
    if diff is not None:
        proto.diff.extend(np.asarray(diff, np.float32).ravel().tolist())
    return proto


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blob_proto_bytes_parse_back(shape, dtype, rng):
    array = rng.standard_normal(shape).astype(dtype)
    raw = binary.blob_proto_bytes(array)
    proto = pb.BlobProto.FromString(raw)
    assert tuple(proto.shape.dim) == shape
    np.testing.assert_array_equal(np.asarray(proto.data, np.float32),
                                  array.astype(np.float32).ravel())
    assert raw == reference_blob(array).SerializeToString()  # byte-identical, field order too
    np.testing.assert_array_equal(binary.read_blob_array(proto), array.astype(np.float32))


def test_blob_proto_bytes_with_diff_and_views(rng):
    array = rng.standard_normal((4, 6)).astype(np.float32)
    view = array[:, ::2]  # not contiguous
    diff = -view
    raw = binary.blob_proto_bytes(view, diff)
    assert raw == reference_blob(view, diff).SerializeToString()
    proto = pb.BlobProto.FromString(raw)
    np.testing.assert_array_equal(binary.read_blob_array(proto, "diff"), diff)


def test_proto_field_bytes():
    assert binary.proto_field_bytes(1, b"abc") == b"\x0a\x03abc"
    name = "n" * 300  # a two-byte length varint
    assert pb.NetParameter.FromString(binary.proto_field_bytes(1, name.encode())).name == name
    layer = pb.LayerParameter(name="ip", type="InnerProduct", bottom=["data"])
    net = pb.NetParameter.FromString(binary.proto_field_bytes(100, layer.SerializeToString()) * 2)
    assert list(net.layer) == [layer, layer]


def test_read_blob_array_legacy_header_and_double():
    legacy = pb.BlobProto(num=1, channels=2, height=1, width=3, data=[1, 2, 3, 4, 5, 6])
    array = binary.read_blob_array(legacy)
    assert array.shape == (1, 2, 1, 3) and array.dtype == np.float32
    double = pb.BlobProto(double_data=[0.1, 0.2])
    double.shape.dim.append(2)
    array = binary.read_blob_array(double)
    assert array.dtype == np.float64 and array.tolist() == [0.1, 0.2]
    bad = pb.BlobProto(data=[1, 2, 3])
    bad.shape.dim.extend([2, 2])
    with pytest.raises(WeightsError, match=r"shape \[2, 2\] holds 3 data values, expected 4"):
        binary.read_blob_array(bad)


# -- binaryproto ----------------------------------------------------------------------------------
def test_binaryproto_round_trip(tmp_path, rng):
    mean = rng.uniform(0, 255, (1, 3, 8, 6)).astype(np.float32)
    path = tmp_path / "mean.binaryproto"
    binary.write_binaryproto(mean, path)
    np.testing.assert_array_equal(binary.read_binaryproto(path), mean)
    assert tuple(pb.BlobProto.FromString(path.read_bytes()).shape.dim) == mean.shape


def test_binaryproto_legacy_header(tmp_path):
    # compute_image_mean writes num/channels/height/width, no shape
    proto = pb.BlobProto(num=1, channels=3, height=2, width=2, data=np.arange(12.0).tolist())
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(proto.SerializeToString())
    array = binary.read_binaryproto(path)
    assert array.shape == (1, 3, 2, 2) and array[0, 2, 1, 1] == 11


def test_binaryproto_errors(tmp_path):
    path = tmp_path / "mean.binaryproto"
    binary.write_binaryproto(np.ones((3, 4, 4)), path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(WeightsError, match=f"{path}: not a valid .binaryproto"):
        binary.read_binaryproto(path)
    with pytest.raises(WeightsError, match="no such .binaryproto file"):
        binary.read_binaryproto(tmp_path / "missing.binaryproto")


# -- atomic_write ---------------------------------------------------------------------------------
def test_atomic_write(tmp_path):
    path = tmp_path / "out.bin"
    binary.atomic_write(path, b"first")
    assert path.read_bytes() == b"first"
    binary.atomic_write(path, [b"sec", memoryview(b"ond")])
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["out.bin"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def chunks():
        yield b"partial"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        binary.atomic_write(path, chunks())
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


# -- caffemodel -----------------------------------------------------------------------------------
SMALL = """
name: 'small'
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 3 } } }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'data' top: 'ip1'
        inner_product_param { num_output: 4 weight_filler { type: 'gaussian' }
                              bias_filler { type: 'gaussian' } } }
layer { name: 'relu' type: 'ReLU' bottom: 'ip1' top: 'ip1' }
layer { name: 'ip2' type: 'InnerProduct' bottom: 'ip1' top: 'ip2'
        param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 2 weight_filler { type: 'gaussian' } } }
"""


def small_net(seed=0):
    return Net(text_format.Parse(SMALL, pb.NetParameter()), rng=np.random.default_rng(seed))


@pytest.mark.parametrize("write_diff", [False, True])
def test_save_caffemodel_matches_protobuf(tmp_path, write_diff, rng):
    net = small_net()
    for layer in net.layers:
        for blob in layer.blobs:
            blob.diff[...] = rng.standard_normal(blob.shape)
    path = tmp_path / "small.caffemodel"
    binary.save_caffemodel(net, path, write_diff=write_diff)
    reference = pb.NetParameter(name="small")
    for layer in net.layers:  # Caffe's Net::ToProto / Layer::ToProto through protobuf's API
        lp = reference.layer.add()
        lp.CopyFrom(layer.layer_param)
        del lp.blobs[:]
        for blob in layer.blobs:
            lp.blobs.add().CopyFrom(reference_blob(blob.data, blob.diff if write_diff else None))
    assert path.read_bytes() == reference.SerializeToString()
    loaded = binary.load_caffemodel(path)
    assert [lp.name for lp in loaded.layer] == ["data", "ip1", "relu", "ip2"]
    assert all(lp.phase == pb.TEST for lp in loaded.layer)  # the inherited phase is written
    np.testing.assert_array_equal(binary.read_blob_array(loaded.layer[3].blobs[0]),
                                  net.params["ip2"][0].data)


def test_hdf5_weights_are_refused_clearly(tmp_path):
    with pytest.raises(WeightsError, match=r"w.caffemodel.h5: HDF5 weights are not supported"):
        binary.save_caffemodel(small_net(), tmp_path / "w.caffemodel.h5")
    assert not list(tmp_path.iterdir())
    with pytest.raises(WeightsError, match="is a directory"):
        binary.load_caffemodel(tmp_path)


def test_copy_trained_layers_by_name(tmp_path):
    source, target = small_net(0), small_net(1)
    path = tmp_path / "w.caffemodel"
    source.save(path)
    param = binary.load_caffemodel(path)
    param.layer.add(name="not_in_the_net", type="InnerProduct").blobs.add()  # ignored
    binary.copy_trained_layers(target, param, source=str(path))
    for name in ("ip1", "ip2"):
        for mine, theirs in zip(target.params[name], source.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)


def test_copy_trained_layers_accepts_the_legacy_4d_header():
    net = small_net()
    param = pb.NetParameter()
    layer = param.layer.add(name="ip2")
    weight = np.arange(8, dtype=np.float32).reshape(2, 4)
    layer.blobs.add(num=1, channels=1, height=2, width=4, data=weight.ravel().tolist())
    layer.blobs.add(num=1, channels=1, height=1, width=2, data=[5, 6])
    binary.copy_trained_layers(net, param)
    np.testing.assert_array_equal(net.params["ip2"][0].data, weight)
    np.testing.assert_array_equal(net.params["ip2"][1].data, [5, 6])


def test_copy_trained_layers_mismatches():
    net = small_net()
    before = [b.data.copy() for b in net.params["ip1"]]
    param = pb.NetParameter()
    layer = param.layer.add(name="ip1")
    layer.blobs.add().CopyFrom(reference_blob(np.ones((4, 3))))
    layer.blobs.add().CopyFrom(reference_blob(np.ones((5,))))
    with pytest.raises(WeightsError, match=r"w.caffemodel: cannot copy param 1 of layer 'ip1': "
                                           r"shape mismatch, file has \[5\], net has \[4\]"):
        binary.copy_trained_layers(net, param, source="w.caffemodel")
    # nothing was copied: the checks run first
    for blob, old in zip(net.params["ip1"], before):
        np.testing.assert_array_equal(blob.data, old)
    del layer.blobs[1]
    with pytest.raises(WeightsError, match=r"layer 'ip1' has 1 blob\(s\) in the file but 2 in "
                                           r"the net"):
        binary.copy_trained_layers(net, param, source="w.caffemodel")


def test_load_caffemodel_v1_layers(tmp_path):
    v1 = pb.NetParameter(name="old")
    layer = v1.layers.add(name="ip", type=pb.V1LayerParameter.INNER_PRODUCT, bottom=["data"],
                          top=["ip"], blobs_lr=[1, 2])
    layer.blobs.add().CopyFrom(reference_blob(np.ones((4, 3))))
    layer.blobs.add().CopyFrom(reference_blob(np.zeros(4)))
    path = tmp_path / "old.caffemodel"
    path.write_bytes(v1.SerializeToString())
    param = binary.load_caffemodel(path)
    assert not len(param.layers)
    assert [(lp.name, lp.type) for lp in param.layer] == [("ip", "InnerProduct")]
    assert [tuple(b.shape.dim) for b in param.layer[0].blobs] == [(4, 3), (4,)]


def test_load_caffemodel_errors(tmp_path):
    path = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    truncated = tmp_path / "lenet.caffemodel"
    truncated.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match=f"{truncated}: not a valid .caffemodel "
                                           r"\(truncated\?"):
        binary.load_caffemodel(truncated)
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.caffemodel: not a valid .caffemodel: it holds "
                                           "no layers"):
        binary.load_caffemodel(empty)
    text = tmp_path / "net.caffemodel"
    text.write_text(SMALL)
    with pytest.raises(WeightsError, match="net.caffemodel: not a valid .caffemodel"):
        binary.load_caffemodel(text)
    hdf5 = tmp_path / "w.caffemodel.h5"
    hdf5.write_bytes(binary.HDF5_MAGIC + b"\0" * 100)
    with pytest.raises(WeightsError, match="HDF5 weights"):
        binary.load_caffemodel(hdf5)
    with pytest.raises(WeightsError, match="missing.caffemodel: no such .caffemodel file"):
        binary.load_caffemodel(tmp_path / "missing.caffemodel")
    with pytest.raises(WeightsError, match=r"not a .caffemodel: it is a .solverstate of "
                                           r"iteration 5000; its weights are in"):
        binary.load_caffemodel(LENET_BVLC / "lenet_iter_5000.solverstate")


def test_load_bvlc_caffemodel():
    param = binary.load_caffemodel(need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel"))
    shapes = {lp.name: [binary.read_blob_array(b).shape for b in lp.blobs] for lp in param.layer}
    assert shapes == {"mnist": [], "conv1": [(20, 1, 5, 5), (20,)], "pool1": [],
                      "conv2": [(50, 20, 5, 5), (50,)], "pool2": [],
                      "ip1": [(500, 800), (500,)], "relu1": [], "ip2": [(10, 500), (10,)],
                      "loss": []}
    assert param.layer[0].include[0].phase == pb.TRAIN
    weights = binary.read_blob_array(param.layer[5].blobs[0])
    assert np.isfinite(weights).all() and 0.001 < np.abs(weights).mean() < 1
