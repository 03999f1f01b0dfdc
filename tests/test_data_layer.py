"""Data layer and DataTransformer against NumPy formulas on the raw arrays."""
import numpy as np
import pytest
from conftest import MNIST10K, need_shared
from google.protobuf import text_format
from gradient_check import make_layer

from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.layer import TEST, TRAIN
from caffelite.proto import caffelite_pb2 as pb

SCALE = 0.00390625


def data_layer(source, batch_size, transform="", phase=TRAIN, dtype=np.float32, tops=2, seed=1701,
               extra=""):
    top_names = "".join(f' top: "{n}"' for n in ("data", "label")[:tops])
    text = (f'name: "mnist" type: "Data" {top_names} transform_param {{ {transform} }} '
            f'data_param {{ source: "{source}" batch_size: {batch_size} {extra} }}')
    layer = make_layer(text, phase=phase, dtype=dtype, seed=seed)
    top = [Blob(dtype=dtype) for _ in range(tops)]
    layer.setup([], top)
    return layer, top


def forward(layer, top):
    layer.reshape([], top)
    layer.forward([], top)
    return [t.data.copy() for t in top]


def write_npz(path, images, labels=None):
    arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
    np.savez(path, **arrays)
    return str(path)


def write_mean(path, mean, legacy=False):
    """A mean.binaryproto written straight from the schema (as compute_image_mean does)."""
    proto = pb.BlobProto()
    if legacy:
        proto.num, proto.channels, proto.height, proto.width = (1,) + mean.shape
    else:
        proto.shape.dim.extend((1,) + mean.shape)
    proto.data.extend(mean.astype(np.float32).ravel().tolist())
    path.write_bytes(proto.SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def mnist():
    npz = np.load(need_shared(MNIST10K))
    return npz["images"], npz["labels"]


@pytest.fixture
def colour(tmp_path, rng):
    """Ten 3-channel 7×9 images with distinct values, so every crop/flip is identifiable."""
    images = rng.permutation(10 * 3 * 7 * 9).reshape(10, 3, 7, 9).astype(np.float32)
    return write_npz(tmp_path / "colour.npz", images, np.arange(10)), images


def test_bundled_train_batches_are_the_first_8000_digits_times_scale(mnist):
    images, labels = mnist
    layer, top = data_layer("caffelite://mnist10k/train", 64, f"scale: {SCALE}")
    assert top[0].shape == (64, 1, 28, 28) and top[1].shape == (64,)
    for start in (0, 64, 128):
        data, label = forward(layer, top)
        expected = images[start:start + 64, None].astype(np.float32) * np.float32(SCALE)
        np.testing.assert_array_equal(data, expected)
        np.testing.assert_array_equal(label, labels[start:start + 64])
    assert data.dtype == np.float32 and 0 <= data.min() and data.max() < 1


def test_bundled_test_source_is_the_last_2000_and_wraps(mnist):
    images, labels = mnist
    layer, top = data_layer("caffelite://mnist10k/test", 100, phase=TEST)
    batches = [forward(layer, top) for _ in range(21)]  # 20 batches cover it; the 21st wraps
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches[:20]]), labels[8000:])
    np.testing.assert_array_equal(batches[20][0][:, 0], images[8000:8100])
    assert layer.get_state() == {"cursor": 100}


def test_wrap_around_and_batches_larger_than_the_set(tmp_path):
    images = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((5, 2, 3), np.uint8)
    source = write_npz(tmp_path / "five.npz", images, np.arange(5) + 10)
    layer, top = data_layer(source, 3)
    rows = [forward(layer, top)[1] - 10 for _ in range(3)]
    np.testing.assert_array_equal(rows, [[0, 1, 2], [3, 4, 0], [1, 2, 3]])
    layer, top = data_layer(source, 12)
    data, label = forward(layer, top)
    np.testing.assert_array_equal(label - 10, np.arange(12) % 5)
    np.testing.assert_array_equal(data[:, 0, 1, 2], np.arange(12) % 5)


