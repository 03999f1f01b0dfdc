"""Naive loop references for pooling: Caffe's pooling_layer.cpp loops, window by window."""
import math

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)
FLT_MIN = float(np.finfo(np.float32).tiny)


def pooled_size(size, k, pad, stride, ceil_mode=True):
    """Caffe's Reshape: float ceil/floor, then drop a last window starting past size + pad."""
    rounding = math.ceil if ceil_mode else math.floor
    out = int(rounding(float(size + 2 * pad - k) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(height, width, kernel, pad, stride, ceil_mode):
    (kh, kw), (ph, pw), (sh, sw) = kernel, pad, stride
    oh = pooled_size(height, kh, ph, sh, ceil_mode)
    ow = pooled_size(width, kw, pw, sw, ceil_mode)
    for y in range(oh):
        for x in range(ow):
            hstart, wstart = y * sh - ph, x * sw - pw
            hend, wend = min(hstart + kh, height + ph), min(wstart + kw, width + pw)
            pool_size = (hend - hstart) * (wend - wstart)
            hstart, wstart = max(hstart, 0), max(wstart, 0)
            hend, wend = min(hend, height), min(wend, width)
            yield y, x, (oh, ow), (hstart, hend, wstart, wend), pool_size


def max_pool_naive(x, kernel, pad=(0, 0), stride=(1, 1), ceil_mode=True):
    """(top, mask): strict >, first maximum wins; mask = h·W + w, −1 (and −FLT_MAX) if empty."""
    num, channels, height, width = x.shape
    top = mask = None
    for y, xx, (oh, ow), (h0, h1, w0, w1), _ in _windows(height, width, kernel, pad, stride,
                                                          ceil_mode):
        if top is None:
            top = np.full((num, channels, oh, ow), -FLT_MAX)
            mask = np.full((num, channels, oh, ow), -1.0)
        for n in range(num):
            for c in range(channels):
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        if x[n, c, h, w] > top[n, c, y, xx]:
                            top[n, c, y, xx] = x[n, c, h, w]
                            mask[n, c, y, xx] = h * width + w
    return top, mask


def ave_pool_naive(x, kernel, pad=(0, 0), stride=(1, 1), ceil_mode=True):
    """Sum over the window clipped to the image / size of the window clipped to size + pad."""
    num, channels, height, width = x.shape
    top = None
    for y, xx, (oh, ow), (h0, h1, w0, w1), pool_size in _windows(height, width, kernel, pad,
                                                                  stride, ceil_mode):
        if top is None:
            top = np.zeros((num, channels, oh, ow))
        total = np.zeros((num, channels))
        for h in range(h0, h1):
            for w in range(w0, w1):
                total += x[:, :, h, w]
        top[:, :, y, xx] = total / pool_size
    return top


def stochastic_test_naive(x, kernel, stride=(1, 1)):
    """Caffe's StoPoolForwardTest: Σa² / (FLT_MIN + Σa) over each (unpadded) window."""
    num, channels, height, width = x.shape
    top = None
    for y, xx, (oh, ow), (h0, h1, w0, w1), _ in _windows(height, width, kernel, (0, 0), stride,
                                                          True):
        if top is None:
            top = np.zeros((num, channels, oh, ow))
        cumsum = np.full((num, channels), FLT_MIN)
        cumvalues = np.zeros((num, channels))
        for h in range(h0, h1):
            for w in range(w0, w1):
                cumsum += x[:, :, h, w]
                cumvalues += x[:, :, h, w] ** 2
        top[:, :, y, xx] = cumvalues / cumsum
    return top


def window_bounds(height, width, kernel, pad=(0, 0), stride=(1, 1), ceil_mode=True):
    """{(y, x): (hstart, hend, wstart, wend)} of every output, clipped to the image."""
    return {(y, xx): b for y, xx, _, b, _ in _windows(height, width, kernel, pad, stride,
                                                       ceil_mode)}
