"""WindowData: each sample equals Caffe's load_batch computed here directly (OpenCV's imread,
resize and flip, Caffe's context-pad arithmetic, a per-pixel loop for mean and scale) for the
same window and mirror draws; exact resume; bad input gets clear errors."""
import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.blob import Blob
from caffelite.errors import NetError
from caffelite.formats.binary import write_binaryproto
from caffelite.proto import caffelite_pb2 as pb
from tests.gradient_check import make_layer
from tests.resume_check import check_exact_resume

Image = pytest.importorskip("PIL.Image")
cv2 = pytest.importorskip("cv2")

SEED = 7
# (class, overlap, x1, y1, x2, y2) per image; image sizes (H, W)
SIZES = [(40, 52), (33, 29)]
WINDOWS = [
    [(1, 0.9, 3, 4, 30, 25), (0, 0.1, 0, 0, 51, 39), (2, 0.7, 40, 30, 51, 39),
     (3, 0.45, 5, 5, 20, 20), (5, 0.2, 10, 2, 12, 37)],
    [(2, 0.55, 0, 0, 28, 32), (0, 0.0, 7, 9, 8, 10), (1, 1.0, 20, 1, 28, 14)],
]


@pytest.fixture
def window_file(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for k, ((h, w), windows) in enumerate(zip(SIZES, WINDOWS)):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / f"im{k}.png")
        lines += [f"# {k}", f"im{k}.png", f"3 {h} {w}", str(len(windows))]
        lines += [" ".join(str(v) for v in window) for window in windows]
    (tmp_path / "windows.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def layer_text(root, batch=6, crop=16, extra="", transform=""):
    return (f'type: "WindowData" top: "data" top: "label" '
            f'window_data_param {{ source: "{root / "windows.txt"}" root_folder: "{root}/" '
            f'batch_size: {batch} fg_threshold: 0.5 bg_threshold: 0.3 fg_fraction: 0.5 '
            f'{extra} }} transform_param {{ crop_size: {crop} {transform} }}')


def setup(text):
    layer = make_layer(text, dtype=np.float32, seed=SEED)
    top = [Blob(dtype=np.float32), Blob(dtype=np.float32)]
    layer.setup([], top)
    return layer, top


def c_round(x):
    return int(np.copysign(np.floor(abs(x) + 0.5), x))


def expected_sample(root, window, mirror, crop, pad, square, mean, mean_off, scale):
    """Caffe's WindowDataLayer::load_batch for one window, step by step."""
    k, label, _, x1, y1, x2, y2 = window
    image = cv2.imread(str(root / f"im{k}.png"), cv2.IMREAD_COLOR)
    out = np.zeros((3, crop, crop), np.float32)
    size_w = size_h = crop
    pad_w = pad_h = 0
    if pad > 0 or square:
        f = np.float32
        context_scale = f(crop) / f(crop - 2 * pad)
        half_h, half_w = f(y2 - y1 + 1) / f(2.0), f(x2 - x1 + 1) / f(2.0)
        cx, cy = f(x1) + half_w, f(y1) + half_h
        if square:
            half_h = half_w = max(half_h, half_w)
        x1, x2 = c_round(cx - half_w * context_scale), c_round(cx + half_w * context_scale)
        y1, y2 = c_round(cy - half_h * context_scale), c_round(cy + half_h * context_scale)
        unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
        px1, py1 = max(0, -x1), max(0, -y1)
        px2, py2 = max(0, x2 - image.shape[1] + 1), max(0, y2 - image.shape[0] + 1)
        x1, x2, y1, y2 = x1 + px1, x2 - px2, y1 + py1, y2 - py2
        sx, sy = f(crop) / f(unclipped_w), f(crop) / f(unclipped_h)
        size_w, size_h = c_round(f(x2 - x1 + 1) * sx), c_round(f(y2 - y1 + 1) * sy)
        px1, px2, py1 = c_round(f(px1) * sx), c_round(f(px2) * sx), c_round(f(py1) * sy)
        pad_h, pad_w = py1, (px2 if mirror else px1)
        size_h, size_w = min(size_h, crop - pad_h), min(size_w, crop - pad_w)
    patch = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], (size_w, size_h),
                       interpolation=cv2.INTER_LINEAR)
    if mirror:
        patch = cv2.flip(patch, 1)
    for h in range(size_h):
        for w in range(size_w):
            for c in range(3):
                pixel = np.float32(patch[h, w, c])
                if mean is None:
                    m = np.float32(0)
                elif mean.shape[1] == 1:
                    m = mean[c, 0, 0]
                else:
                    m = mean[c, h + mean_off + pad_h, w + mean_off + pad_w]
                out[c, h + pad_h, w + pad_w] = (pixel - m) * np.float32(scale)
    return out, np.float32(label)


