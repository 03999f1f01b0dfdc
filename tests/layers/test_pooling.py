"""Pooling: Caffe's loops (tests/reference), PyTorch where it agrees, Caffe's hand cases."""
import numpy as np
import pytest

from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.kernels import pool_ave, pool_phases
from caffelite.kernels.pool_max import phased
from caffelite.layer import TEST, TRAIN
from caffelite.layers import pooling
from tests.gradient_check import blob_from, check_gradient, make_layer
from tests.reference.pool_naive import (
    FLT_MAX,
    ave_pool_naive,
    max_pool_naive,
    stochastic_test_naive,
    window_bounds,
)

F64 = np.float64


def pool_layer(method, kernel=None, stride=(1, 1), pad=(0, 0), floor=False, phase=TRAIN,
               extra=""):
    text = f"type: 'Pooling' pooling_param {{ pool: {method} {extra} "
    if kernel:
        text += f"kernel_h: {kernel[0]} kernel_w: {kernel[1]} "
    text += f"stride_h: {stride[0]} stride_w: {stride[1]} pad_h: {pad[0]} pad_w: {pad[1]} "
    text += "round_mode: FLOOR }" if floor else "}"
    return make_layer(text, phase=phase)


def run(layer, x, tops=1):
    bottom, top = [blob_from(x)], [Blob(dtype=F64) for _ in range(tops)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return bottom, top


def distinct(rng, shape):
    """Values at least 0.1 apart, so a ±1e-2 step never changes a window's maximum."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0


SWEEP = [  # N, C, H, W, kernel, stride, pad, floor
    (2, 3, 7, 8, (3, 2), (2, 3), (1, 1), False),
    (2, 3, 6, 6, (2, 2), (2, 2), (0, 0), False),
    (1, 2, 5, 7, (3, 3), (2, 2), (2, 1), False),  # pad > kernel/2: Caffe allows pad < kernel
    (1, 2, 7, 8, (3, 2), (2, 3), (1, 1), True),
    (2, 2, 9, 9, (3, 3), (2, 2), (1, 1), False),
    (1, 2, 6, 6, (6, 6), (1, 1), (0, 0), False),
    (2, 1, 4, 5, (5, 5), (2, 2), (0, 0), False),  # kernel larger than the input, ceil -> 1
    (1, 2, 10, 10, (4, 3), (3, 1), (2, 1), False),
]


def test_compiled_route_runs_the_kernels(kernel_route, monkeypatch, rng):
    """Each route's tests run the code they name: the kernels run exactly when they are on."""
    calls = []
    for name in ("max_pool_forward_kernel", "max_pool_backward_kernel"):
        kernel = getattr(pooling, name)
        monkeypatch.setattr(pooling, name, lambda *args, k=kernel, n=name: (
            calls.append(n), k(*args))[1])
    layer = pool_layer("MAX", (3, 3), (2, 2))
    bottom, top = run(layer, rng.normal(size=(2, 3, 9, 9)))
    layer.backward(top, [True], bottom)
    assert bool(calls) == (kernel_route == "compiled")
    assert set(calls) <= {"max_pool_forward_kernel", "max_pool_backward_kernel"}


@pytest.mark.parametrize("case", SWEEP)
def test_max_matches_caffe_loop(case, kernel_route, rng):
    n, c, h, w, kernel, stride, pad, floor = case
    x = rng.normal(size=(n, c, h, w))
    _, top = run(pool_layer("MAX", kernel, stride, pad, floor), x, tops=2)
    ref, mask = max_pool_naive(x, kernel, pad, stride, not floor)
    np.testing.assert_array_equal(top[0].data, ref)
    np.testing.assert_array_equal(top[1].data, mask)


@pytest.mark.parametrize("case", SWEEP)
def test_test_phase_max_matches_train(case, kernel_route, rng):
    """A TEST net's MAX pooling keeps no mask (the compiled kernel then skips it: a third
    less work); a backward on it still routes each diff to Caffe's winner."""
    n, c, h, w, kernel, stride, pad, floor = case
    x = rng.normal(size=(n, c, h, w))
    dtop = None
    results = []
    for phase in (TRAIN, TEST):
        layer = pool_layer("MAX", kernel, stride, pad, floor, phase=phase)
        bottom, top = run(layer, x)
        if kernel_route == "compiled":
            assert (layer.mask is None) == (phase == TEST)
        dtop = rng.normal(size=top[0].shape) if dtop is None else dtop
        top[0].diff[...] = dtop
        layer.backward(top, [True], bottom)
        results.append((top[0].data.copy(), bottom[0].diff.copy()))
    np.testing.assert_array_equal(results[1][0], max_pool_naive(x, kernel, pad, stride,
                                                                 not floor)[0])
    for train, test in zip(*results):
        np.testing.assert_array_equal(test, train)


def test_untracked_kernel_leaves_the_mask(rng):
    """max_pool_forward without track writes the maxima and nothing into the mask."""
    pytest.importorskip("numba", reason="Numba (the fast extra) is not installed")
    from caffelite.kernels.pool_compiled import max_pool_forward
    x = rng.normal(size=(3, 9, 9))
    top, mask = np.empty((3, 4, 4)), np.full((3, 4, 4), 7, np.int32)
    max_pool_forward(x, 3, 3, 0, 0, 2, 2, False, top, mask)
    np.testing.assert_array_equal(top, max_pool_naive(x[None], (3, 3), (0, 0), (2, 2),
                                                      True)[0][0])
    assert (mask == 7).all()


@pytest.fixture(params=["dense", "planes"])
def ave_route(request, monkeypatch):
    """AVE pooling's two ways to sum windows: one GEMM with the window matrix (few outputs
    per image), or the phase planes (pool_phases.py; global pooling reduces whole windows)."""
    monkeypatch.setattr(pool_ave, "DENSE_MAX_OUTPUTS", 10**9 if request.param == "dense" else 0)
    return request.param


@pytest.mark.parametrize("case", SWEEP)
def test_ave_matches_caffe_loop(case, ave_route, rng):
    n, c, h, w, kernel, stride, pad, floor = case
    x = rng.normal(size=(n, c, h, w))
    _, top = run(pool_layer("AVE", kernel, stride, pad, floor), x)
    assert pool_ave.dense(top[0].shape[2:]) == (ave_route == "dense")
    np.testing.assert_allclose(top[0].data, ave_pool_naive(x, kernel, pad, stride, not floor),
                               rtol=1e-13, atol=1e-14)


def test_ave_keeps_inf_and_nan_inside_their_windows(ave_route, rng):
    """A GEMM spreads inf·0 = NaN over the whole image; Caffe's window sums do not."""
    x = rng.normal(size=(2, 3, 9, 9))
    x[0, 0, 1, 1] = np.inf
    x[1, 2, 7, 8] = np.nan
    layer = pool_layer("AVE", (3, 3), (2, 2), (1, 1))
    bottom, top = run(layer, x)
    want = ave_pool_naive(x, (3, 3), (1, 1), (2, 2))
    assert np.isinf(want[0, 0]).any() and np.isfinite(want[0, 0]).any()
    np.testing.assert_allclose(top[0].data, want, rtol=1e-13, atol=1e-14)
    top[0].diff[...] = rng.normal(size=top[0].shape)
    top[0].diff[1, 0, 2, 2] = np.nan
    layer.backward(top, [True], bottom)
    want = ave_backward_naive(top[0].diff, x.shape, (3, 3), (1, 1), (2, 2))
    assert np.isnan(want[1, 0]).any() and np.isfinite(want[1, 0]).any()
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-13, atol=1e-14)


