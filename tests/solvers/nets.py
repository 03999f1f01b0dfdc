"""Small nets and solver parameters shared by the solver tests."""
import logging
import re

import numpy as np
from google.protobuf import text_format

from caffelite.proto import caffelite_pb2 as pb

FILLERS = ("weight_filler { type: 'gaussian' std: 1.0 } "
           "bias_filler { type: 'gaussian' std: 1.0 }")


def write_regression_data(path, x, y):
    """An .npz a Data layer reads: images (N, 1, 1, D) and float targets as labels."""
    np.savez(path, images=np.asarray(x).reshape(len(x), 1, 1, -1), labels=np.asarray(y))
    return str(path)


def least_squares_net(source, batch_size, share=False):
    """Caffe's least-squares net (test_gradient_based_solver.cpp): data -> InnerProduct(1
    output, params named 'weights' and 'bias') -> EuclideanLoss. `share` slices the batch in
    two InnerProducts sharing those params, then concatenates them."""
    head = f"""
      name: "LeastSquares"
      layer {{ name: "data" type: "Data" top: "data" top: "targets"
               data_param {{ source: "{source}" batch_size: {batch_size} }} }}
      layer {{ name: "targets2d" type: "Reshape" bottom: "targets" top: "targets2d"
               reshape_param {{ shape {{ dim: -1 dim: 1 }} }} }}"""

    def ip(name, bottom):
        return f"""
      layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}"
               param {{ name: "weights" }} param {{ name: "bias" }}
               inner_product_param {{ num_output: 1 {FILLERS} }} }}"""

    if share:
        body = """
      layer { name: "slice" type: "Slice" bottom: "data" top: "data1" top: "data2"
              slice_param { axis: 0 } }"""
        body += ip("innerprod1", "data1") + ip("innerprod2", "data2") + """
      layer { name: "concat" type: "Concat" bottom: "innerprod1" bottom: "innerprod2"
              top: "innerprod" concat_param { axis: 0 } }"""
    else:
        body = ip("innerprod", "data")
    tail = """
      layer { name: "loss" type: "EuclideanLoss" bottom: "innerprod" bottom: "targets2d"
              top: "loss" }"""
    return text_format.Parse(head + body + tail, pb.NetParameter())


def solver_param(net_param=None, **fields):
    """A SolverParameter with lr_policy fixed, no display, no snapshots unless asked."""
    values = {"lr_policy": "fixed", "base_lr": 0.01, "max_iter": 100, "random_seed": 1701,
              "snapshot_after_train": False, "display": 0}
    values.update(fields)
    repeated = {k: values.pop(k) for k in ("test_iter", "stepvalue") if k in values}
    param = pb.SolverParameter(**values)
    for key, items in repeated.items():
        getattr(param, key).extend(items)
    if net_param is not None:
        param.net_param.CopyFrom(net_param)
    return param


def mnist_net_text(batch_size=8, hidden=16, dropout=True):
    """A small MLP on the bundled MNIST: Data (train/test), IP, ReLU, Dropout, IP, loss,
    accuracy in TEST. Exercises the data cursor and the net's random stream."""
    drop = """
      layer { name: "drop1" type: "Dropout" bottom: "ip1" top: "ip1"
              dropout_param { dropout_ratio: 0.5 } }""" if dropout else ""
    return f"""
      name: "MnistMLP"
      layer {{ name: "mnist" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
               transform_param {{ scale: 0.00390625 }}
               data_param {{ source: "caffelite://mnist10k/train" batch_size: {batch_size} }} }}
      layer {{ name: "mnist" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
               transform_param {{ scale: 0.00390625 }}
               data_param {{ source: "caffelite://mnist10k/test" batch_size: 20 }} }}
      layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
               param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
               inner_product_param {{ num_output: {hidden} weight_filler {{ type: "xavier" }} }} }}
      layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}{drop}
      layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
               param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
               inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
      layer {{ name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
               include {{ phase: TEST }} }}
      layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
    """


def mnist_net(**kwargs):
    return text_format.Parse(mnist_net_text(**kwargs), pb.NetParameter())


# Per-solver hyper-parameters as Caffe's tests and examples set them.
SOLVER_SETTINGS = {
    "SGD": {"momentum": 0.9},
    "Nesterov": {"momentum": 0.9},
    "AdaGrad": {},
    "RMSProp": {"rms_decay": 0.95},
    "AdaDelta": {"momentum": 0.95, "delta": 1e-6},
    "Adam": {"momentum": 0.9, "momentum2": 0.999},
}
SOLVER_TYPES = list(SOLVER_SETTINGS)


def params_of(solver):
    return [p.data.copy() for p in solver.net.learnable_params]


def messages(caplog):
    """The text of every record the 'caffelite' logger emitted."""
    return [r.getMessage() for r in caplog.records if r.name == "caffelite"]


# The regular expressions of Caffe's tools/extra/parse_log.py, which must read our logs.
PARSE_LOG_ITERATION = re.compile(r"Iteration (\d+)")
PARSE_LOG_TRAIN = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
PARSE_LOG_TEST = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
PARSE_LOG_LR = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def capture(caplog):
    caplog.set_level(logging.INFO, logger="caffelite")
    return caplog
