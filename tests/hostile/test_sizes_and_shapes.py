"""Sizes that cannot be allocated, 0-D and empty blobs, and narrow inputs: a clear NetError
naming the layer, or the result Caffe computes."""
import numpy as np
import pytest

from caffelite.blob import Blob, BlobSizeError, check_blob_size
from caffelite.errors import NetError
from caffelite.formats.config import parse_net_text
from caffelite.net import Net


def _input(*dims, top="x"):
    shape = " ".join(f"dim: {d}" for d in dims)
    return (f'layer {{ name: "in" type: "Input" top: "{top}" '
            f'input_param {{ shape {{ {shape} }} }} }}\n')


def _build(text, phase="TRAIN"):
    return Net(parse_net_text(text), phase=phase)


TOO_BIG = {
    "DummyData": ('layer { name: "bad" type: "DummyData" top: "x" '
                  'dummy_data_param { shape { dim: 1000000 dim: 1000000 } } }',
                  r"\(1000000, 1000000\) would hold 1000000000000 values \(3\.6 TiB\)"),
    "Data": ('layer { name: "bad" type: "Data" top: "x" top: "y" '
             'data_param { source: "caffelite://mnist10k/train" batch_size: 2147483647 } }',
             r"\(2147483647, 1, 28, 28\) would hold \d+ values"),
    "Convolution": (_input(1, 1, 4, 4) + 'layer { name: "bad" type: "Convolution" '
                    'bottom: "x" top: "y" convolution_param { num_output: 2 kernel_size: 3 '
                    'pad: 100000 } }', r"\(1, 2, 200002, 200002\) would hold 80001600008 "
                    r"values \(298\.0 GiB\)"),
    "InnerProduct": (_input(1, 3, 4, 4) + 'layer { name: "bad" type: "InnerProduct" '
                     'bottom: "x" top: "y" inner_product_param { num_output: 4294967295 } }',
                     r"\(4294967295, 48\) would hold"),
    "Tile": (_input(1, 3, 4, 4) + 'layer { name: "bad" type: "Tile" bottom: "x" top: "y" '
             'tile_param { tiles: 2147483647 } }', r"\(1, 6442450941, 4, 4\)"),
    "Input": ('layer { name: "bad" type: "Input" top: "x" input_param { shape { dim: 1 '
              'dim: 3 dim: 1000000 dim: 1000000 } } }', r"\(1, 3, 1000000, 1000000\)"),
}


@pytest.mark.parametrize("kind", sorted(TOO_BIG))
def test_sizes_that_cannot_be_allocated_name_layer_shape_and_bytes(kind):
    text, detail = TOO_BIG[kind]
    layer_type = text.split('name: "bad" type: "')[1].split('"')[0]
    with pytest.raises(NetError, match=rf"layer 'bad' \({layer_type}\): a blob of shape "
                                       rf"{detail}.*limit of 2\^31-1"):
        _build(text)


def test_legacy_input_dim_too_big():
    text = 'input: "x" input_dim: 1 input_dim: 3 input_dim: 1000000 input_dim: 1000000'
    with pytest.raises(NetError, match=r"\(Input\): a blob of shape \(1, 3, 1000000, 1000000\)"):
        _build(text)


def test_memory_limit_names_the_bytes(monkeypatch):
    monkeypatch.setenv("CAFFELITE_MAX_BLOB_BYTES", "1000000")
    text = 'layer { name: "d" type: "DummyData" top: "x" dummy_data_param { shape { dim: 1000 ' \
           'dim: 1000 } } }'
    with pytest.raises(NetError, match=r"layer 'd' \(DummyData\): a blob of shape \(1000, 1000\) "
                                       r"would need 3\.8 MiB, more than the 976\.6 KiB allowed"):
        _build(text)
    with pytest.raises(BlobSizeError, match="negative dimension"):
        Blob((2, -1))
    check_blob_size((10, 10))  # small: fine


def test_memory_error_inside_a_layer_names_the_layer(monkeypatch):
    from caffelite.layers import inner_product

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.0 TiB")
    net = _build(_input(2, 3) + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                               'inner_product_param { num_output: 2 } }')
    monkeypatch.setattr(inner_product.InnerProductLayer, "forward", no_memory)
    with pytest.raises(NetError, match=r"layer 'ip' \(InnerProduct\): out of memory \(Unable to "
                                       r"allocate 1\.0 TiB\) with bottom shapes \(2, 3\)"):
        net.forward()