TORCH_SWEEP = [case for case in SWEEP if max(np.array(case[6]) * 2 - case[4]) <= 0]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", TORCH_SWEEP)
def test_forward_and_backward_match_pytorch(case, method, kernel_route, rng):
    """PyTorch's ceil_mode and count_include_pad follow Caffe where pad <= kernel/2."""
    torch = pytest.importorskip("torch", reason="PyTorch oracle not installed")
    F = torch.nn.functional
    n, c, h, w, kernel, stride, pad, floor = case
    x = rng.normal(size=(n, c, h, w))
    layer = pool_layer(method, kernel, stride, pad, floor)
    bottom, top = run(layer, x)
    xt = torch.tensor(x, requires_grad=True)
    if method == "MAX":
        yt = F.max_pool2d(xt, kernel, stride, pad, ceil_mode=not floor)
        np.testing.assert_array_equal(top[0].data, yt.detach().numpy())
    else:
        yt = F.avg_pool2d(xt, kernel, stride, pad, ceil_mode=not floor, count_include_pad=True)
        np.testing.assert_allclose(top[0].data, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    dy = rng.normal(size=top[0].shape)
    yt.backward(torch.tensor(dy))
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7  # bottom diffs are overwritten
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", [c for c in SWEEP if c[4][0] <= c[2]])  # OpenCV needs k <= H
def test_forward_matches_opencv_caffe_importer(case, method, kernel_route, rng, tmp_path):
    """OpenCV's dnn reads Caffe prototxts and follows Caffe's size, pad and divisor rules."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV oracle not installed")
    n, c, h, w, kernel, stride, pad, floor = case
    params = (f"pool: {method} kernel_h: {kernel[0]} kernel_w: {kernel[1]} stride_h: "
              f"{stride[0]} stride_w: {stride[1]} pad_h: {pad[0]} pad_w: {pad[1]}"
              + (" round_mode: FLOOR" if floor else ""))
    path = tmp_path / "pool.prototxt"
    path.write_text(f"input: 'data' input_shape {{ dim: {n} dim: {c} dim: {h} dim: {w} }}\n"
                    f"layer {{ name: 'p' type: 'Pooling' bottom: 'data' top: 'p' "
                    f"pooling_param {{ {params} }} }}\n")
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    net = cv2.dnn.readNetFromCaffe(str(path))
    net.setInput(x)
    ref = net.forward()
    layer = make_layer(f"type: 'Pooling' pooling_param {{ {params} }}", dtype=np.float32)
    bottom, top = [blob_from(x, np.float32)], [Blob()]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, ref, rtol=1e-5, atol=1e-6)


def test_caffe_forward_max_with_mask():
    """Caffe's TestForwardMax (2x2 kernel, stride 1) with its expected top and mask."""
    x = np.array([[1, 2, 5, 2, 3], [9, 4, 1, 4, 8], [1, 2, 5, 2, 3]], F64)
    _, top = run(pool_layer("MAX", (2, 2)), np.tile(x, (2, 2, 1, 1)), tops=2)
    np.testing.assert_array_equal(top[0].data[1, 1], [[9, 5, 5, 8], [9, 5, 5, 8]])
    np.testing.assert_array_equal(top[1].data[0, 0], [[5, 2, 2, 9], [5, 12, 12, 9]])


def test_caffe_forward_max_padded():
    """Caffe's TestForwardMaxPadded: kernel 3, stride 2, pad 2 on a 3x3 input."""
    x = np.array([[1, 2, 4], [2, 3, 2], [4, 2, 1]], F64)
    _, top = run(pool_layer("MAX", (3, 3), (2, 2), (2, 2)), x[None, None])
    np.testing.assert_array_equal(top[0].data[0, 0], [[1, 4, 4], [4, 4, 4], [4, 4, 1]])


def test_caffe_forward_ave_padded():
    """Caffe's TestForwardAve: constant 2, kernel 3, stride 1, pad 1: padding counts."""
    _, top = run(pool_layer("AVE", (3, 3), (1, 1), (1, 1)), np.full((1, 1, 3, 3), 2.0))
    np.testing.assert_allclose(top[0].data[0, 0], [[8 / 9, 4 / 3, 8 / 9], [4 / 3, 2, 4 / 3],
                                                   [8 / 9, 4 / 3, 8 / 9]], rtol=1e-15)


def test_ave_divisor_is_clipped_to_size_plus_pad():
    """1x4 input, kernel 3, stride 2, pad 1: windows [-1,2), [1,4), [3,5); the last has divisor
    2 (cell 4 is padding, cell 5 is past size + pad) and holds only x[3]."""
    x = np.array([[[[1.0, 2.0, 3.0, 4.0]]]])
    _, top = run(pool_layer("AVE", (1, 3), (1, 2), (0, 1)), x)
    np.testing.assert_allclose(top[0].data[0, 0, 0], [3 / 3, 9 / 3, 4 / 2])


def test_last_window_rule_where_pytorch_differs():
    """Without padding Caffe keeps a last window that starts past the image (stride > kernel):
    MAX gives -FLT_MAX and mask -1 there; PyTorch drops that window."""
    x = np.arange(6.0).reshape(1, 1, 1, 6)
    _, top = run(pool_layer("MAX", (1, 2), (1, 3)), x, tops=2)
    np.testing.assert_array_equal(top[0].data[0, 0, 0], [1, 4, -FLT_MAX])
    np.testing.assert_array_equal(top[1].data[0, 0, 0], [1, 4, -1])
    layer = pool_layer("AVE", (1, 2), (1, 3))
    bottom, top = run(layer, x)
    np.testing.assert_array_equal(top[0].data[0, 0, 0], [0.5, 3.5, np.nan])  # Caffe's 0/0
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff[0, 0, 0], [.5, .5, 0, .5, .5, 0])
    # with pad the rule drops a window starting at or past size + pad: 5 wide, k2 s3 p1
    _, top = run(pool_layer("MAX", (1, 2), (1, 3), (0, 1)), x[..., :5], tops=2)
    np.testing.assert_array_equal(top[0].data[0, 0, 0], [0, 3])


