"""convert-imageset, compute-image-mean and `data mnist|cifar10` through the CLI, their
databases read back with lmdb/plyvel and checked against OpenCV and NumPy."""
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from dbfixtures import read_db

from caffelite.cli import main
from caffelite.proto import caffelite_pb2 as pb

cv2 = pytest.importorskip("cv2")
Image = pytest.importorskip("PIL.Image")
pytest.importorskip("lmdb")
pytest.importorskip("plyvel")


def run(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def run_error(*args):
    output = run(*args, code=2)
    errors = [line for line in output.splitlines() if line.startswith("caffelite: error:")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.fixture
def pngs(tmp_path, rng):
    """Five colour PNGs 6×7 (one in a folder) and a list file with labels."""
    root = tmp_path / "images"
    (root / "cats").mkdir(parents=True)
    names = ["a.png", "cats/b.png", "c.png", "d.png", "e.png"]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(root / name)
    (tmp_path / "list.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    return str(root) + "/", tmp_path / "list.txt", names


def datums(path, backend="lmdb"):
    return [(k.decode(), pb.Datum.FromString(v)) for k, v in read_db(path, backend)]


def pixels(datum):
    if datum.encoded:
        image = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_UNCHANGED)
        return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height,
                                                       datum.width)


def cv2_chw(path, flag=cv2.IMREAD_COLOR):
    image = cv2.imread(path, flag)
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_convert_imageset_raw_keys_and_pixels(pngs, tmp_path, backend):
    root, listfile, names = pngs
    output = run("convert-imageset", root, listfile, tmp_path / "db", "--backend", backend)
    assert f"wrote {tmp_path / 'db'}: 5 images, {backend}" in output
    records = datums(tmp_path / "db", backend)
    assert [k for k, _ in records] == [f"{i:08d}_{n}" for i, n in enumerate(names)]
    for i, (_, datum) in enumerate(records):
        assert datum.label == i and not datum.encoded
        np.testing.assert_array_equal(pixels(datum), cv2_chw(root + names[i]))  # BGR
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_convert_imageset_gray_resize_and_check_size(pngs, tmp_path):
    root, listfile, names = pngs
    run("convert-imageset", root, listfile, tmp_path / "g", "--gray", "--resize-height", "4",
        "--resize-width", "9", "--check-size")
    for i, (_, datum) in enumerate(datums(tmp_path / "g")):
        expected = cv2.resize(cv2.imread(root + names[i], cv2.IMREAD_GRAYSCALE), (9, 4),
                              interpolation=cv2.INTER_LINEAR)[None]
        assert (datum.channels, datum.height, datum.width) == (1, 4, 9)
        np.testing.assert_array_equal(pixels(datum), expected)


def test_convert_imageset_encoded_keeps_or_reencodes(pngs, tmp_path):
    root, listfile, names = pngs
    run("convert-imageset", root, listfile, tmp_path / "png", "--encoded")
    for i, (_, datum) in enumerate(datums(tmp_path / "png")):
        assert datum.encoded and datum.channels == 0
        assert datum.data == open(root + names[i], "rb").read()  # the file itself
    run("convert-imageset", root, listfile, tmp_path / "jpg", "--encode-type", "jpg")
    for i, (_, datum) in enumerate(datums(tmp_path / "jpg")):
        assert datum.data[:2] == b"\xff\xd8"  # a JPEG now
        # lossy on noise, but the same picture: each channel's mean survives
        means = pixels(datum).reshape(3, -1).mean(1) - cv2_chw(root + names[i]).reshape(3, -1)\
            .mean(1)
        assert np.abs(means).max() < 8


def test_convert_imageset_shuffle_is_seeded(pngs, tmp_path):
    root, listfile, names = pngs
    orders = []
    for name in ("s1", "s2"):
        run("convert-imageset", root, listfile, tmp_path / name, "--shuffle", "--seed", "4")
        orders.append([k for k, _ in datums(tmp_path / name)])
    assert orders[0] == orders[1]
    assert sorted(k[9:] for k in orders[0]) == sorted(names)
    assert [k[:8] for k in orders[0]] == [f"{i:08d}" for i in range(5)]


def test_convert_imageset_skips_unreadable_images_naming_the_line(pngs, tmp_path):
    root, listfile, names = pngs
    with open(listfile, "a") as f:
        f.write("missing.png 9\n")
    result = CliRunner().invoke(main, ["convert-imageset", root, str(listfile),
                                       str(tmp_path / "db")])
    assert result.exit_code == 0
    assert f"skipped: {listfile} line 6: {root}missing.png: no such image file" in result.output
    assert len(datums(tmp_path / "db")) == 5


def test_convert_imageset_errors_leave_no_database(pngs, tmp_path, rng):
    root, listfile, names = pngs
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root + "big.png")
    with open(listfile, "a") as f:
        f.write("big.png 1\n")
    message = run_error("convert-imageset", root, listfile, tmp_path / "db", "--check-size")
    assert "line 6: the image is 3×8×8, the first" in message
    assert not (tmp_path / "db").exists()
    assert "no image of" in run_error("convert-imageset", "/nonexistent/", listfile,
                                      tmp_path / "db")
    run("convert-imageset", root, listfile, tmp_path / "db")
    assert "already exists" in run_error("convert-imageset", root, listfile, tmp_path / "db")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".db")]