def test_pooling_stride_past_the_input_is_one_window_as_in_caffe():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 3, 5, 5)).astype(np.float32)
    for stride in (6, 7, 2**31 - 1, 2**32 - 1):
        net = _build(_input(1, 3, 5, 5) + 'layer { name: "p" type: "Pooling" bottom: "x" '
                     f'top: "y" pooling_param {{ kernel_size: 3 stride: {stride} pad: 1 }} }}')
        net.blobs["x"].data[...] = x
        net.forward()
        # out = ceil((5 + 2 - 3) / stride) + 1 = 2, but the second window would start at
        # stride - 1 >= 5 + 1 (past the image and its padding): Caffe drops it.
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
        np.testing.assert_array_equal(net.blobs["y"].data, padded[:, :, :3, :3].max(axis=(2, 3),
                                                                                    keepdims=True))


def test_lrn_window_wider_than_the_channels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 2, 2)).astype(np.float32)
    net = _build(_input(2, 3, 2, 2) + 'layer { name: "n" type: "LRN" bottom: "x" top: "y" '
                 'lrn_param { local_size: 4294967295 alpha: 3 beta: 0.75 k: 2 } }')
    net.blobs["x"].data[...] = x
    net.forward()
    # Every window covers all 3 channels: s = k + alpha/n · Σ_c x².
    scale = 2 + 3 / 4294967295 * (x.astype(np.float64) ** 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.blobs["y"].data, x * scale ** -0.75, rtol=1e-6)


def test_spp_pyramid_height_beyond_the_input():
    text = _input(1, 3, 4, 4) + ('layer { name: "s" type: "SPP" bottom: "x" top: "y" '
                                 'spp_param { pyramid_height: 2147483647 } }')
    with pytest.raises(NetError, match=r"layer 's' \(SPP\): input 4x4 is too small for pyramid "
                                       r"level 3 \(8x8 bins\)"):
        _build(text)


ZERO_D = 'layer { name: "p" type: "Parameter" top: "x" parameter_param { shape { } } }\n'


@pytest.mark.parametrize("layer_type,param,message", [
    ("ArgMax", "", r"bottom is a scalar \(0 axes\)"),
    ("Tile", "tile_param { tiles: 2 }", r"axis 1 is out of range for bottom shape \(\)"),
    ("BatchNorm", "", r"bottom is a scalar \(0 axes\)"),
    ("Slice", 'top: "z"', r"slice axis 1 is out of range for bottom shape \(\)"),
    ("Accuracy", 'bottom: "x"', r"accuracy_param.axis: axis 1 out of range for a 0-D blob"),
    ("BatchReindex", 'bottom: "x"', r"bottom\[0\] is a scalar"),
    ("MultinomialLogisticLoss", 'bottom: "x"', r"the prediction \(bottom 0\) is a scalar"),
    ("ContrastiveLoss", 'bottom: "x" bottom: "x"', r"the prediction \(bottom 0\) is a scalar"),
])
def test_scalar_bottoms(layer_type, param, message):
    text = ZERO_D + f'layer {{ name: "c" type: "{layer_type}" bottom: "x" top: "y" {param} }}'
    with pytest.raises(NetError, match=rf"layer 'c' \({layer_type}\): {message}"):
        _build(text)


@pytest.mark.parametrize("dims,layer,message", [
    ((2, 3, 0, 3), 'type: "SPP" spp_param { pyramid_height: 2 }', r"has an empty image \(0x3\)"),
    ((2, 0), 'type: "ArgMax"', r"top_k \(1\) exceeds the 0 values"),
    ((2, 0, 4, 4), 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 }',
     r"has 0 channels on axis 1"),
    ((2, 3, 0, 4), 'type: "Pooling" pooling_param { kernel_size: 2 pool: MAX }',
     r"kernel \(2, 2\) does not fit the input 0x4"),
    ((0, 3, 4), 'type: "BatchNorm" batch_norm_param { use_global_stats: false }',
     r"no values to compute batch statistics from"),
])
def test_empty_bottoms_that_cannot_compute(dims, layer, message):
    text = _input(*dims) + f'layer {{ name: "c" {layer} bottom: "x" top: "y" }}'
    with pytest.raises(NetError, match=rf"layer 'c' \(\w+\): .*{message}"):
        _build(text)