def test_first_maximum_wins_on_ties(kernel_route):
    x = np.array([[[[3.0, 3.0], [3.0, 1.0]]]])
    bottom, top = run(pool_layer("MAX", (2, 2)), x, tops=2)
    assert top[1].data[0, 0, 0, 0] == 0
    x = np.array([[[[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]]])
    bottom, top = run(pool_layer("MAX", (2, 3)), x, tops=2)
    assert top[1].data[0, 0, 0, 0] == 1  # h-then-w order: (0, 1) before (0, 2) and (1, 0)


# --- chunked column-phase planes (caffelite/pool_phases.py) ------------------------------------

PLANE_CASES = [  # H, W, kernel, stride, pad
    (8, 8, (3, 3), (2, 2), (0, 0)),  # CIFAR's last window reaches past the row: clipped
    (13, 12, (5, 5), (2, 2), (0, 0)),  # two offsets of the last window lie past the row
    (12, 15, (4, 4), (3, 3), (0, 0)),
    (6, 8, (2, 2), (2, 2), (0, 0)),  # windows tile the image
    (7, 9, (3, 2), (2, 3), (1, 1)),  # padded: the planes hold cells outside the image
    (5, 7, (1, 2), (3, 3), (0, 0)),  # stride > kernel: cells in no window
]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 2 and 3 images (of 10), so that one call runs chunks of two sizes."""
    monkeypatch.setattr(pool_phases, "num_threads", lambda: 1)
    return lambda h, w: monkeypatch.setattr(pool_phases, "CHUNK_CELLS", h * w * 5 // 2)


def max_backward_naive(dtop, mask, shape):
    dx = np.zeros(shape)
    for index in np.ndindex(*mask.shape):
        if mask[index] >= 0:
            dx[index[:2] + divmod(int(mask[index]), shape[3])] += dtop[index]
    return dx


def ave_backward_naive(dtop, shape, kernel, pad, stride):
    """Caffe's AVE backward loop: top diff / pool_size added over the clipped window."""
    dx = np.zeros(shape)
    for (y, x), (h0, h1, w0, w1) in window_bounds(*shape[2:], kernel, pad, stride).items():
        hstart, wstart = y * stride[0] - pad[0], x * stride[1] - pad[1]
        pool_size = ((min(hstart + kernel[0], shape[2] + pad[0]) - hstart)
                     * (min(wstart + kernel[1], shape[3] + pad[1]) - wstart))
        dx[:, :, h0:h1, w0:w1] += (dtop[:, :, y, x] / pool_size)[:, :, None, None]
    return dx


@pytest.mark.parametrize("tops", [1, 2])
@pytest.mark.parametrize("case", PLANE_CASES)
def test_max_planes_match_caffe_loop(case, tops, small_chunks, kernel_route, rng):
    """Ties, NaN, −inf and windows holding no input above −FLT_MAX, over chunks."""
    h, w, kernel, stride, pad = case
    small_chunks(h, w)
    x = rng.integers(-2, 3, size=(2, 5, h, w)).astype(F64)  # many ties
    x[0, 0] = -np.inf
    x[1, 1, 0, :3] = np.nan
    x[1, 2, 1:3, -2:] = -np.inf
    layer = pool_layer("MAX", kernel, stride, pad)
    bottom, top = run(layer, x, tops)
    assert phased(kernel, top[0].shape[2:])
    want, mask = max_pool_naive(x, kernel, pad, stride)
    np.testing.assert_array_equal(top[0].data, want)
    if tops == 2:
        np.testing.assert_array_equal(top[1].data, mask)
    top[0].diff[...] = rng.integers(-4, 5, size=top[0].shape) / 2  # exact sums
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, max_backward_naive(top[0].diff, mask, x.shape))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_one_layer_through_changing_shapes(method, small_chunks, ave_route, kernel_route, rng):
    """A layer keeps its planes' views between calls; when a reshape grows or shrinks its
    buffers, the views must follow (checked against Caffe's loops at every shape)."""
    layer = pool_layer(method, (3, 3), (2, 2), (1, 1))
    shapes = [(2, 5, 9, 9), (2, 5, 9, 9), (4, 5, 13, 11), (1, 2, 9, 9), (4, 5, 13, 11),
              (3, 5, 9, 9)]
    bottom, top = None, [Blob(dtype=F64)]
    for shape in shapes:
        small_chunks(*shape[2:])
        x = rng.integers(-2, 3, size=shape).astype(F64)
        if bottom is None:
            bottom = [blob_from(x)]
            layer.setup(bottom, top)
        bottom[0].reshape(shape)
        bottom[0].data[...] = x
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        top[0].diff[...] = rng.integers(-4, 5, size=top[0].shape) / 2  # exact sums
        layer.backward(top, [True], bottom)
        if method == "MAX":
            want, mask = max_pool_naive(x, (3, 3), (1, 1), (2, 2))
            dx = max_backward_naive(top[0].diff, mask, shape)
        else:
            want = ave_pool_naive(x, (3, 3), (1, 1), (2, 2))
            dx = ave_backward_naive(top[0].diff, shape, (3, 3), (1, 1), (2, 2))
        np.testing.assert_allclose(top[0].data, want, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(bottom[0].diff, dx, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("case", PLANE_CASES)
def test_ave_planes_match_caffe_loop(case, small_chunks, monkeypatch, rng):
    h, w, kernel, stride, pad = case
    small_chunks(h, w)
    monkeypatch.setattr(pool_ave, "DENSE_MAX_OUTPUTS", 0)
    x = rng.normal(size=(2, 5, h, w))
    layer = pool_layer("AVE", kernel, stride, pad)
    bottom, top = run(layer, x)
    assert phased(kernel, top[0].shape[2:])
    np.testing.assert_allclose(top[0].data, ave_pool_naive(x, kernel, pad, stride),
                               rtol=1e-13, atol=1e-14)
    top[0].diff[...] = rng.normal(size=top[0].shape)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff,
                               ave_backward_naive(top[0].diff, x.shape, kernel, pad, stride),
                               rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling_follows_the_input_size(method, kernel_route, rng):
    layer = make_layer(f"type: 'Pooling' pooling_param {{ pool: {method} global_pooling: true }}")
    x = rng.normal(size=(2, 3, 4, 5))
    bottom, top = run(layer, x)
    want = x.max(axis=(2, 3)) if method == "MAX" else x.mean(axis=(2, 3))
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], want, rtol=1e-14)
    bottom[0].reshape(2, 3, 6, 3)
    bottom[0].data[...] = x2 = rng.normal(size=(2, 3, 6, 3))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    want = x2.max(axis=(2, 3)) if method == "MAX" else x2.mean(axis=(2, 3))
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], want, rtol=1e-14)
    check_gradient(layer, [blob_from(distinct(rng, (2, 2, 3, 3)))], [Blob(dtype=F64)])