def test_data_only_top_float64_and_uint8_npz_without_labels(tmp_path, rng):
    images = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    source = write_npz(tmp_path / "nolabels.npz", images)
    layer, top = data_layer(source, 4, "scale: 0.5", dtype=np.float64, tops=1)
    (data,) = forward(layer, top)
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data[:, 0], images[:4] * 0.5)


def test_rand_skip_starts_inside_the_window(tmp_path):
    images = np.arange(20, dtype=np.float32)[:, None, None, None] * np.ones((20, 1, 2, 2))
    source = write_npz(tmp_path / "ramp.npz", images, np.arange(20))
    starts = set()
    for seed in range(30):
        layer, top = data_layer(source, 2, seed=seed, extra="rand_skip: 7")
        label = forward(layer, top)[1]
        assert label[1] == (label[0] + 1) % 20
        starts.add(int(label[0]))
    assert starts <= set(range(7)) and len(starts) > 3


def test_mean_value_per_channel_and_broadcast(colour):
    source, images = colour
    layer, top = data_layer(source, 4, "scale: 0.25 mean_value: 1 mean_value: 2 mean_value: 3")
    expected = (images[:4] - np.array([1, 2, 3], np.float32)[:, None, None]) * np.float32(0.25)
    np.testing.assert_array_equal(forward(layer, top)[0], expected)
    layer, top = data_layer(source, 4, "mean_value: 5")
    np.testing.assert_array_equal(forward(layer, top)[0], images[:4] - 5)


def matches(out, image):
    """Every (h_off, w_off, flipped) whose crop of `image` (C, H, W) equals `out` (C, h, w)."""
    ch, cw = out.shape[1:]
    found = []
    for h in range(image.shape[1] - ch + 1):
        for w in range(image.shape[2] - cw + 1):
            crop = image[:, h:h + ch, w:w + cw]
            found += [(h, w, flip) for flip, cand in ((False, crop), (True, crop[:, :, ::-1]))
                      if np.array_equal(cand, out)]
    return found


def test_crop_is_random_in_train_and_centred_in_test(colour):
    source, images = colour
    layer, top = data_layer(source, 40, "crop_size: 5", phase=TRAIN)
    data = forward(layer, top)[0]
    assert data.shape == (40, 3, 5, 5)
    offsets = []
    for i in range(40):
        (found,) = matches(data[i], images[i % 10])  # exactly one crop, never flipped
        assert found[2] is False
        offsets.append(found[:2])
    assert len(set(offsets)) > 5  # h_off ∈ [0, 2], w_off ∈ [0, 4]
    layer, top = data_layer(source, 10, "crop_size: 5", phase=TEST)
    # Caffe's centre: ((7 − 5) / 2, (9 − 5) / 2) = (1, 2), integer division.
    np.testing.assert_array_equal(forward(layer, top)[0], images[:, :, 1:6, 2:7])


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_mirror_flips_at_random_in_any_phase(colour, phase):
    source, images = colour
    layer, top = data_layer(source, 60, "mirror: true", phase=phase)
    data = forward(layer, top)[0]
    flips = []
    for i in range(60):
        (found,) = matches(data[i], images[i % 10])
        flips.append(found[2])
    assert 10 < sum(flips) < 50


def test_mean_file_is_cropped_with_the_image_then_flipped(colour, tmp_path, rng):
    source, images = colour
    mean = rng.uniform(0, 50, (3, 7, 9)).astype(np.float32)
    for legacy in (False, True):
        mean_file = write_mean(tmp_path / f"mean{legacy}.binaryproto", mean, legacy)
        layer, top = data_layer(source, 10, f'scale: 0.5 crop_size: 5 mirror: true '
                                f'mean_file: "{mean_file}"', phase=TEST)
        data = forward(layer, top)[0]
        centred = (images - mean) * np.float32(0.5)
        for i in range(10):
            crop = centred[i, :, 1:6, 2:7]
            assert np.array_equal(data[i], crop) or np.array_equal(data[i], crop[:, :, ::-1])