def pools():
    fg, bg = [], []
    for k, windows in enumerate(WINDOWS):
        for label, overlap, *box in windows:
            if overlap >= 0.5:
                fg.append((k, label, overlap, *box))
            elif overlap < 0.3:
                bg.append((k, 0, 0.0, *box))
    return fg, bg


@pytest.mark.parametrize("crop_mode, pad, mirror, mean_kind, cache", [
    ("warp", 0, False, None, False),
    ("warp", 0, True, "value", True),
    ("warp", 3, True, "file", False),
    ("square", 0, True, "file", True),
    ("square", 2, False, "value", False),
    ("square", 5, True, None, False),
])
def test_samples_equal_caffes_computation(window_file, tmp_path, crop_mode, pad, mirror,
                                          mean_kind, cache):
    crop, batch, scale = 16, 6, 0.5
    mean, mean_off, transform = None, 0, f"mirror: {str(mirror).lower()}"
    if mean_kind == "file":
        mean = np.random.default_rng(3).uniform(0, 255, (3, 20, 20)).astype(np.float32)
        write_binaryproto(mean[None], tmp_path / "mean.binaryproto")
        transform += f' mean_file: "{tmp_path / "mean.binaryproto"}"'
        mean_off = (20 - crop) // 2
    elif mean_kind == "value":
        mean = np.asarray([100, 120, 90], np.float32).reshape(3, 1, 1)
        transform += " mean_value: 100 mean_value: 120 mean_value: 90"
    extra = (f'context_pad: {pad} crop_mode: "{crop_mode}" scale: {scale} '
             f'cache_images: {str(cache).lower()}')
    layer, top = setup(layer_text(window_file, batch, crop, extra, transform))
    assert top[0].shape == (batch, 3, crop, crop) and top[1].shape == (batch,)
    fg, bg = pools()
    draws = np.random.default_rng(SEED)  # the layer's draws: window index, then mirror coin
    for _ in range(3):
        layer.forward([], top)
        for item in range(batch):
            pool = bg if item < batch // 2 else fg
            window = pool[int(draws.integers(len(pool)))]
            flip = bool(draws.integers(2)) if mirror else False
            data, label = expected_sample(window_file, window, flip, crop, pad,
                                          crop_mode == "square", mean, mean_off, scale)
            np.testing.assert_array_equal(top[0].data[item], data)
            assert top[1].data[item] == label


def test_resumes_from_the_nets_random_state(window_file):
    from caffelite.net import Net

    param = text_format.Parse(f"layer {{ name: 'w' {layer_text(window_file)} }}",
                              pb.NetParameter())
    net = Net(param, phase="TRAIN")
    net.forward()
    state = net.rng.bit_generator.state
    expected = {k: v.copy() for k, v in net.forward().items()}
    other = Net(param, phase="TRAIN")
    other.rng.bit_generator.state = state
    for name, value in other.forward().items():
        np.testing.assert_array_equal(value, expected[name])


# -- bad input --------------------------------------------------------------------------------
def rewrite(root, text):
    (root / "windows.txt").write_text(text)


@pytest.mark.parametrize("text, message", [
    ("# 1\nim0.png\n3 40 52\n0\n", r"expected '# 0', got '# 1'"),
    ("# 0\nim0.png\n3 40\n", "ends inside image #0: expected channels height width"),
    ("# 0\nim0.png\n3 40 52\n1\n1 x 0 0 5 5\n", "expected an overlap, got 'x'"),
    ("# 0\nim0.png\n3 40 52\n1\n0 0.9 0 0 5 5\n", "foreground window .* has class 0"),
    ("# 0\nim9.png\n3 40 52\n1\n1 0.9 0 0 5 5\n", r"image #0 .*im9\.png does not exist"),
    ("# 0\nim0.png\n1 40 52\n1\n1 0.9 0 0 5 5\n", "declares 1 channels"),
    ("# 0\nim0.png\n3 40 52\n1\n1 0.9 0 0 5 5\n", "no background windows for the 3"),
])
def test_bad_window_files(window_file, text, message):
    rewrite(window_file, text)
    with pytest.raises(NetError, match=message):
        setup(layer_text(window_file))


def test_bad_parameters(window_file, tmp_path):
    with pytest.raises(NetError, match="crop_size must be > 0"):
        setup(layer_text(window_file, crop=0))
    with pytest.raises(NetError, match="window_data_param.mirror is not read by Caffe 1.0"):
        setup(layer_text(window_file, extra="mirror: true"))
    with pytest.raises(NetError, match="both mean_file and mean_value"):
        setup(layer_text(window_file, transform='mean_file: "m" mean_value: 1'))
    write_binaryproto(np.zeros((1, 3, 10, 10), np.float32), tmp_path / "small.binaryproto")
    with pytest.raises(NetError, match=r"has shape \(3, 10, 10\); WindowData needs"):
        setup(layer_text(window_file, transform=f'mean_file: "{tmp_path}/small.binaryproto"'))
    with pytest.raises(NetError, match="context_pad 8 leaves no room"):
        setup(layer_text(window_file, extra="context_pad: 8"))
    with pytest.raises(NetError, match="cannot read the window file"):
        setup(layer_text(window_file / "nowhere"))