def test_nan_never_wins_a_whole_window(kernel_route, rng):
    """Global pooling reduces whole windows (no planes); NaN loses there too."""
    x = rng.normal(size=(2, 3, 4, 5))
    x[0, 0, 0, 0] = x[1, 2, 2, 3] = np.nan
    x[1, 1] = np.nan
    _, top = run(make_layer("type: 'Pooling' pooling_param { pool: MAX global_pooling: true }"),
                 x, tops=2)
    want, mask = max_pool_naive(x, (4, 5))
    np.testing.assert_array_equal(top[0].data, want)
    np.testing.assert_array_equal(top[1].data, mask)


@pytest.mark.parametrize("kernel, stride, pad", [((3, 3), (2, 2), (1, 1)),
                                                 ((2, 3), (1, 2), (0, 1)),
                                                 ((3, 2), (2, 1), (2, 0))])
def test_gradient_max(kernel, stride, pad, kernel_route, rng):
    layer = pool_layer("MAX", kernel, stride, pad)
    check_gradient(layer, [blob_from(distinct(rng, (2, 2, 5, 4)))], [Blob(dtype=F64)])


def test_gradient_max_with_top_mask(kernel_route, rng):
    layer = pool_layer("MAX", (3, 2), (2, 1), (1, 1))
    check_gradient(layer, [blob_from(distinct(rng, (2, 2, 4, 5)))],
                   [Blob(dtype=F64), Blob(dtype=F64)], top_id=None)


