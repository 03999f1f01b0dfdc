"""Pooling, Convolution, Deconvolution, Im2col, SPP and LRN exported with Caffe's exact sizes
and values: odd sizes with the ceil rule, AVE at padded borders, groups, dilation."""
import itertools

import numpy as np
import pytest
from onnx_check import check_layer

POOL_CASES = [(h, k, s, p) for h, k, s, p in itertools.product((5, 6, 7), (1, 2, 3), (1, 2, 3),
                                                               (0, 1, 2)) if p < k]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("h,k,s,p", POOL_CASES)
def test_pooling_ceil_rule_and_padded_borders(method, h, k, s, p, rng):
    """Every kernel/stride/pad on odd and even sizes (W = H + 2): the ceil rule, the last
    window clipped into the image, AVE dividing by the window clipped to the padded input,
    and (pad 0, stride > kernel) Caffe's window lying past the image."""
    snippet = f'''layer {{ name: "pool" type: "Pooling" bottom: "x" top: "p"
        pooling_param {{ pool: {method} kernel_size: {k} stride: {s} pad: {p} }} }}'''
    with np.errstate(invalid="ignore", divide="ignore"):
        check_layer(snippet, [(2, 3, h, h + 2)], rng)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling_rectangular_windows_and_floor_rounding(method, rng):
    for params in ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0",
                   "kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR",
                   "kernel_size: 2 stride: 2 round_mode: FLOOR"):
        snippet = f'''layer {{ name: "pool" type: "Pooling" bottom: "x" top: "p"
            pooling_param {{ pool: {method} {params} }} }}'''
        check_layer(snippet, [(2, 2, 9, 8)], rng)


@pytest.mark.parametrize("method", ["MAX", "AVE", "STOCHASTIC"])
def test_global_pooling(method, rng):
    snippet = f'''layer {{ name: "pool" type: "Pooling" bottom: "x" top: "p"
        pooling_param {{ pool: {method} global_pooling: true }} }}'''
    x = {"x": rng.uniform(0.1, 1, (2, 3, 5, 7)).astype(np.float32)}  # STOCHASTIC: a >= 0
    check_layer(snippet, [(2, 3, 5, 7)], rng, inputs=x)


def test_stochastic_pooling_at_test_time(rng):
    snippet = '''layer { name: "pool" type: "Pooling" bottom: "x" top: "p"
        pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 } }'''
    x = {"x": rng.uniform(0.1, 1, (2, 3, 8, 7)).astype(np.float32)}
    check_layer(snippet, [(2, 3, 8, 7)], rng, inputs=x)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("height", [1, 3])
def test_spp(method, height, rng):
    snippet = f'''layer {{ name: "spp" type: "SPP" bottom: "x" top: "s"
        spp_param {{ pool: {method} pyramid_height: {height} }} }}'''
    check_layer(snippet, [(2, 3, 9, 7)], rng)


CONV_CASES = {
    "groups": "num_output: 6 kernel_size: 3 group: 2 pad: 1",
    "dilation": "num_output: 4 kernel_size: 3 dilation: 2 pad: 2 stride: 2",
    "rectangular": "num_output: 5 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 0 stride_h: 2 "
                   "stride_w: 1",
    "depthwise_no_bias": "num_output: 4 kernel_size: 3 group: 4 bias_term: false",
    "stride_3": "num_output: 3 kernel_size: 2 stride: 3",
}


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_convolution_and_deconvolution(kind, case, rng):
    snippet = f'''layer {{ name: "conv" type: "{kind}" bottom: "x" top: "c"
        convolution_param {{ {CONV_CASES[case]} }} }}'''
    check_layer(snippet, [(2, 4, 7, 9)], rng)


def test_deconvolution_asymmetric_output_sizes(rng):
    """The FCN upsampling shape (kernel 4, stride 2, pad 1) on an odd input, and a
    rectangular kernel: Caffe's s·(in−1) + d·(k−1) + 1 − 2·pad."""
    for params, out in (("num_output: 3 kernel_size: 4 stride: 2 pad: 1", (10, 14)),
                        ("num_output: 2 kernel_h: 3 kernel_w: 5 stride_h: 3 stride_w: 2 "
                         "pad_h: 1 dilation: 2", (15, 21))):
        snippet = f'''layer {{ name: "up" type: "Deconvolution" bottom: "x" top: "u"
            convolution_param {{ {params} }} }}'''
        model = check_layer(snippet, [(2, 4, 5, 7)], rng)
        dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim[2:]]
        assert tuple(dims) == out


def test_convolution_with_two_bottoms_and_3d(rng):
    two = '''layer { name: "conv" type: "Convolution" bottom: "x" bottom: "y" top: "a"
        top: "b" convolution_param { num_output: 3 kernel_size: 3 } }'''
    check_layer(two, [(2, 2, 6, 6), (2, 2, 6, 6)], rng)
    three_d = '''layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
        convolution_param { num_output: 3 kernel_size: 2 stride: 2 pad: 1 } }'''
    check_layer(three_d, [(2, 2, 5, 6, 7)], rng)


def test_im2col(rng):
    snippet = '''layer { name: "cols" type: "Im2col" bottom: "x" top: "c"
        convolution_param { kernel_h: 3 kernel_w: 2 stride: 2 pad: 1 dilation: 1 } }'''
    check_layer(snippet, [(2, 3, 7, 6)], rng)


@pytest.mark.parametrize("region,params", [
    ("ACROSS_CHANNELS", "local_size: 5 alpha: 0.3 beta: 0.75 k: 2"),
    ("ACROSS_CHANNELS", "local_size: 3"),
    ("WITHIN_CHANNEL", "local_size: 3 alpha: 0.4 beta: 0.6 k: 5"),  # k unused, as in Caffe
    ("WITHIN_CHANNEL", "local_size: 5"),
])
def test_lrn_both_regions(region, params, rng):
    snippet = f'''layer {{ name: "norm" type: "LRN" bottom: "x" top: "n"
        lrn_param {{ norm_region: {region} {params} }} }}'''
    x = {"x": (3 * rng.standard_normal((2, 7, 6, 5))).astype(np.float32)}
    check_layer(snippet, [(2, 7, 6, 5)], rng, inputs=x)
