"""One rule for in-place use: a layer type declares `allow_in_place`; the Net refuses the rest."""
import numpy as np
import pytest

import caffelite
from caffelite.errors import NetError
from caffelite.formats.config import parse_net_text
from caffelite.layer import Layer
from caffelite.net import Net
from caffelite.registry import LAYERS

# Every type that allows in-place use, with parameters exercising it: in place, the forward
# and every gradient must equal the out-of-place result.
ALLOWED = {
    "ReLU": "relu_param { negative_slope: 0.1 }", "Sigmoid": "", "TanH": "", "BNLL": "",
    "Dropout": "", "ELU": "elu_param { alpha: 0.5 }", "Exp": "exp_param { base: 2 }",
    "Log": "log_param { shift: 5 }", "Power": "power_param { power: 2 shift: 1 }",
    "PReLU": "", "Clip": "clip_param { min: -0.5 max: 0.5 }", "Swish": "", "LRN": "",
    "MVN": "", "Softmax": "", "BatchNorm": "", "Scale": "scale_param { bias_term: true }",
    "Bias": "", "Scale two bottoms": 'bottom: "z" scale_param { axis: 0 }',
    "Bias two bottoms": 'bottom: "z" bias_param { axis: 0 }',
    "Eltwise": 'bottom: "z" eltwise_param { operation: SUM coeff: 2 coeff: -1 }',
    "Eltwise MAX": 'bottom: "z" eltwise_param { operation: MAX }',
}


def _net(kind, params, in_place):
    layer_type = kind.split()[0]
    top = "x" if in_place else "y"
    text = f"""force_backward: true
layer {{ name: "in" type: "Input" top: "x" top: "z"
  input_param {{ shape {{ dim: 2 dim: 3 dim: 4 dim: 4 }}
                shape {{ dim: 2 dim: 3 dim: 4 dim: 4 }} }} }}
layer {{ name: "c" type: "{layer_type}" bottom: "x" top: "{top}" {params} }}
layer {{ name: "sq" type: "Power" bottom: "{top}" top: "sq" power_param {{ power: 2 }} }}
layer {{ name: "loss" type: "Reduction" bottom: "sq" top: "loss" loss_weight: 1 }}"""
    caffelite.set_random_seed(7)
    return Net(parse_net_text(text), phase="TRAIN")


@pytest.mark.parametrize("kind", sorted(ALLOWED))
def test_in_place_equals_out_of_place(kind):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4, 4)).astype(np.float32) + 0.3
    z = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    results = []
    for in_place in (False, True):
        net = _net(kind, ALLOWED[kind], in_place)
        net.blobs["x"].data[...] = x
        net.blobs["z"].data[...] = z
        net.forward()
        out = net.blobs["x" if in_place else "y"].data.copy()
        net.backward()
        grads = [net.blobs["x"].diff.copy(), net.blobs["z"].diff.copy()]
        grads += [b.diff.copy() for b in net.layers[1].blobs]
        results.append((out, grads))
    (out, grads), (out_ip, grads_ip) = results
    np.testing.assert_allclose(out_ip, out, rtol=1e-5, atol=1e-6)
    for g_ip, g in zip(grads_ip, grads):
        np.testing.assert_allclose(g_ip, g, rtol=1e-4, atol=1e-5)


def test_every_type_declares_in_place_use_consistently():
    from caffelite import layers  # noqa: F401  (registers the types)

    allowed = {name for name in LAYERS.names() if LAYERS.get(name).allow_in_place is True}
    assert Layer.allow_in_place is False
    # Eltwise decides by its operation (a property); Python layers are the user's code.
    expected = {kind.split()[0] for kind in ALLOWED} - {"Eltwise"} | {"Threshold", "Python"}
    assert allowed == expected


_INPUT = ('layer { name: "in" type: "Input" top: "x" top: "l" top: "w" '
          'input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } shape { dim: 2 dim: 3 } } }\n')
REFUSED = {
    "HingeLoss": 'bottom: "x" bottom: "l" top: "x"',
    "MultinomialLogisticLoss": 'bottom: "x" bottom: "l" top: "x"',
    "ContrastiveLoss": 'bottom: "x" bottom: "w" bottom: "l" top: "x"',
    "InfogainLoss": 'bottom: "x" bottom: "l" top: "x" '
                    'infogain_loss_param { axis: 1 }',
    "SoftmaxWithLoss": 'bottom: "x" bottom: "l" top: "x" softmax_param { axis: 0 }',
    "Tile": 'bottom: "x" top: "x" tile_param { tiles: 2 }',
    "Embed": 'bottom: "l" top: "l" embed_param { num_output: 3 input_dim: 5 }',
    "Concat": 'bottom: "x" bottom: "w" top: "x"',
    "Im2col": 'bottom: "x" top: "x" convolution_param { kernel_size: 1 }',
    "Slice": 'bottom: "x" top: "x" top: "s"',
    "Filter": 'bottom: "x" bottom: "l" top: "x"',
    "AbsVal": 'bottom: "x" top: "x"',
    "Eltwise": 'bottom: "x" bottom: "w" top: "x" eltwise_param { operation: PROD }',
    "Flatten": 'bottom: "x" top: "x"',
    "Split": 'bottom: "x" top: "x" top: "x2"',
}


@pytest.mark.parametrize("layer_type", sorted(REFUSED))
def test_in_place_is_refused_at_build_time(layer_type):
    text = _INPUT + f'layer {{ name: "bad" type: "{layer_type}" {REFUSED[layer_type]} }}'
    with pytest.raises(NetError, match=rf"layer 'bad' \({layer_type}\): {layer_type} does not "
                                       r"allow in-place computation \(top '\w+' is also bottom "
                                       r"0\); give the top its own name"):
        Net(parse_net_text(text), phase="TRAIN")
