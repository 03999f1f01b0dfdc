"""ImageData: images of a list read with OpenCV as the oracle, the transform formula, seeded
shuffles reshuffled each epoch, resume, and the errors that name the list line."""
import numpy as np
import pytest
from dbfixtures import caffe_transform, forward, make_data_layer

from caffelite.errors import NetError
from tests.resume_check import check_exact_resume

cv2 = pytest.importorskip("cv2")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def image_list(tmp_path, rng):
    """Seven colour PNGs 6×8 under root/, a list with labels 0..6 (one path with a space)."""
    root = tmp_path / "root"
    (root / "sub dir").mkdir(parents=True)
    lines = []
    for i in range(7):
        name = f"sub dir/im{i}.png" if i == 3 else f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(root / name)
        lines.append(f"{name} {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "list.txt"), str(root) + "/", [line.rsplit(" ", 1)[0] for line in lines]


def image_text(source, root, batch, param="", transform=""):
    return (f'name: "images" type: "ImageData" top: "data" top: "label" '
            f'transform_param {{ {transform} }} image_data_param {{ source: "{source}" '
            f'root_folder: "{root}" batch_size: {batch} {param} }}')


def cv2_read(path, color=True, size=None):
    image = cv2.imread(path, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if size:
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("color", [True, False])
def test_values_equal_opencv_reads_and_caffes_formula(image_list, color):
    source, root, names = image_list
    text = image_text(source, root, 3, f"is_color: {str(color).lower()}",
                      "crop_size: 5 mirror: true mean_value: 100 scale: 0.25")
    layer, top = make_data_layer(text)
    for step in range(4):
        data, label = forward(layer, top)
        h_off, w_off, flip = layer.last_plan
        for i in range(3):
            k = (3 * step + i) % 7
            image = cv2_read(root + names[k], color)
            expected = caffe_transform(image, h_off[i], w_off[i], flip[i], 5,
                                       np.float32(100), 0.25)
            np.testing.assert_array_equal(data[i], expected)
            assert label[i] == k
    layer.close()


def test_resize_is_opencvs_bilinear(image_list):
    source, root, names = image_list
    layer, top = make_data_layer(image_text(source, root, 7, "new_height: 11 new_width: 5"))
    data, _ = forward(layer, top)
    expected = np.stack([cv2_read(root + n, True, (11, 5)) for n in names]).astype(np.float32)
    assert data.shape == (7, 3, 11, 5)
    np.testing.assert_array_equal(data, expected)  # OpenCV's fixed point, bit for bit
    layer.close()


def epoch_orders(layer, top, epochs, count=7):
    labels = np.concatenate([forward(layer, top)[1] for _ in range(epochs * count)])
    return labels.reshape(epochs, count).astype(int)


def test_shuffle_is_seeded_and_reshuffled_each_epoch(image_list):
    source, root, _ = image_list
    text = image_text(source, root, 1, "shuffle: true")
    a, top_a = make_data_layer(text, seed=5)
    b, top_b = make_data_layer(text, seed=5)
    c, top_c = make_data_layer(text, seed=6)
    orders = epoch_orders(a, top_a, 3)
    np.testing.assert_array_equal(orders, epoch_orders(b, top_b, 3))
    assert not np.array_equal(orders, epoch_orders(c, top_c, 3))
    for order in orders:
        assert sorted(order) == list(range(7))  # each epoch is a permutation of the list
    assert len({tuple(o) for o in orders}) > 1  # and a new one each time
    for layer in (a, b, c):
        layer.close()


def test_shuffled_state_resumes_the_same_batches(image_list):
    source, root, _ = image_list
    text = image_text(source, root, 3, "shuffle: true", "crop_size: 4 mirror: true")
    a, top_a = make_data_layer(text, seed=1)
    for _ in range(4):  # 12 images: into the second epoch
        forward(a, top_a)
    state = a.get_state()
    assert (state["position"]["epoch"], state["position"]["index"]) == (1, 5)
    expected = [forward(a, top_a) for _ in range(5)]
    b, top_b = make_data_layer(text, seed=2)
    b.set_state(state)
    for data, label in expected:
        got = forward(b, top_b)
        np.testing.assert_array_equal(got[0], data)
        np.testing.assert_array_equal(got[1], label)
    a.close()
    b.close()


def setup_error(text):
    with pytest.raises(NetError) as info:
        make_data_layer(text)
    assert str(info.value).startswith("layer 'images' (ImageData): ")
    return str(info.value)


def test_missing_image_names_the_line(image_list, tmp_path):
    source, root, _ = image_list
    with open(source, "a") as f:
        f.write("\nmissing.png 1\n")
    message = setup_error(image_text(source, root, 2))
    assert f"{source} line 9: {root}missing.png: no such image file" in message


def test_undecodable_image_names_the_line(image_list):
    source, root, names = image_list
    with open(root + names[4], "wb") as f:
        f.write(b"not a png")
    layer, top = make_data_layer(image_text(source, root, 2))
    forward(layer, top)
    forward(layer, top)
    with pytest.raises(NetError, match=f"{source} line 5: .*im4.png: the image does not decode"):
        forward(layer, top)
    layer.close()


def test_list_and_parameter_errors(tmp_path, image_list):
    source, root, _ = image_list
    bad = tmp_path / "bad.txt"
    bad.write_text("im0.png 0\nim1.png\n")
    assert f"{bad} line 2: 'im1.png' has no label" in setup_error(image_text(bad, root, 1))
    bad.write_text("im0.png zero\n")
    assert "the label 'zero' is not an integer" in setup_error(image_text(bad, root, 1))
    bad.write_text("\n")
    assert "the image list is empty" in setup_error(image_text(bad, root, 1))
    assert "no such image list file" in setup_error(image_text(tmp_path / "none", root, 1))
    assert "set both to resize, or neither" in setup_error(
        image_text(source, root, 1, "new_height: 4"))
    different = tmp_path / "different.txt"
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "big.png")
    different.write_text(f"{root}im0.png 0\n{tmp_path}/big.png 1\n")
    layer, top = make_data_layer(image_text(different, "", 2))
    with pytest.raises(NetError, match="line 2 is 3×9×9, the first was 3×6×8"):
        forward(layer, top)
    layer.close()


@pytest.mark.timeout(120)
def test_k_iterations_and_resume_equal_n_straight_shuffled(image_list, tmp_path):
    from google.protobuf import text_format

    from caffelite.proto import caffelite_pb2 as pb
    from caffelite.solvers import Solver

    source, root, _ = image_list

    def solver(name):
        net = text_format.Parse(image_text(source, root, 3, "shuffle: true",
                                           "crop_size: 5 mirror: true scale: 0.004"),
                                pb.LayerParameter())
        param = pb.SolverParameter(base_lr=0.1, momentum=0.9, lr_policy="fixed", max_iter=99,
                                   random_seed=3, display=0, snapshot_after_train=False,
                                   snapshot_prefix=str(tmp_path / name / "s"))
        param.net_param.layer.add().CopyFrom(net)
        param.net_param.layer.add().CopyFrom(text_format.Parse(
            'name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param '
            '{ num_output: 7 weight_filler { type: "xavier" } }', pb.LayerParameter()))
        param.net_param.layer.add().CopyFrom(text_format.Parse(
            'name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"',
            pb.LayerParameter()))
        return Solver(param)

    # 24 images: past three reshuffles
    straight, _, resumed = check_exact_resume(solver, total=8, first=3)
    np.testing.assert_array_equal(straight.net.blobs["label"].data,
                                  resumed.net.blobs["label"].data)


def test_images_of_different_sizes_are_cropped_each_from_its_own(tmp_path, rng):
    sizes = [(6, 8), (9, 7), (5, 5), (12, 6)]
    lines = []
    for k, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / f"{k}.png")
        lines.append(f"{k}.png {k}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    for phase in (0, 1):  # TRAIN, TEST
        layer, top = make_data_layer(image_text(tmp_path / "list.txt", f"{tmp_path}/", 4, "",
                                                "crop_size: 5 mirror: true mean_value: 3"),
                                     phase=phase)
        data, _ = forward(layer, top)
        h_off, w_off, flip = layer.last_plan
        for k, (h, w) in enumerate(sizes):
            assert 0 <= h_off[k] <= h - 5 and 0 <= w_off[k] <= w - 5
            if phase == 1:
                assert (h_off[k], w_off[k]) == ((h - 5) // 2, (w - 5) // 2)
            expected = caffe_transform(cv2_read(f"{tmp_path}/{k}.png"), h_off[k], w_off[k],
                                       flip[k], 5, np.float32(3))
            np.testing.assert_array_equal(data[k], expected)
        layer.close()
    Image.fromarray(np.zeros((4, 9, 3), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "list.txt").write_text("".join(lines) + "small.png 1\n")
    layer, top = make_data_layer(image_text(tmp_path / "list.txt", f"{tmp_path}/", 5, "",
                                            "crop_size: 5"))
    with pytest.raises(NetError, match="line 5 is 3×4×9, the first was 3×6×8 .* at least the "
                                       "crop 5×5"):
        forward(layer, top)
    layer.close()