@pytest.mark.parametrize("kernel, stride, pad", [((3, 3), (2, 2), (1, 1)),
                                                 ((2, 3), (1, 2), (0, 1)),
                                                 ((3, 2), (2, 1), (2, 0)),
                                                 ((4, 4), (1, 1), (0, 0))])
def test_gradient_ave(kernel, stride, pad, ave_route, rng):
    layer = pool_layer("AVE", kernel, stride, pad)
    check_gradient(layer, [blob_from(rng.normal(size=(2, 2, 5, 4)))], [Blob(dtype=F64)])


# --- STOCHASTIC ---------------------------------------------------------------------------

def test_stochastic_train_picks_window_elements(rng):
    x = rng.uniform(0.1, 1.0, size=(2, 3, 7, 6))
    layer = pool_layer("STOCHASTIC", (3, 3), (2, 2))
    _, top = run(layer, x)
    assert top[0].shape == (2, 3, 3, 3)
    bounds = window_bounds(7, 6, (3, 3), stride=(2, 2))
    for (y, xx), (h0, h1, w0, w1) in bounds.items():
        window = x[:, :, h0:h1, w0:w1].reshape(2, 3, -1)
        assert np.all((window == top[0].data[:, :, y, xx, None]).any(axis=-1))
        # the recorded index is the element's flat h·W + w
        mask = layer.mask[:, :, y, xx]
        h, w = mask // 6, mask % 6
        assert np.all((h >= h0) & (h < h1) & (w >= w0) & (w < w1))
        np.testing.assert_array_equal(np.take_along_axis(
            x.reshape(2, 3, -1), mask[..., None], -1)[..., 0], top[0].data[:, :, y, xx])


