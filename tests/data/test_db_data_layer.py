"""Data over LMDB and LevelDB: every value against Caffe's transform formula computed from the
records read back with lmdb/plyvel; prefetching, sharding, resume and the errors of bad data."""
import gc
import threading

import numpy as np
import pytest
from dbfixtures import (
    caffe_transform,
    forward,
    make_data_layer,
    raw_datum,
    write_db,
    write_images_db,
)

from caffelite.errors import NetError
from caffelite.proto import caffelite_pb2 as pb

pytest.importorskip("lmdb")
pytest.importorskip("plyvel")
BACKEND = {"lmdb": "LMDB", "leveldb": "LEVELDB"}


def data_text(source, backend, batch, transform="", extra=""):
    return (f'name: "data" type: "Data" top: "data" top: "label" '
            f'transform_param {{ {transform} }} '
            f'data_param {{ source: "{source}" backend: {BACKEND[backend]} batch_size: {batch} '
            f'{extra} }}')


@pytest.fixture
def colour(rng):
    images = rng.integers(0, 256, (10, 3, 7, 9), dtype=np.uint8)
    labels = rng.integers(0, 5, 10)
    return images, labels


def write_mean(path, mean):
    proto = pb.BlobProto(num=1, channels=mean.shape[0], height=mean.shape[1],
                         width=mean.shape[2])  # the legacy header compute_image_mean writes
    proto.data.extend(mean.ravel().tolist())
    path.write_bytes(proto.SerializeToString())
    return str(path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
@pytest.mark.parametrize("phase", [pb.TRAIN, pb.TEST])
def test_batches_equal_caffes_formula(tmp_path, colour, rng, backend, phase):
    images, labels = colour
    source = write_images_db(tmp_path / "db", backend, images, labels)
    mean = rng.uniform(0, 255, (3, 7, 9)).astype(np.float32)
    mean_file = write_mean(tmp_path / "mean.binaryproto", mean)
    transform = f'crop_size: 5 mirror: true scale: 0.5 mean_file: "{mean_file}"'
    layer, top = make_data_layer(data_text(source, backend, 4, transform), phase=phase)
    assert top[0].shape == (4, 3, 5, 5) and top[1].shape == (4,)
    flips = []
    for step in range(6):  # 24 records: wraps twice over the 10
        data, label = forward(layer, top)
        h_off, w_off, flip = layer.last_plan
        if phase == pb.TEST:
            assert set(h_off) == {1} and set(w_off) == {2}
        for i in range(4):
            record = (4 * step + i) % 10
            expected = caffe_transform(images[record], h_off[i], w_off[i], flip[i], 5, mean,
                                       0.5)
            np.testing.assert_array_equal(data[i], expected)
            assert label[i] == labels[record]
        flips.extend(flip)
    assert any(flips) and not all(flips)
    layer.close()


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_mean_value_and_float_data(tmp_path, rng, backend):
    floats = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
    values = []
    for i, image in enumerate(floats):
        datum = pb.Datum(channels=2, height=4, width=4, label=i)
        datum.float_data.extend(image.ravel().tolist())
        values.append((f"{i:05d}".encode(), datum.SerializeToString()))
    source = write_db(tmp_path / "db", backend, values)
    layer, top = make_data_layer(data_text(source, backend, 3,
                                           "mean_value: 1 mean_value: -2 scale: 3"))
    data, label = forward(layer, top)
    mean = np.array([1, -2], np.float32).reshape(2, 1, 1)
    np.testing.assert_array_equal(data, (floats - mean) * np.float32(3))
    np.testing.assert_array_equal(label, [0, 1, 2])
    layer.close()


def test_encoded_records_decode_with_force_color_and_gray(tmp_path, rng):
    cv2 = pytest.importorskip("cv2")
    from dbfixtures import png_bytes

    rgb = rng.integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    values = [(f"{i}".encode(), pb.Datum(data=png_bytes(im), label=i, encoded=True)
               .SerializeToString()) for i, im in enumerate(rgb)]
    source = write_db(tmp_path / "db", "lmdb", values)
    for transform, flag in (("", cv2.IMREAD_UNCHANGED), ("force_color: true", cv2.IMREAD_COLOR),
                            ("force_gray: true", cv2.IMREAD_GRAYSCALE)):
        layer, top = make_data_layer(data_text(source, "lmdb", 2, transform))
        data, _ = forward(layer, top)
        for i, (_, value) in enumerate(values):
            decoded = cv2.imdecode(np.frombuffer(pb.Datum.FromString(value).data, np.uint8),
                                   flag)
            expected = decoded[None] if decoded.ndim == 2 else decoded.transpose(2, 0, 1)
            np.testing.assert_array_equal(data[i], expected)  # OpenCV's BGR, exactly
        layer.close()


def test_rand_skip_starts_within_the_range_and_is_seeded(tmp_path, colour):
    images, labels = colour
    source = write_images_db(tmp_path / "db", "lmdb", images, labels)
    starts = set()
    for seed in range(8):
        text = data_text(source, "lmdb", 1, extra="rand_skip: 5")
        firsts = []
        for _ in range(2):
            layer, top = make_data_layer(text, seed=seed)
            firsts.append(int(forward(layer, top)[1][0]))
            layer.close()
        assert firsts[0] == firsts[1]
        starts.add(int(np.flatnonzero(labels == firsts[0])[0]) if firsts[0] in labels else -1)
    assert len(starts) > 1


def test_each_shard_reads_its_run_of_the_global_batch(tmp_path, colour, monkeypatch):
    from caffelite.data import shard

    images, labels = colour
    source = write_images_db(tmp_path / "db", "lmdb", images, labels)
    rows = {}
    for rank in range(2):
        monkeypatch.setattr(shard, "_rank", rank)
        monkeypatch.setattr(shard, "_count", 2)
        layer, top = make_data_layer(data_text(source, "lmdb", 3))
        rows[rank] = [forward(layer, top)[0] for _ in range(2)]
        layer.close()
    # rank 0: records 0-2 then 6-8; rank 1: 3-5 then 9, 0, 1 (global batches of 6, wrapping)
    for rank, starts in ((0, (0, 6)), (1, (3, 9))):
        for batch, start in zip(rows[rank], starts):
            np.testing.assert_array_equal(batch, images[np.arange(start, start + 3) % 10])


def test_state_resumes_the_same_batches(tmp_path, colour):
    images, labels = colour
    source = write_images_db(tmp_path / "db", "leveldb", images, labels)
    text = data_text(source, "leveldb", 3, "crop_size: 4 mirror: true")
    a, top_a = make_data_layer(text)
    for _ in range(5):
        forward(a, top_a)
    state = a.get_state()
    expected = [forward(a, top_a)[0] for _ in range(4)]
    b, top_b = make_data_layer(text, seed=99)  # another seed: the state carries it
    b.set_state(state)
    for batch in expected:
        np.testing.assert_array_equal(forward(b, top_b)[0], batch)
    a.close()
    b.close()


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("caffelite-data-")]


