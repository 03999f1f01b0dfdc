"""im2col/col2im against Caffe's element loop, PyTorch's unfold/fold, and the adjoint identity."""
import itertools

import numpy as np
import pytest

from caffelite.kernels.im2col import (
    Workspace,
    col2im,
    conv_out_size,
    deconv_out_size,
    im2col,
    pool_out_size,
    window_view,
)
from tests.reference.conv_naive import im2col_naive
from tests.reference.pool_naive import pooled_size

CASES = [  # C, H, W, kernel, pad, stride, dilation
    (2, 5, 7, (3, 2), (1, 0), (2, 1), (1, 2)),
    (3, 6, 6, (3, 3), (2, 2), (3, 3), (2, 1)),
    (1, 4, 4, (1, 1), (0, 0), (1, 1), (1, 1)),
    (2, 9, 4, (4, 1), (0, 3), (1, 2), (2, 1)),
    (1, 3, 3, (3, 3), (0, 0), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("case", CASES)
def test_im2col_matches_caffe_loop(case, rng):
    channels, height, width, kernel, pad, stride, dilation = case
    x = rng.normal(size=(3, channels, height, width))
    cols = im2col(x, kernel, pad, stride, dilation)
    for n in range(3):
        ref = im2col_naive(x[n], kernel, pad, stride, dilation)
        np.testing.assert_array_equal(cols[n].reshape(ref.shape), ref)
    batch_last = im2col(x, kernel, pad, stride, dilation, batch_last=True, ws=Workspace())
    np.testing.assert_array_equal(batch_last, cols.transpose(1, 0, 2, 3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES + [(3, 8, 8, (5, 5), (4, 4), (1, 1), (1, 1))])
def test_compiled_im2col_matches_caffe_loop(case, dtype, rng):
    """conv_kernels.im2col_images (with Numba): Caffe's columns per image, then a row of ones;
    the last case pads by kernel − 1, so whole output rows and columns are padding."""
    pytest.importorskip("numba", reason="Numba (the fast extra) is not installed")
    from caffelite.kernels.im2col_compiled import im2col_images
    channels, height, width, kernel, pad, stride, dilation = case
    x = rng.normal(size=(3, channels, height, width)).astype(dtype)
    out = conv_out_size((height, width), kernel, pad, stride, dilation)
    k = channels * kernel[0] * kernel[1]
    cols = np.full((3, k + 1, out[0] * out[1]), np.nan, dtype)
    im2col_images(x, *kernel, *pad, *stride, *dilation, *out, cols)
    for n in range(3):
        ref = im2col_naive(x[n], kernel, pad, stride, dilation).reshape(k, -1)
        np.testing.assert_array_equal(cols[n, :k], ref)
    np.testing.assert_array_equal(cols[:, k], 1)


@pytest.mark.parametrize("case", CASES)
def test_col2im_is_the_adjoint(case, rng):
    """<im2col(x), c> == <x, col2im(c)> for every x, c: col2im sums each entry into its cell."""
    channels, height, width, kernel, pad, stride, dilation = case
    x = rng.normal(size=(2, channels, height, width))
    cols = im2col(x, kernel, pad, stride, dilation)
    c = rng.normal(size=cols.shape)
    back = col2im(c, x.shape, kernel, pad, stride, dilation)
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)
    cb = np.ascontiguousarray(c.transpose(1, 0, 2, 3))
    out = np.full(x.shape, 7.0)  # col2im overwrites `out`
    col2im(cb, x.shape, kernel, pad, stride, dilation, batch_last=True, out=out, ws=Workspace())
    np.testing.assert_allclose(out, back, rtol=1e-12, atol=1e-12)


def test_unfold_and_fold_agree_with_pytorch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    F = torch.nn.functional
    for channels, height, width, kernel, pad, stride, dilation in CASES:
        x = rng.normal(size=(2, channels, height, width))
        cols = im2col(x, kernel, pad, stride, dilation)
        ref = F.unfold(torch.tensor(x), kernel, dilation, pad, stride).numpy()
        np.testing.assert_array_equal(cols.reshape(ref.shape), ref)
        back = col2im(cols, x.shape, kernel, pad, stride, dilation)
        fold = F.fold(torch.tensor(ref), (height, width), kernel, dilation, pad, stride).numpy()
        np.testing.assert_allclose(back, fold, rtol=1e-12, atol=1e-12)


def test_three_d_columns_follow_the_definition(rng):
    """cols[n, (c, i, j, l), z, y, x] = x_pad[n, c, z·s + i·d, y·s + j·d, x·s + l·d]."""
    x = rng.normal(size=(2, 2, 4, 5, 3))
    kernel, pad, stride, dilation = (2, 3, 1), (1, 0, 1), (2, 1, 1), (1, 1, 2)
    cols = im2col(x, kernel, pad, stride, dilation)
    out = conv_out_size(x.shape[2:], kernel, pad, stride, dilation)
    assert cols.shape == (2, 2 * 6) + out
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    for c, i, j, ell in itertools.product(range(2), range(2), range(3), range(1)):
        row = (c * 2 + i) * 3 + j
        for z, y, w in itertools.product(*(range(o) for o in out)):
            np.testing.assert_array_equal(
                cols[:, row, z, y, w], xpad[:, c, z * 2 + i, y + j, w + 2 * ell])
    c = rng.normal(size=cols.shape)
    np.testing.assert_allclose((cols * c).sum(),
                               (x * col2im(c, x.shape, kernel, pad, stride, dilation)).sum())


def test_output_size_rules():
    assert conv_out_size(5, 3, 1, 2) == 3
    assert conv_out_size((7, 6), (3, 2), (0, 1), (2, 1), (2, 1)) == (2, 7)
    assert conv_out_size(2, 5) == 0  # the kernel does not fit: layers raise
    assert deconv_out_size(3, 4, 1, 2) == 6
    assert deconv_out_size((3, 5), 3, 0, 1, 2) == (7, 9)
    # ceil, and the last-window rule only with padding
    assert pool_out_size(7, 3, 1, 2) == 4
    assert pool_out_size(6, 3, 0, 2) == 3  # ceil(3/2)+1: the last window hangs over
    assert pool_out_size(6, 3, 0, 2, ceil_mode=False) == 2
    assert pool_out_size(5, 2, 1, 3) == 2  # ceil((5+2-2)/3)+1 = 3, last start 6 >= 5+1
    assert pool_out_size(6, 1, 0, 3) == 3  # no pad: Caffe keeps a window past the image
    for size, k, p, s in itertools.product(range(1, 9), range(1, 5), range(3), range(1, 4)):
        if p < k and size + 2 * p >= k:
            assert pool_out_size(size, k, p, s) == pooled_size(size, k, p, s), (size, k, p, s)
            assert (pool_out_size(size, k, p, s, False)
                    == pooled_size(size, k, p, s, ceil_mode=False))


def test_output_sizes_take_numpy_values_and_check_axis_counts():
    assert conv_out_size(np.int64(7), np.array(3), 0, 1, 1) == 5
    assert conv_out_size(np.array([7, 8]), [3], 1, (1, 2), 1) == (7, 4)
    assert pool_out_size(np.int32(6), 3, 0, 2) == 3
    with pytest.raises(ValueError, match="2 values for 1 spatial axes"):
        conv_out_size([8], (3, 3), 1, 1, 1)  # the size names the axes


def test_window_view_pads_with_fill_and_reuses_buffers(rng):
    x = rng.normal(size=(1, 1, 3, 3))
    ws = Workspace()
    view = window_view(x, (2, 2), (1, 1), (2, 2), 1, (2, 2), fill=-np.inf, ws=ws)
    assert view.shape == (1, 1, 2, 2, 2, 2)
    assert np.isneginf(view[0, 0, 0, 0, 0, 0]) and view[0, 0, 0, 0, 1, 1] == x[0, 0, 0, 0]
    again = window_view(x + 1, (2, 2), (1, 1), (2, 2), 1, (2, 2), fill=-np.inf, ws=ws)
    assert np.shares_memory(view, again)  # same padded buffer, border kept
    assert np.isneginf(again[0, 0, 0, 0, 0, 0]) and again[0, 0, 1, 1, 0, 0] == x[0, 0, 1, 1] + 1
    with pytest.raises(ValueError, match="larger than the padded input"):
        im2col(x, 5, 0, 1, 1)


def test_workspace_memo_is_rebuilt_when_a_buffer_is_replaced():
    ws = Workspace()
    builds = []

    def build():
        builds.append(ws.scratch("buf", (4,), np.float32))
        return builds[-1]
    first = ws.memo("views", build)
    assert ws.memo("views", build) is first and len(builds) == 1
    ws.scratch("buf", (2,), np.float32)  # a prefix of the kept buffer: the views still hold
    assert ws.memo("views", build) is first
    ws.scratch("other", (8,), np.float32)  # any buffer replaced: rebuilt
    assert ws.memo("views", build) is not first and len(builds) == 2
    ws.padded("pad", (3,), np.float32, 0)
    assert len({id(ws.memo("views", build)) for _ in range(2)}) == 1 and len(builds) == 3