def test_stochastic_train_frequencies_follow_a_over_sum(rng):
    window = np.array([[0.0, 1.0], [3.0, 4.0]])  # p = 0, 1/8, 3/8, 4/8
    x = np.tile(window, (1, 5000, 1, 1))
    counts = np.zeros(4)
    for seed in range(4):
        layer = make_layer("type: 'Pooling' pooling_param { pool: STOCHASTIC kernel_size: 2 "
                           "stride: 2 }", seed=seed)
        _, top = run(layer, x)
        counts += np.bincount(layer.mask.ravel(), minlength=4)
        np.testing.assert_array_equal(top[0].data.ravel(), window.ravel()[layer.mask.ravel()])
    np.testing.assert_allclose(counts / counts.sum(), [0, 1 / 8, 3 / 8, 4 / 8], atol=0.01)
    assert counts[0] == 0  # a zero is never drawn


def test_stochastic_train_repeats_with_the_same_seed(rng):
    x = rng.uniform(0, 1, size=(2, 3, 8, 8))
    tops = []
    for seed in (5, 5, 6):
        _, top = run(make_layer("type: 'Pooling' pooling_param { pool: STOCHASTIC "
                                "kernel_size: 3 stride: 2 }", seed=seed), x)
        tops.append(top[0].data.copy())
    np.testing.assert_array_equal(tops[0], tops[1])
    assert not np.array_equal(tops[0], tops[2])