@pytest.mark.parametrize("dims,layer,top", [
    ((2, 0, 3), 'type: "Softmax"', (2, 0, 3)),
    ((2, 0, 3), 'type: "BatchNorm"', (2, 0, 3)),
    ((2, 0, 3), 'type: "BatchNorm" batch_norm_param { use_global_stats: true }', (2, 0, 3)),
    ((0, 3), 'type: "ArgMax"', (0, 1, 1)),
    ((2, 0, 4, 4), 'type: "Pooling" pooling_param { kernel_size: 2 pool: AVE }', (2, 0, 3, 3)),
    ((0, 3, 4, 4), 'type: "Pooling" pooling_param { kernel_size: 2 pool: MAX }', (0, 3, 3, 3)),
    ((0, 3, 4, 4), 'type: "Pooling" pooling_param { kernel_size: 2 pool: STOCHASTIC }',
     (0, 3, 3, 3)),
    ((0, 3, 4, 4), 'type: "SPP" spp_param { pyramid_height: 2 }', (0, 15)),
])
def test_empty_bottoms_give_empty_tops(dims, layer, top):
    net = _build("force_backward: true\n" + _input(*dims)
                 + f'layer {{ name: "c" {layer} bottom: "x" top: "y" }}')
    net.forward()
    if "ArgMax" not in layer:  # ArgMax has no gradient
        net.backward()
    assert net.blobs["y"].shape == top


@pytest.mark.parametrize("loss", ["EuclideanLoss", "HingeLoss", "MultinomialLogisticLoss",
                                  "SoftmaxWithLoss", "SigmoidCrossEntropyLoss"])
def test_a_loss_of_an_empty_batch(loss):
    text = ('layer { name: "in" type: "Input" top: "x" top: "l" input_param { '
            'shape { dim: 0 dim: 3 } shape { dim: 0 } } }\n'
            f'layer {{ name: "loss" type: "{loss}" bottom: "x" bottom: "l" top: "loss" }}')
    if loss in ("EuclideanLoss", "SigmoidCrossEntropyLoss"):
        text = text.replace("shape { dim: 0 } }", "shape { dim: 0 dim: 3 } }")
    with pytest.raises(NetError, match=rf"layer 'loss' \({loss}\): the prediction \(0, 3\) "
                                       r"is empty; a loss needs at least one value"):
        _build(text)


def _naive_deconv(x, w, b):
    """Transposed convolution, stride 1, pad 0: y[m, i + u, j + v] += x[c, i, j]·w[c, m, u, v]."""
    n, c, h, wd = x.shape
    _, m, kh, kw = w.shape
    y = np.zeros((n, m, h + kh - 1, wd + kw - 1))
    for i in range(h):
        for j in range(wd):
            y[:, :, i:i + kh, j:j + kw] += np.einsum("nc,cmuv->nmuv", x[:, :, i, j], w)
    return y + b[None, :, None, None]


def test_deconvolution_of_a_narrow_input():
    net = _build(_input(2, 3, 2, 2) + 'layer { name: "d" type: "Deconvolution" bottom: "x" '
                 'top: "y" convolution_param { num_output: 2 kernel_size: 3 weight_filler { '
                 'type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }')
    x = np.random.default_rng(2).normal(size=(2, 3, 2, 2)).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.forward()
    w, b = (blob.data.astype(np.float64) for blob in net.params["d"])
    expected = _naive_deconv(x.astype(np.float64), w, b)
    np.testing.assert_allclose(net.blobs["y"].data, expected, rtol=1e-5, atol=1e-5)
    torch = pytest.importorskip("torch")
    theirs = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(
        net.params["d"][0].data), torch.from_numpy(net.params["d"][1].data)).numpy()
    np.testing.assert_allclose(net.blobs["y"].data, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text,message", [
    (TOO_BIG["DummyData"][0], r"layer 'bad' \(DummyData\): a blob of shape \(1000000, 1000000\)"),
    (_input(2, 3) + 'layer { name: "t" type: "Tile" bottom: "x" top: "x" tile_param { tiles: 2 '
     '} }', r"layer 't' \(Tile\): Tile does not allow in-place computation"),
])
def test_cli_reports_one_line(tmp_path, text, message):
    import re

    from click.testing import CliRunner

    from caffelite.cli import main

    path = tmp_path / "net.prototxt"
    path.write_text(text)
    result = CliRunner().invoke(main, ["time", "--model", str(path), "--iterations", "1"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("caffelite: error:"), result.output
    assert re.search(message, errors[0]), errors[0]
    assert "Traceback" not in result.output
