"""`caffelite test`: Caffe's `caffe test` — score a model: per-batch outputs, then their means."""
import logging
import os

import click
import numpy as np

from ..errors import ConfigError, WeightsError
from ..runtime import to_numpy
from .train import caffe_logging, split_list

logger = logging.getLogger("caffelite")


def _g(value):
    """A number as Caffe's ostream prints it (6 significant digits)."""
    return f"{float(value):g}"


def loss_weight(net, name):
    weights = net.blob_loss_weights
    if hasattr(weights, "get"):
        return float(weights.get(name, 0.0))
    return float(weights[list(net.blobs).index(name)])


def score(net, iterations):
    """Caffe's test(): `Batch i, name = v` per output element, then `Loss: L` and each mean
    `name = m (* w = l loss)`. Returns ({name: mean array}, mean loss)."""
    totals, loss = {}, 0.0
    for i in range(iterations):
        loss += net.forward_prefilled()
        for name in net.outputs:
            values = to_numpy(net.blobs[name].data).astype(np.float64).ravel()
            for value in values:
                logger.info("Batch %d, %s = %s", i, name, _g(value))
            totals[name] = totals[name] + values if name in totals else values
    loss /= iterations
    logger.info("Loss: %s", _g(loss))
    means = {name: total / iterations for name, total in totals.items()}
    for name, mean in means.items():
        weight = loss_weight(net, name)
        for value in mean:
            suffix = f" (* {_g(weight)} = {_g(weight * value)} loss)" if weight else ""
            logger.info("%s = %s%s", name, _g(value), suffix)
    return means, loss


def load_weights(net, paths):
    """The --weights files in order. Scoring a model some of whose layers got no trained
    weights (a truncated .caffemodel, another net's weights) is an error, not a score of
    random filler values."""
    from ..formats.binary import copy_trained_layers, load_caffemodel
    from ..formats.weights_report import missing_message, report_unmatched, uncovered_layers

    if len(paths) == 1:
        net.copy_from(paths[0], strict=True)
        return
    covered = set()
    for path in paths:
        param = load_caffemodel(path)
        covered |= copy_trained_layers(net, param, source=path, report=False)
        report_unmatched(net, param, path)
    missing = uncovered_layers(net, covered)
    if missing:
        raise WeightsError(missing_message(net, missing, ",".join(paths)))


@click.command(name="test")
@click.option("--model", required=True, metavar="NET",
              help="The net (.prototxt/.yaml/.json) to score, built in --phase.")
@click.option("--weights", required=True, metavar="W.caffemodel[,W2]",
              help="Trained weights, loaded by layer name.")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True,
              help="Number of batches to score.")
@click.option("--phase", type=click.Choice(["TEST", "TRAIN"], case_sensitive=False),
              default="TEST", show_default=True, help="The net phase to build.")
@click.option("--level", type=int, default=0, help="The net state's level.")
@click.option("--stage", metavar="S1[,S2]", help="The net state's stages.")
@click.option("--log", "log_file", metavar="FILE", help="Also append the log to FILE.")
def command(model, weights, iterations, phase, level, stage, log_file):
    """Score a trained model: run ITERATIONS forward passes and log the mean outputs."""
    if not os.path.isfile(model):
        raise ConfigError(f"--model {model}: no such net config file")
    paths = split_list(weights)
    for path in paths:
        if not os.path.isfile(path):
            raise ConfigError(f"--weights {path}: no such file")
    from ..net import Net
    from ..proto import caffelite_pb2 as pb

    with caffe_logging(log_file):
        logger.info("Use CPU.")
        net = Net(model, phase=getattr(pb, phase.upper()), level=level,
                  stages=tuple(split_list(stage)))
        load_weights(net, paths)
        logger.info("Running for %d iterations.", iterations)
        score(net, iterations)
