"""A LeNet trained by BVLC Caffe: caffelite and OpenCV's Caffe reader agree on 2000 MNIST digits."""
import numpy as np
import pytest
from conftest import LENET_BVLC, MNIST10K, need_shared

from caffelite import TEST
from caffelite.net import Net

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless<5) not installed")


def test_lenet_matches_opencv_on_the_last_2000_digits():
    model = need_shared(LENET_BVLC / "lenet.prototxt")
    weights = need_shared(LENET_BVLC / "lenet_iter_5000.caffemodel")
    data = np.load(need_shared(MNIST10K))
    images = data["images"][-2000:].astype(np.float32)[:, None] * 0.00390625  # (2000,1,28,28)
    labels = data["labels"][-2000:]

    net = Net(model, phase=TEST, weights=weights)
    probs = net.forward(data=images)["prob"].reshape(2000, 10)

    reader = cv2.dnn.readNetFromCaffe(str(model), str(weights))
    reader.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    reader.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    reader.setInput(images)
    expected = reader.forward().reshape(2000, 10)

    np.testing.assert_array_equal(probs.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)
    assert (probs.argmax(1) == labels).mean() >= 0.99
