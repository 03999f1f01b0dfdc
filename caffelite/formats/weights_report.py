"""What a weights load did not cover, said out loud: learnable layers of the net that got
nothing from the file (a truncated .caffemodel loads without a parse error and would leave
them at their filler values), file layers that matched no layer of the net, and weights that
are NaN or infinite."""
import logging

import numpy as np

from ..errors import WeightsError

logger = logging.getLogger("caffelite")


def _names(names, limit=8):
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def uncovered_layers(net, copied):
    """Names of the net's layers with parameters that are not in `copied`, in net order."""
    return [layer.name for layer in net.layers if len(layer.blobs) and layer.name not in copied]


def report_load(net, net_param, copied, source, strict=False):
    """After a load: error (strict) or warn about learnable layers that got nothing; warn
    about file layers with weights that matched no layer of the net."""
    missing = uncovered_layers(net, copied)
    if missing and strict:
        raise WeightsError(missing_message(net, missing, source) + "; load a file that has "
                           "them, or rename them in the net to learn them from scratch")
    if missing:
        logger.warning("%s; they keep their initial (filler) values",
                       missing_message(net, missing, source))
    report_unmatched(net, net_param, source)


def report_unmatched(net, net_param, source):
    """Warn about the file's layers with weights that match no layer of the net."""
    names = set(net.layer_names) if hasattr(net, "layer_names") else set()
    unmatched = [layer.name for layer in net_param.layer
                 if len(layer.blobs) and layer.name not in names]
    if unmatched:
        logger.warning("%s: %d layer(s) of the file with weights match no layer of net '%s' "
                       "and were skipped: %s", source, len(unmatched), net.name,
                       _names(unmatched))


def missing_message(net, missing, source):
    return (f"{source}: {len(missing)} learnable layer(s) of net '{net.name}' got no weights "
            f"from the file (truncated, or weights of another net?): {_names(missing)}")


def warn_nonfinite(array, source, what):
    """Warn when an array loaded from a file holds NaN or infinite values; True if it does."""
    finite = np.isfinite(array)
    if finite.all():
        return False
    bad = int(array.size - np.count_nonzero(finite))
    logger.warning("%s: %s holds %d NaN/infinite value(s) of %d; training or scoring with it "
                   "gives NaN", source, what, bad, array.size)
    return True
