"""OpenCV's cv::resize(INTER_LINEAR) on 8-bit images, bit for bit, in NumPy.

Caffe resizes with OpenCV (WindowData's warp, ImageData's new_height/new_width,
convert_imageset's --resize_*), on 8-bit images, so the values a net sees come from OpenCV's
fixed-point arithmetic. This reproduces it: sample positions (dst + 0.5)·(src/dst) − 0.5 in
float32; 11-bit weights rounded to nearest; columns clamped as positions (a column left of
the first or right of the last takes that pixel whole), rows clamped as indices only; a
horizontal pass, then the vertical pass's rounding ((row >> 4)·weight >> 16 for each of the
two rows, + 2, >> 2). tests/layers/test_window_data.py checks it against OpenCV 4.
"""
import numpy as np


def _resize_axis(src, dst, clamp):
    """Source indices and 11-bit fixed-point weights of OpenCV's INTER_LINEAR on one axis."""
    position = ((np.arange(dst) + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    frac = position - first.astype(np.float32)
    if clamp:  # columns: OpenCV clamps the position itself
        outside = (first < 0) | (first >= src - 1)
        frac[outside] = 0
        first = np.clip(first, 0, src - 1)
    second = np.clip(first + 1, 0, src - 1)
    first = np.clip(first, 0, src - 1)  # rows: only the indices are clamped
    one, unit = np.float32(1), np.float32(2048)
    return first, second, np.rint((one - frac) * unit).astype(np.int32), \
        np.rint(frac * unit).astype(np.int32)


def resize_linear(image, height, width):
    """cv::resize(INTER_LINEAR) of an 8-bit (H, W, C) image, bit for bit: OpenCV's 11-bit
    fixed-point weights, a horizontal pass over the rows used, then its vertical pass's
    rounding ((row >> 4) · weight >> 16 per row, + 2 >> 2). int32 holds every step."""
    x0, x1, ax0, ax1 = _resize_axis(image.shape[1], width, clamp=True)
    y0, y1, by0, by1 = _resize_axis(image.shape[0], height, clamp=False)
    used = np.unique(np.concatenate([y0, y1]))
    rows = image[used].astype(np.int32)
    horizontal = rows[:, x0] * ax0[None, :, None] + rows[:, x1] * ax1[None, :, None]
    horizontal >>= 4
    top, bottom = horizontal[np.searchsorted(used, y0)], horizontal[np.searchsorted(used, y1)]
    top *= by0[:, None, None]
    bottom *= by1[:, None, None]
    top >>= 16
    bottom >>= 16
    top += bottom
    top += 2
    top >>= 2
    return np.clip(top, 0, 255).astype(np.uint8)
