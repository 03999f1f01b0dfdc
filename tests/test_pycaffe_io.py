"""caffelite.io with pycaffe's caffe.io names: Transformer against explicit NumPy, images read
back from files written with Pillow/OpenCV, resize against OpenCV, oversample's crop order, and
the BlobProto / Datum conversions both ways."""
import numpy as np
import pytest

import caffelite as caffe
from caffelite.proto import caffe_pb2


@pytest.fixture
def image(rng):
    return rng.random((6, 8, 3)).astype(np.float32)


def classic_transformer(mean):
    t = caffe.io.Transformer({"data": (1, 3, 6, 8)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    return t


def test_transformer_preprocess_matches_numpy(image):
    mean = np.array([104.0, 117.0, 123.0])
    t = classic_transformer(mean)
    before = image.copy()
    out = t.preprocess("data", image)
    expected = (image.transpose(2, 0, 1)[::-1] * 255 - mean[:, None, None]) * 0.5
    assert out.dtype == np.float32 and out.shape == (3, 6, 8)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(image, before)  # the caller's array is left alone


def test_transformer_round_trip_and_batch_of_one(image, rng):
    mean = rng.random((3, 6, 8)) * 100
    t = classic_transformer(mean)
    out = t.preprocess("data", image)
    np.testing.assert_allclose(t.deprocess("data", out), image, atol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out[None]), image, atol=1e-5)


def test_transformer_resizes_input_and_mean(rng):
    t = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    t.set_transpose("data", (2, 0, 1))
    mean = rng.random((3, 8, 8)) + 1
    t.set_mean("data", mean)  # another size: resized to the input's
    assert t.mean["data"].shape == (3, 4, 4)
    np.testing.assert_allclose(t.mean["data"], caffe.io.resize_image(
        mean.transpose(1, 2, 0), (4, 4)).transpose(2, 0, 1), rtol=1e-6)
    image = rng.random((8, 8, 3)).astype(np.float32)
    out = t.preprocess("data", image)
    expected = caffe.io.resize_image(image, (4, 4)).transpose(2, 0, 1) - t.mean["data"]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_transformer_errors():
    t = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    with pytest.raises(ValueError, match="Mean channels incompatible"):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError, match="Transpose order"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ValueError, match="Channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError, match="not one of the net inputs"):
        t.set_raw_scale("image", 255)


def test_resize_image_matches_opencv(image):
    cv2 = pytest.importorskip("cv2")
    for height, width in [(12, 16), (3, 5), (6, 8), (9, 4)]:
        ours = caffe.io.resize_image(image, (height, width))
        theirs = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        assert ours.dtype == np.float32 and ours.shape == (height, width, 3)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    grey = image[:, :, :1]
    assert caffe.io.resize_image(grey, (3, 4)).shape == (3, 4, 1)
    constant = np.full((5, 5, 3), 0.25, np.float32)
    np.testing.assert_array_equal(caffe.io.resize_image(constant, (2, 7)),
                                  np.full((2, 7, 3), 0.25, np.float32))
    nearest = caffe.io.resize_image(np.arange(4.0).reshape(2, 2, 1), (4, 4), interp_order=0)
    np.testing.assert_array_equal(nearest[:, :, 0], [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2)


def test_oversample_crop_order(rng):
    images = rng.random((2, 7, 9, 3)).astype(np.float32)
    crops = caffe.io.oversample(images, (4, 6))
    assert crops.shape == (20, 4, 6, 3) and crops.dtype == np.float32
    # top-left, top-right, bottom-left, bottom-right, centre (7/2 - 2 = 1.5 -> 1, 9/2 - 3 = 1.5
    # -> 1), then the five mirrored left-right
    boxes = [(0, 0), (0, 3), (3, 0), (3, 3), (1, 1)]
    for n, im in enumerate(images):
        for k, (y, x) in enumerate(boxes):
            np.testing.assert_array_equal(crops[10 * n + k], im[y:y + 4, x:x + 6])
            np.testing.assert_array_equal(crops[10 * n + 5 + k], im[y:y + 4, x:x + 6][:, ::-1])


def test_load_image_colour_and_grey(tmp_path, rng):
    Image = pytest.importorskip("PIL.Image")
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    im = caffe.io.load_image(str(tmp_path / "rgb.png"))
    assert im.dtype == np.float32 and im.shape == (5, 7, 3)
    np.testing.assert_allclose(im, pixels / 255.0, atol=1e-7)
    grey = caffe.io.load_image(str(tmp_path / "rgb.png"), color=False)
    assert grey.shape == (5, 7, 1)
    weights = np.array([0.2125, 0.7154, 0.0721])  # scikit-image's rgb2gray, as pycaffe
    np.testing.assert_allclose(grey[:, :, 0], pixels / 255.0 @ weights, atol=1e-6)

    rgba = np.concatenate([pixels, np.full((5, 7, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_allclose(caffe.io.load_image(str(tmp_path / "rgba.png")), im)
    Image.fromarray(pixels[:, :, 0]).save(tmp_path / "l.png")
    tiled = caffe.io.load_image(str(tmp_path / "l.png"))
    assert tiled.shape == (5, 7, 3)
    np.testing.assert_allclose(tiled, np.repeat(pixels[:, :, :1] / 255.0, 3, axis=2), atol=1e-7)
    assert caffe.io.load_image(str(tmp_path / "l.png"), color=False).shape == (5, 7, 1)


def test_load_image_reads_what_opencv_wrote(tmp_path, rng):
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("PIL")
    bgr = rng.integers(0, 256, (9, 4, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), bgr)
    np.testing.assert_allclose(caffe.io.load_image(str(tmp_path / "x.png")),
                               bgr[:, :, ::-1] / 255.0, atol=1e-7)


def test_blobproto_conversions(rng):
    arr = rng.standard_normal((2, 3, 4)).astype(np.float32)
    diff = rng.standard_normal((2, 3, 4)).astype(np.float32)
    blob = caffe.io.array_to_blobproto(arr, diff)
    assert list(blob.shape.dim) == [2, 3, 4]
    np.testing.assert_array_equal(np.array(blob.data, np.float32), arr.ravel())
    back = caffe.io.blobproto_to_array(blob)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, arr)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), diff)

    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=2, width=3, data=range(12))
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(legacy),
                                  np.arange(12.0).reshape(1, 2, 2, 3))
    partial = caffe_pb2.BlobProto(channels=2, data=range(12))  # num, height, width unset: 0
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(partial)

    arrays = [arr, rng.standard_normal(5).astype(np.float32)]
    text = caffe.io.arraylist_to_blobprotovector_str(arrays)
    vector = caffe_pb2.BlobProtoVector.FromString(text)
    assert len(vector.blobs) == 2
    for a, b in zip(arrays, caffe.io.blobprotovector_str_to_arraylist(text)):
        np.testing.assert_array_equal(a, b)


def test_datum_conversions(rng):
    pixels = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    datum = caffe.io.array_to_datum(pixels, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 5, 7)
    assert datum.data == pixels.tobytes() and not len(datum.float_data)
    back = caffe.io.datum_to_array(datum)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, pixels)

    values = rng.standard_normal((1, 2, 3))
    datum = caffe.io.array_to_datum(values)
    assert not datum.data and not datum.HasField("label")
    back = caffe.io.datum_to_array(datum)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, values.astype(np.float32))  # float_data is float32
    with pytest.raises(ValueError, match="Incorrect array shape"):
        caffe.io.array_to_datum(np.zeros((2, 2)))


def test_binary_names_remain():
    for name in ("load_caffemodel", "read_binaryproto", "write_binaryproto", "atomic_write"):
        assert callable(getattr(caffe.io, name))


def test_one_channel_round_trip(rng):
    t = caffe.io.Transformer({"data": (1, 1, 5, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([30.0]))
    grey = rng.random((5, 5, 1)).astype(np.float32)
    out = t.preprocess("data", grey)
    np.testing.assert_allclose(out, grey.transpose(2, 0, 1) * 255 - 30, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", out[None]), grey, atol=1e-6)
    with pytest.raises(ValueError, match="Mean channels"):
        t.set_mean("data", np.zeros((3, 5, 5)))


def test_load_image_sixteen_bit(tmp_path, rng):
    Image = pytest.importorskip("PIL.Image")
    values = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    grey = caffe.io.load_image(str(tmp_path / "deep.png"), color=False)
    np.testing.assert_allclose(grey[:, :, 0], values / 65535.0, rtol=1e-6)
    assert caffe.io.load_image(str(tmp_path / "deep.png")).shape == (4, 6, 3)
