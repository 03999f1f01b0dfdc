"""caffelite.data.opencv_resize equals OpenCV's cv::resize(INTER_LINEAR) on 8-bit images, bit
for bit: random sizes up and down, and the cases OpenCV treats apart (exact halving, which it
runs as INTER_AREA; the same size; one-pixel sources)."""
import numpy as np
import pytest

from caffelite.data.opencv_resize import resize_linear

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless<5) not installed")


def check(image, height, width):
    expected = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resize_linear(image, height, width),
                                  expected.reshape(height, width, -1))


def test_random_sizes():
    rng = np.random.default_rng(1)
    for _ in range(80):
        h, w, out_h, out_w = (int(v) for v in rng.integers(1, 70, 4))
        check(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), out_h, out_w)


@pytest.mark.parametrize("h, w, out_h, out_w", [
    (40, 40, 20, 20), (40, 60, 20, 30), (41, 40, 20, 20), (30, 30, 30, 30), (1, 1, 5, 5),
    (1, 7, 3, 3), (7, 1, 3, 4), (256, 300, 227, 227), (5, 5, 227, 227), (2, 2, 1, 1)])
def test_special_cases(h, w, out_h, out_w):
    rng = np.random.default_rng(h * 1000 + w)
    check(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), out_h, out_w)
    check(rng.integers(0, 256, (h, w, 1), dtype=np.uint8), out_h, out_w)