@pytest.mark.timeout(30)
def test_prefetch_threads_end_with_the_layer(tmp_path, colour):
    images, labels = colour
    source = write_images_db(tmp_path / "db", "lmdb", images, labels)
    gc.collect()  # earlier tests' layers end their threads first
    before = set(prefetch_threads())
    layer, top = make_data_layer(data_text(source, "lmdb", 2))
    forward(layer, top)
    started = set(prefetch_threads()) - before
    assert len(started) == 1
    thread = started.pop()
    del layer, top
    gc.collect()
    thread.join(timeout=10)  # the layer's end tells its thread to stop
    assert not thread.is_alive()


@pytest.mark.timeout(60)
def test_lmdb_remap_keeps_the_order(tmp_path, colour, monkeypatch):
    from caffelite.data import db

    monkeypatch.setattr(db, "LMDB_REMAP_BYTES", 500)  # reopen every few records
    images, labels = colour
    source = write_images_db(tmp_path / "db", "lmdb", images, labels)
    layer, top = make_data_layer(data_text(source, "lmdb", 7))
    for step in range(5):
        data, label = forward(layer, top)
        np.testing.assert_array_equal(label, labels[np.arange(7 * step, 7 * step + 7) % 10])
    layer.close()


# -- exact resume through the solver ------------------------------------------------------------
def resume_solver(source, prefix):
    from google.protobuf import text_format

    from caffelite.solvers import Solver

    net = text_format.Parse(f"""
      layer {{ name: "data" type: "Data" top: "data" top: "label"
               transform_param {{ scale: 0.0039 mirror: true crop_size: 6 }}
               data_param {{ source: "{source}" backend: LMDB batch_size: 6 }} }}
      layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
               inner_product_param {{ num_output: 5 weight_filler {{ type: "xavier" }} }} }}
      layer {{ name: "drop" type: "Dropout" bottom: "ip" top: "ip" }}
      layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
      """, pb.NetParameter())
    param = pb.SolverParameter(base_lr=0.1, momentum=0.9, lr_policy="fixed", max_iter=100,
                               random_seed=7, display=0, snapshot_after_train=False,
                               snapshot_prefix=prefix)
    param.net_param.CopyFrom(net)
    return Solver(param)