def test_window_outside_its_image_in_warp_mode(window_file):
    rewrite(window_file, "# 0\nim0.png\n3 40 52\n2\n1 0.9 0 0 60 5\n0 0.1 0 0 5 5\n")
    layer, top = setup(layer_text(window_file, batch=2))
    with pytest.raises(NetError, match=r"window \(0, 0, 60, 5\) of image #0 .* does not lie "
                                       r"inside its 52×40 pixels"):
        layer.forward([], top)


def test_bvlc_pascal_finetune_window_layer(tmp_path):
    """The TRAIN WindowData layer of BVLC's pascal_finetune_trainval_test.prototxt (paths
    changed only): batch 128 of 227² crops, context_pad 16, mirror, a 256² mean file."""
    from conftest import EXAMPLES, need_shared

    net = text_format.Parse(need_shared(EXAMPLES / "finetune_pascal_detection" /
                                        "pascal_finetune_trainval_test.prototxt").read_text(),
                            pb.NetParameter())
    param = net.layer[0]
    assert param.type == "WindowData"
    rng = np.random.default_rng(4)
    lines = []
    for k, (h, w) in enumerate([(300, 250), (180, 320)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / f"im{k}.png")
        lines += [f"# {k}", str(tmp_path / f"im{k}.png"), f"3 {h} {w}", "3",
                  f"{k + 1} 0.8 10 20 {w - 30} {h - 5}", "0 0.2 0 0 50 60",
                  f"{k + 3} 0.6 {w // 2} {h // 3} {w - 1} {h - 1}"]
    (tmp_path / "windows.txt").write_text("\n".join(lines) + "\n")
    mean = rng.uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    write_binaryproto(mean, tmp_path / "mean.binaryproto")
    param.window_data_param.source = str(tmp_path / "windows.txt")
    param.transform_param.mean_file = str(tmp_path / "mean.binaryproto")
    from caffelite.registry import LAYERS

    layer = LAYERS.get("WindowData")(param, dtype=np.float32, rng=np.random.default_rng(SEED))
    top = [Blob(dtype=np.float32), Blob(dtype=np.float32)]
    layer.setup([], top)
    layer.forward([], top)
    assert top[0].shape == (128, 3, 227, 227)
    assert np.all(top[1].data[:96] == 0) and np.all(top[1].data[96:] > 0)
    draws = np.random.default_rng(SEED)
    fg = [(k, lab, 0.0, *box) for k, lab, box in
          [(0, 1, (10, 20, 220, 295)), (0, 3, (125, 100, 249, 299)),
           (1, 2, (10, 20, 290, 175)), (1, 4, (160, 60, 319, 179))]]
    bg = [(k, 0, 0.0, 0, 0, 50, 60) for k in range(2)]
    picks = [(bg[int(draws.integers(2))], bool(draws.integers(2)))]
    for _ in range(95):  # the other bg samples' window and mirror draws
        draws.integers(2), draws.integers(2)
    picks.append((fg[int(draws.integers(4))], bool(draws.integers(2))))
    for item, (window, flip) in zip((0, 96), picks):  # the first bg and the first fg
        data, label = expected_sample(tmp_path, window, flip, 227, 16, False, mean[0],
                                      (256 - 227) // 2, 1.0)
        np.testing.assert_array_equal(top[0].data[item], data)
        assert top[1].data[item] == label



def test_relative_image_paths_are_found_beside_the_window_file(window_file, tmp_path,
                                                               monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = layer_text(window_file).replace(f'root_folder: "{window_file}/" ', "")
    layer, top = setup(text)
    assert layer.images[0][0] == str(window_file / "im0.png")
    layer.forward([], top)


@pytest.mark.timeout(120)
def test_solver_resume_is_bit_identical(window_file, tmp_path):
    """N iterations straight = K + snapshot + restore + N − K: the window and mirror draws
    continue from the saved random stream."""
    from caffelite.solvers import Solver
    from tests.solvers.nets import solver_param

    net = text_format.Parse(f"""
      layer {{ name: "w" {layer_text(window_file, batch=4, crop=8,
                                      transform="mirror: true mean_value: 128")} }}
      layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
               inner_product_param {{ num_output: 6 weight_filler {{ type: "xavier" }} }} }}
      layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
    """, pb.NetParameter())

    def make_solver(name):
        return Solver(solver_param(net, base_lr=1e-3, max_iter=6,
                                   snapshot_prefix=str(tmp_path / name / "s")))

    check_exact_resume(make_solver, total=6, first=2)


def test_missing_pillow_names_the_extra(window_file, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("no PIL")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(NetError, match=r'pip install "caffelite\[image\]"'):
        setup(layer_text(window_file))