def test_stochastic_test_is_the_probability_weighted_average(rng):
    x = np.array([[[[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]])
    _, top = run(pool_layer("STOCHASTIC", (2, 2), (2, 2), phase=TEST), x)
    # windows: {1,2,3,4} -> 30/10; {0,0} -> 0 (the FLT_MIN start avoids 0/0); {0,0}; {0}
    np.testing.assert_allclose(top[0].data[0, 0], [[3.0, 0.0], [0.0, 0.0]])
    x = rng.uniform(0, 1, size=(2, 3, 7, 8))
    _, top = run(pool_layer("STOCHASTIC", (3, 2), (2, 3), phase=TEST), x)
    np.testing.assert_allclose(top[0].data, stochastic_test_naive(x, (3, 2), (2, 3)),
                               rtol=1e-13)


def test_gradient_stochastic_train(kernel_route, rng):
    """The sampled element's gradient is the top diff (the checker reseeds every forward)."""
    layer = pool_layer("STOCHASTIC", (3, 3), (2, 2))
    check_gradient(layer, [blob_from(rng.uniform(0.1, 1, size=(2, 2, 5, 5)))],
                   [Blob(dtype=F64)], step=1e-4, threshold=1e-2)


def test_gradient_stochastic_test(rng):
    layer = pool_layer("STOCHASTIC", (3, 2), (2, 1), phase=TEST)
    check_gradient(layer, [blob_from(rng.uniform(0.1, 1, size=(2, 2, 5, 4)))], [Blob(dtype=F64)])


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, shape, tops, message", [
    ("kernel_size: 3 pad: 3", (1, 1, 5, 5), 1, "smaller than the kernel"),
    ("pool: STOCHASTIC kernel_size: 3 pad: 1", (1, 1, 5, 5), 1, "only for MAX and AVE"),
    ("global_pooling: true kernel_size: 2", (1, 1, 5, 5), 1, "remove kernel_size"),
    ("global_pooling: true stride: 2", (1, 1, 5, 5), 1, "pad 0 and stride 1"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", (1, 1, 5, 5), 1, "not both|or both"),
    ("kernel_h: 2", (1, 1, 5, 5), 1, "both kernel_h and kernel_w"),
    ("pad: 1", (1, 1, 5, 5), 1, "needs kernel_size"),
    ("kernel_size: 2 stride: 0", (1, 1, 5, 5), 1, "stride must be nonzero"),
    ("kernel_size: 2", (1, 5, 5), 1, "4 axes"),
    ("pool: AVE kernel_size: 2", (1, 1, 5, 5), 2, "only MAX pooling has a second top"),
    ("kernel_size: 6 round_mode: FLOOR", (1, 1, 5, 5), 1, "does not fit"),
])
def test_errors_name_the_layer(text, shape, tops, message):
    layer = make_layer("name: 'pool1' type: 'Pooling' pooling_param { " + text + " }")
    with pytest.raises(NetError, match=message) as info:
        layer.setup([Blob(shape, F64)], [Blob(dtype=F64) for _ in range(tops)])
    assert "layer 'pool1' (Pooling)" in str(info.value)


def test_three_tops_are_refused():
    layer = make_layer("type: 'Pooling' pooling_param { kernel_size: 2 }")
    with pytest.raises(NetError, match="at most 2"):
        layer.setup([Blob((1, 1, 4, 4), F64)], [Blob(), Blob(), Blob()])


@pytest.mark.parametrize("method", ["MAX", "AVE", "STOCHASTIC"])
def test_float32(method, kernel_route, rng):
    x = rng.uniform(0, 1, size=(2, 3, 7, 6)).astype(np.float32)
    layer = make_layer(f"type: 'Pooling' pooling_param {{ pool: {method} kernel_size: 3 "
                       f"stride: 2 }}", phase=TEST, dtype=np.float32)
    bottom, top = [blob_from(x, np.float32)], [Blob()]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32
    naive = {"MAX": lambda: max_pool_naive(x, (3, 3), (0, 0), (2, 2))[0],
             "AVE": lambda: ave_pool_naive(x, (3, 3), (0, 0), (2, 2)),
             "STOCHASTIC": lambda: stochastic_test_naive(x, (3, 3), (2, 2))}[method]()
    np.testing.assert_allclose(top[0].data, naive, rtol=1e-6)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.dtype == np.float32 and np.isfinite(bottom[0].diff).all()
