"""RNN, LSTM and LSTMUnit exported unrolled: cont resets mid-sequence, x_static and
expose_hidden, against onnxruntime."""
import numpy as np
import pytest
from onnx_check import check, layer_net


def one(kind, params="", bottoms=("x",), tops=("t",), name="l"):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{kind}" {b} {t} {params} }}'


RECURRENT = 'recurrent_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } ' \
            'bias_filler { type: "gaussian" std: 0.5 } %s }'


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
@pytest.mark.parametrize("variant", ["plain", "static", "expose_hidden"])
def test_recurrent_unrolled(kind, variant, rng):
    """cont = 0 at t = 0 and again at t = 3 (a new sequence mid-batch), T = 5, N = 3."""
    states = 2 if kind == "LSTM" else 1
    bottoms, shapes = ["x", "y"], [(5, 3, 2, 3), (5, 3)]
    if variant == "static":
        bottoms.append("z")
        shapes.append((3, 4))
    tops = ["h"]
    if variant == "expose_hidden":
        bottoms += ["z", "u"][:states]
        shapes += [(1, 3, 4)] * states
        tops += ["hT", "cT"][:states]
    extra = "expose_hidden: true" if variant == "expose_hidden" else ""
    net = layer_net(one(kind, RECURRENT % extra, bottoms, tops), shapes, rng)
    inputs = {name: rng.standard_normal(net.blobs[name].shape).astype(np.float32)
              for name in net.inputs}
    cont = np.ones((5, 3), np.float32)
    cont[0] = cont[3] = 0
    cont[3, 1] = 1
    inputs["y"] = cont
    model = check(net, inputs, static_batch=True)  # (T, N, ...): the batch is not axis 0
    assert [o.name for o in model.graph.output] == tops


def test_lstm_unit(rng):
    inputs = {"x": rng.standard_normal((1, 3, 4)).astype(np.float32),
              "y": rng.standard_normal((1, 3, 16)).astype(np.float32),
              "z": np.array([[1, 0, 1]], np.float32)}
    net = layer_net(one("LSTMUnit", "", ("x", "y", "z"), ("c", "h")),
                    [(1, 3, 4), (1, 3, 16), (1, 3)], rng)
    check(net, inputs, static_batch=True)