def test_state_round_trip_resumes_the_same_batches(colour):
    source, _ = colour
    a, top_a = data_layer(source, 4, "mirror: true crop_size: 6")
    for _ in range(3):
        forward(a, top_a)
    state = a.get_state()
    assert state == {"cursor": 2}
    b, top_b = data_layer(source, 4, "mirror: true crop_size: 6", seed=99)
    b.set_state(state)
    b.rng.bit_generator.state = a.rng.bit_generator.state  # the net carries the RNG
    for _ in range(4):
        for x, y in zip(forward(a, top_a), forward(b, top_b)):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("transform, extra, message", [
    ("", 'backend: LMDB', "is not an LMDB or LevelDB database"),
    ("crop_size: 10", "", "crop_size 10 is larger than the images"),
    ('mean_value: 1 mean_file: "m.binaryproto"', "", "both mean_file and mean_value"),
    ("mean_value: 1 mean_value: 2", "", "2 mean_value entries for 3 channel"),
    ("", "scale: 0.5", r"data_param.scale is deprecated.*transform_param"),
])
def test_configuration_errors_name_the_layer(colour, tmp_path, transform, extra, message):
    source, _ = colour
    if "LMDB" in extra:
        (tmp_path / "mnist_train_lmdb").mkdir()
        source = str(tmp_path / "mnist_train_lmdb")
    with pytest.raises(NetError, match=message) as info:
        data_layer(source, 4, transform, extra=extra)
    assert str(info.value).startswith("layer 'mnist' (Data): ")


def test_source_and_batch_errors(tmp_path):
    with pytest.raises(NetError, match=r"\(Data\).*no such database; use an LMDB.*caffelite://"):
        data_layer("examples/mnist/mnist_train_lmdb", 64)
    with pytest.raises(NetError, match="batch_size must be a positive"):
        data_layer("caffelite://mnist10k/test", 0)
    source = write_npz(tmp_path / "x.npz", np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(NetError, match="no 'labels' array for the label top 'label'"):
        data_layer(source, 2)
    mean_file = write_mean(tmp_path / "m.binaryproto", np.zeros((1, 5, 5), np.float32))
    with pytest.raises(NetError, match="mean_file .* has shape"):
        data_layer(source, 2, f'mean_file: "{mean_file}"', tops=1)
    with pytest.raises(NetError, match=r"\(Data\): transform_param.mean_file: .*nomean"):
        data_layer(source, 2, f'mean_file: "{tmp_path / "nomean.binaryproto"}"', tops=1)


def test_inside_a_net_with_exact_resume(mnist):
    from caffelite.net import Net

    text = f"""
    name: "d"
    layer {{ name: "mnist" type: "Data" top: "data" top: "label"
            transform_param {{ scale: {SCALE} mirror: true }}
            data_param {{ source: "caffelite://mnist10k/test" batch_size: 50 }} }}
    """
    param = text_format.Parse(text, pb.NetParameter())
    net = Net(param, phase=TEST)
    net.forward()
    images, labels = mnist
    np.testing.assert_array_equal(net.blobs["label"].data, labels[8000:8050])
    states = net.layer_states()
    rng_state = net.rng.bit_generator.state
    expected = net.forward()["data"].copy()
    other = Net(param, phase=TEST)
    other.load_layer_states(states)
    other.rng.bit_generator.state = rng_state
    np.testing.assert_array_equal(other.forward()["data"], expected)
    flipped = np.all(expected[:, 0] == images[8050:8100, :, ::-1] * np.float32(SCALE), (1, 2))
    plain = np.all(expected[:, 0] == images[8050:8100] * np.float32(SCALE), (1, 2))
    assert np.all(flipped | plain) and flipped.any() and plain.any()
