"""STOCHASTIC pooling (Caffe runs it on the GPU only): a window cell sampled with probability
a / Σa in TRAIN, Σa² / Σa in TEST."""
import numpy as np

from ..runtime import get_array_module
from .im2col import col2im_windows, window_view
from .pool_ave import kernel_sum
from .pool_max import image_index

FLT_MIN = float(np.finfo(np.float32).tiny)  # Caffe's StoPoolForwardTest starts its sum here


def stochastic_pool_train(x, kernel, stride, out_size, rng, ws=None):
    """(top, mask): one input per window, drawn with probability a / Σa (inputs >= 0).

    Caffe's draw: u ~ U(0, 1], pick the first cell whose running sum reaches u·Σa.
    """
    xp = get_array_module(x)
    view = window_view(x, kernel, 0, stride, 1, out_size, 0.0, ws)
    windows = view.reshape(view.shape[:4] + (-1,))  # (N, C, oh, ow, kh·kw), a copy
    cumsum = windows.cumsum(axis=-1)
    u = xp.asarray(1 - rng.random(cumsum.shape[:4]), dtype=x.dtype)
    offset = (cumsum >= (u * cumsum[..., -1])[..., None]).argmax(axis=-1).astype(xp.int32)
    top = xp.take_along_axis(windows, offset[..., None], axis=-1)[..., 0]
    return top, image_index(offset, x.shape, kernel, (0, 0), stride)


def _stochastic_test_terms(x, kernel, stride, out_size, ws):
    """(Σa + FLT_MIN, Σa²) per window."""
    total = kernel_sum(window_view(x, kernel, 0, stride, 1, out_size, 0.0, ws)) + FLT_MIN
    squares = kernel_sum(window_view(x * x, kernel, 0, stride, 1, out_size, 0.0, ws))
    return total, squares


def stochastic_pool_test(x, kernel, stride, out_size, ws=None):
    """STOCHASTIC at test time: the probability-weighted average Σa² / Σa."""
    total, squares = _stochastic_test_terms(x, kernel, stride, out_size, ws)
    return squares / total


def stochastic_pool_test_backward(dtop, x, kernel, stride, ws=None):
    """∂x of Σa²/Σa: (2a − top)/Σa per window cell (Caffe has no test-time gradient)."""
    total, squares = _stochastic_test_terms(x, kernel, stride, dtop.shape[2:], ws)
    view = window_view(x, kernel, 0, stride, 1, dtop.shape[2:], 0.0, ws)
    scale = (dtop / total)[..., None, None]
    windows = scale * (2 * view - (squares / total)[..., None, None])  # (N, C, oh, ow, kh, kw)
    return col2im_windows(windows.transpose(0, 1, 4, 5, 2, 3), x.shape, 0, stride, ws=ws)