@pytest.mark.timeout(120)
def test_k_iterations_and_resume_equal_n_straight_on_lmdb(tmp_path, colour):
    images, labels = colour
    source = write_images_db(tmp_path / "db", "lmdb", images, labels)
    straight = resume_solver(source, str(tmp_path / "a" / "s"))
    straight.step(9)
    first = resume_solver(source, str(tmp_path / "b" / "s"))
    first.step(4)
    _, state = first.snapshot()
    first.step(2)  # the prefetch thread runs ahead of the snapshot: it must not matter
    resumed = resume_solver(source, str(tmp_path / "c" / "s"))
    resumed.restore(state)
    resumed.step(5)
    for a, b in zip(straight.net.learnable_params, resumed.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(straight.net.blobs["data"].data, resumed.net.blobs["data"].data)


# -- bad data ---------------------------------------------------------------------------------
def setup_error(text):
    with pytest.raises(NetError) as info:
        make_data_layer(text)
    assert str(info.value).startswith("layer 'data' (Data): ")
    return str(info.value)


def test_not_a_database_and_missing_database(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    assert "is not an LMDB or LevelDB database" in setup_error(
        data_text(tmp_path / "empty_dir", "lmdb", 2))
    assert "no such database" in setup_error(data_text(tmp_path / "nothing", "lmdb", 2))


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_empty_database(tmp_path, backend):
    source = write_db(tmp_path / "db", backend, [])
    if backend == "leveldb":
        assert "the LevelDB database is empty" in setup_error(data_text(source, backend, 2))
    else:
        assert "the LMDB database is empty" in setup_error(data_text(source, backend, 2))


def test_backend_that_does_not_match_the_files(tmp_path, colour):
    source = write_images_db(tmp_path / "db", "leveldb", *colour)
    message = setup_error(data_text(source, "lmdb", 2))
    assert "is a LevelDB database but backend is LMDB; set backend: LEVELDB" in message


def test_record_that_does_not_parse_names_its_key(tmp_path, colour):
    images, labels = colour
    values = [(f"{i:08d}".encode(), raw_datum(images[i], 0).SerializeToString())
              for i in range(3)]
    values.append((b"00000003", b"\xff\xff\xff not a datum"))
    source = write_db(tmp_path / "db", "lmdb", values)
    layer, top = make_data_layer(data_text(source, "lmdb", 2))
    forward(layer, top)
    with pytest.raises(NetError, match=r"\(Data\): .*db: record 00000003: the value is not a "
                                       r"serialised Datum"):
        forward(layer, top)
    layer.close()
    first_bad = write_db(tmp_path / "db2", "lmdb", values[3:])
    assert "record 00000003: the value is not a serialised Datum" in setup_error(
        data_text(first_bad, "lmdb", 2))


def test_records_of_different_shapes(tmp_path, rng):
    values = [(f"{i:08d}".encode(), raw_datum(rng.integers(0, 9, (1, 28, 28)), 0)
               .SerializeToString()) for i in range(123)]
    values.append((b"00000123", raw_datum(rng.integers(0, 9, (3, 32, 32)), 0)
                   .SerializeToString()))
    source = write_db(tmp_path / "db", "lmdb", values)
    layer, top = make_data_layer(data_text(source, "lmdb", 62))
    forward(layer, top)
    with pytest.raises(NetError, match="record 00000123 is 3×32×32, the first was 1×28×28"):
        forward(layer, top)
    layer.close()


def test_mean_file_of_another_shape(tmp_path, colour):
    source = write_images_db(tmp_path / "db", "lmdb", *colour)
    mean = write_mean(tmp_path / "mean.binaryproto", np.zeros((1, 28, 28), np.float32))
    message = setup_error(data_text(source, "lmdb", 2, f'mean_file: "{mean}"'))
    assert "has shape" in message and "the images are 3×7×9" in message


def test_both_force_flags(tmp_path, colour):
    source = write_images_db(tmp_path / "db", "lmdb", *colour)
    message = setup_error(data_text(source, "lmdb", 2, "force_color: true force_gray: true"))
    assert "both force_color and force_gray" in message


@pytest.mark.parametrize("backend, module", [("lmdb", "lmdb"), ("leveldb", "plyvel")])
def test_missing_package_names_the_extra(tmp_path, colour, monkeypatch, backend, module):
    import sys

    source = write_images_db(tmp_path / "db", backend, *colour)
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    message = setup_error(data_text(source, backend, 2))
    assert message.endswith('is not installed: pip install "caffelite[data]"')


def test_pycaffe_io_datum_functions(rng):
    from caffelite import io

    image = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    datum = io.array_to_datum(image, 7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 5, 7)
    assert datum.data == image.tobytes()
    np.testing.assert_array_equal(io.datum_to_array(datum), image)
    floats = rng.normal(size=(2, 3, 1))
    back = io.datum_to_array(io.array_to_datum(floats))
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, floats.astype(np.float32))
    with pytest.raises(ValueError, match="Incorrect array shape"):
        io.array_to_datum(np.zeros((2, 2)))


@pytest.mark.parametrize("flag_name, color", [("IMREAD_COLOR", True),
                                               ("IMREAD_GRAYSCALE", False)])
def test_jpeg_decoding_equals_opencv(rng, flag_name, color):
    cv2 = pytest.importorskip("cv2")
    from caffelite.data.datum import decode_image, encode_image

    y, x = np.mgrid[0:40, 0:56]
    image = np.clip(np.stack([x * 3, y * 4, x + y]) + rng.normal(0, 20, (3, 40, 56)), 0, 255)
    jpeg = encode_image(image.astype(np.uint8), "jpg")
    expected = cv2.imdecode(np.frombuffer(jpeg, np.uint8), getattr(cv2, flag_name))
    expected = expected[None] if expected.ndim == 2 else expected.transpose(2, 0, 1)
    np.testing.assert_array_equal(decode_image(jpeg, "test", color), expected)


@pytest.mark.parametrize("seed", range(6))
def test_streamed_transform_equals_the_in_memory_one(seed):
    """DataTransformer.apply (per image, on stored pixels) gives the values of
    gather(normalize(...)) (the in-memory path) for random shapes, crops, flips and means."""
    from caffelite.data.transformer import DataTransformer

    rng = np.random.default_rng(seed)
    c, h, w = rng.integers(1, 4), rng.integers(3, 9), rng.integers(3, 9)
    raw = rng.integers(0, 256, (5, c, h, w), dtype=np.uint8)
    param = pb.TransformationParameter(scale=float(rng.uniform(0.1, 2)),
                                       mirror=bool(seed % 2),
                                       crop_size=int(rng.integers(0, min(h, w) + 1)))
    if seed % 3 == 1:
        param.mean_value.extend(rng.uniform(0, 255, c).tolist())
    transformer = DataTransformer(param, pb.TRAIN if seed < 3 else pb.TEST, None)
    if seed % 3 == 2:
        transformer.mean = rng.uniform(0, 255, (1, c, h, w)).astype(np.float32)
    plan = transformer.plan(5, h, w, rng)
    np.testing.assert_array_equal(transformer.apply(raw, plan),
                                  transformer.gather(transformer.normalize(raw), plan))
