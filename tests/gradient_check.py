"""The one gradient checker (Caffe's GradientChecker): objective ½Σtop², central differences.

Usage:
    layer = make_layer("type: 'ReLU' relu_param { negative_slope: 0.1 }")
    check_gradient(layer, [blob_from(x)], [Blob()], kink=0.0, kink_range=0.01)
"""
import numpy as np
from google.protobuf import text_format

import caffelite.layers  # noqa: F401  (registers the layer types)
from caffelite.blob import Blob
from caffelite.layer import TRAIN
from caffelite.proto import caffelite_pb2 as pb
from caffelite.registry import LAYERS

SEED = 1701


def make_layer(text, phase=TRAIN, dtype=np.float64, seed=SEED):
    """Instantiate a layer from LayerParameter prototxt text (name defaults to 'test')."""
    param = text_format.Parse(text, pb.LayerParameter())
    if not param.name:
        param.name = "test"
    cls = LAYERS.get(param.type)
    return cls(param, phase=phase, dtype=dtype, rng=np.random.default_rng(seed))


def blob_from(array, dtype=np.float64):
    blob = Blob(np.shape(array), dtype=dtype)
    blob.data[...] = array
    return blob


def _objective_and_seed_diffs(layer, bottom, top, top_id, top_data_id):
    """Forward with the RNG reset; set top diffs for ½Σtop² (or one element's 2·½·y²)."""
    layer.rng = np.random.default_rng(SEED)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    loss = 0.0
    for i, blob in enumerate(top):
        if top_id is None:
            loss += 0.5 * float((blob.data.astype(np.float64) ** 2).sum())
            blob.diff[...] = blob.data
        else:
            blob.diff[...] = 0
            if i == top_id:
                value = float(blob.data.flat[top_data_id])
                loss = 0.5 * value * value
                blob.diff.flat[top_data_id] = value
    return loss


def check_gradient(layer, bottom, top, check_bottom=None, step=1e-2, threshold=1e-3,
                   kink=0.0, kink_range=-1.0, top_id=None, top_data_id=None, setup=True):
    """Check d(objective)/d(bottom & param) of `layer` numerically; raises AssertionError.

    check_bottom: indices of bottoms to check (default all); params are always checked.
    top_id/top_data_id: objective on one top element (Caffe's single-output mode).
    """
    if setup:
        layer.setup(bottom, top)
    if check_bottom is None:
        check_bottom = range(len(bottom))
    blobs = [bottom[i] for i in check_bottom] + list(layer.blobs)
    for p in layer.blobs:
        p.diff[...] = 0
    _objective_and_seed_diffs(layer, bottom, top, top_id, top_data_id)
    propagate_down = [i in check_bottom for i in range(len(bottom))]
    layer.backward(top, propagate_down, bottom)
    analytic = [b.diff.astype(np.float64).copy() for b in blobs]
    names = [f"bottom[{i}]" for i in check_bottom]
    names += [f"param[{j}]" for j in range(len(layer.blobs))]
    for blob, grad, name in zip(blobs, analytic, names):
        flat = blob.data.reshape(-1)
        for k in range(flat.size):
            x = float(flat[k])
            if kink_range >= 0 and kink - kink_range <= abs(x) <= kink + kink_range:
                continue
            flat[k] = x + step
            plus = _objective_and_seed_diffs(layer, bottom, top, top_id, top_data_id)
            flat[k] = x - step
            minus = _objective_and_seed_diffs(layer, bottom, top, top_id, top_data_id)
            flat[k] = x
            numeric = (plus - minus) / (2 * step)
            a = float(grad.reshape(-1)[k])
            scale = max(abs(a), abs(numeric), 1.0)
            assert abs(a - numeric) <= threshold * scale, (
                f"{layer.type} {name}[{k}]: analytic {a:.6g} vs numeric {numeric:.6g}")


def check_gradient_exhaustive(layer, bottom, top, **kwargs):
    """Caffe's CheckGradientExhaustive: the check once per top element."""
    layer.setup(bottom, top)
    shapes = [b.count() for b in top]
    for top_id, count in enumerate(shapes):
        for j in range(count):
            check_gradient(layer, bottom, top, top_id=top_id, top_data_id=j, setup=False,
                           **kwargs)