def test_an_interrupted_conversion_leaves_nothing(pngs, tmp_path, monkeypatch):
    from caffelite.data import db

    root, listfile, _ = pngs
    calls = []

    def interrupted(self, key, value):
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(db.DBWriter, "put", interrupted)
    result = CliRunner().invoke(main, ["convert-imageset", root, str(listfile),
                                       str(tmp_path / "db")])
    assert result.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "list.txt"]


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_compute_image_mean(pngs, tmp_path, backend):
    from caffelite.formats.binary import read_binaryproto

    root, listfile, names = pngs
    run("convert-imageset", root, listfile, tmp_path / "db", "--backend", backend)
    output = run("compute-image-mean", tmp_path / "db", tmp_path / "mean.binaryproto")
    expected = np.mean([cv2_chw(root + n) for n in names], axis=0, dtype=np.float64)
    proto = pb.BlobProto.FromString((tmp_path / "mean.binaryproto").read_bytes())
    assert (proto.num, proto.channels, proto.height, proto.width) == (1, 3, 6, 7)
    assert not proto.HasField("shape")  # the legacy header, as Caffe writes it
    mean = read_binaryproto(tmp_path / "mean.binaryproto")
    np.testing.assert_allclose(mean[0], expected, rtol=1e-6)
    for c in range(3):
        assert f"mean_value channel [{c}]: {expected[c].mean():g}" in output


def test_compute_image_mean_errors(tmp_path, rng):
    from dbfixtures import raw_datum, write_db

    (tmp_path / "plain").mkdir()
    assert "is not an LMDB or LevelDB database" in run_error("compute-image-mean",
                                                             tmp_path / "plain")
    values = [(b"a", raw_datum(rng.integers(0, 9, (1, 4, 4)), 0).SerializeToString()),
              (b"b", raw_datum(rng.integers(0, 9, (1, 5, 4)), 0).SerializeToString())]
    write_db(tmp_path / "mixed", "lmdb", values)
    assert "record b is 1×5×4, the first" in run_error("compute-image-mean",
                                                       tmp_path / "mixed", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_data_mnist_into_databases(tmp_path, rng, backend):
    images = rng.integers(0, 256, (12, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, 12, dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    output = run("data", "mnist", "--idx-dir", tmp_path, "--out", tmp_path / "mnist",
                 "--backend", backend)
    path = tmp_path / f"mnist_test_{backend}"
    assert f'source: "{path}" backend: {backend.upper()}' in output
    records = datums(path, backend)
    assert [k for k, _ in records] == [f"{i:08d}" for i in range(12)]
    for (_, datum), image, label in zip(records, images, labels):
        assert (datum.channels, datum.height, datum.width, datum.label) == (1, 5, 4, label)
        np.testing.assert_array_equal(pixels(datum)[0], image)


def write_cifar(directory, rng, per_file=3):
    """The CIFAR-10 binary version: per record a label byte, then 1024 R, G, B bytes."""
    directory.mkdir()
    stored = {}
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, per_file, dtype=np.uint8)
        planes = rng.integers(0, 256, (per_file, 3, 32, 32), dtype=np.uint8)
        records = np.concatenate([labels[:, None], planes.reshape(per_file, -1)], axis=1)
        (directory / name).write_bytes(records.tobytes())
        stored[name] = (planes, labels)
    return stored


def test_data_cifar10_into_lmdb(tmp_path, rng):
    stored = write_cifar(tmp_path / "cifar-10-batches-bin", rng)
    run("data", "cifar10", "--input-dir", tmp_path, "--out-dir", tmp_path / "out")
    train = datums(tmp_path / "out" / "cifar10_train_lmdb")
    assert [k for k, _ in train] == [f"{i:05d}" for i in range(15)]
    planes = np.concatenate([stored[f"data_batch_{k}.bin"][0] for k in range(1, 6)])
    labels = np.concatenate([stored[f"data_batch_{k}.bin"][1] for k in range(1, 6)])
    for (_, datum), image, label in zip(train, planes, labels):
        assert datum.label == label
        np.testing.assert_array_equal(pixels(datum), image)  # channel 0 is R, as stored
    test = datums(tmp_path / "out" / "cifar10_test_lmdb")
    assert len(test) == 3


def test_data_cifar10_bad_files(tmp_path, rng):
    write_cifar(tmp_path / "c", rng)
    (tmp_path / "c" / "data_batch_3.bin").write_bytes(b"\x00" * 100)
    message = run_error("data", "cifar10", "--input-dir", tmp_path / "c", "--out-dir",
                        tmp_path / "out")
    assert "data_batch_3.bin: 100 bytes is not a whole number of CIFAR-10 records" in message
    (tmp_path / "c" / "test_batch.bin").unlink()
    assert "missing test_batch.bin" in run_error("data", "cifar10", "--input-dir",
                                                 tmp_path / "c", "--out-dir", tmp_path / "o")
    assert "holds no CIFAR-10 binary files" in run_error(
        "data", "cifar10", "--input-dir", tmp_path, "--out-dir", tmp_path / "o")


def test_time_reports_the_data_wait(pngs, tmp_path):
    import json

    root, listfile, _ = pngs
    run("convert-imageset", root, listfile, tmp_path / "db")
    (tmp_path / "net.prototxt").write_text(f"""
      layer {{ name: "data" type: "Data" top: "data" top: "label"
               data_param {{ source: "{tmp_path / 'db'}" backend: LMDB batch_size: 2 }} }}
      layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
               inner_product_param {{ num_output: 5 weight_filler {{ type: "xavier" }} }} }}
      layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" }}""")
    result = json.loads(run("time", "--model", tmp_path / "net.prototxt", "--iterations", "4",
                            "--json"))
    data_forward = result["layers"][0]["forward_ms"]
    assert 0 <= result["data_wait_ms"] <= data_forward  # waiting is part of Data's forward
    assert 0 <= result["data_wait_fraction"] < 1
    text = run("time", "--model", tmp_path / "net.prototxt", "--iterations", "2")
    assert "Average data wait: " in text and "% of the iteration)." in text


def test_a_net_over_bad_data_exits_2_naming_the_layer(tmp_path, rng):
    from dbfixtures import raw_datum, write_db

    (tmp_path / "plain").mkdir()
    net = """layer {{ name: "data" type: "Data" top: "data" top: "label"
      data_param {{ source: "{}" backend: LMDB batch_size: 2 }} }}"""
    (tmp_path / "net.prototxt").write_text(net.format(tmp_path / "plain"))
    message = run_error("time", "--model", tmp_path / "net.prototxt", "--iterations", "1")
    assert "layer 'data' (Data): data_param.source: " in message
    assert "is not an LMDB or LevelDB database" in message
    values = [(f"{i:08d}".encode(), raw_datum(rng.integers(0, 9, (1, 4, 4)), 0)
               .SerializeToString()) for i in range(2)]
    values.append((b"00000002", b"\x08"))  # a truncated Datum
    write_db(tmp_path / "db", "lmdb", values)
    (tmp_path / "net.prototxt").write_text(net.format(tmp_path / "db"))
    message = run_error("time", "--model", tmp_path / "net.prototxt", "--iterations", "2")
    assert "record 00000002: the value is not a serialised Datum" in message
