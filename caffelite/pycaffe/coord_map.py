"""pycaffe's coord_map: how coordinates move through spatial layers of a NetSpec, and `crop`,
which inserts the Crop layer aligning one top with another (FCN's score/data alignment).

A map is (axis, a, b): a coordinate x on the bottom is a·x + b on the top, for the axes from
`axis` on (None: any axis). a and b are arrays, one value per spatial axis given.
"""
import numpy as np

from .. import layers as L

# Layers that leave coordinates where they are.
PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log",
                       "LRN", "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split",
                       "TanH", "Threshold"]
_LEGACY = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"}


class UndefinedMapException(Exception):
    """The layer type has no coordinate map (InnerProduct, Reshape ...)."""


class AxisMismatchException(Exception):
    """Two maps act on different axes and cannot be composed."""


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a Convolution/Pooling/Deconvolution
    NetSpec function, each an array; legacy _h/_w parameters are refused."""
    params = fn.params.get("convolution_param", fn.params)
    assert not (_LEGACY & set(fn.params)) and not (_LEGACY & set(params)), \
        "cropping does not support legacy _h/_w params"
    kernel = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    return (params.get("axis", 1), np.array(params.get("stride", 1), ndmin=1),
            (kernel - 1) * dilation + 1, np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn):
    """(axis, offset) of a Crop function; axis 2 (the spatial axes of N×C×H×W) by default."""
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn):
    """The map from a layer's bottom coordinates to its top's."""
    kind = fn.type_name
    if kind in ("Convolution", "Pooling", "Im2col"):
        axis, stride, extent, pad = conv_params(fn)
        # top y sees the window starting at y·s − p whose centre is y·s − p + (extent−1)/2
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if kind == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if kind in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if kind == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # the map's axis counts the last axis before the crop's
    raise UndefinedMapException(f"no coordinate map for layer type {kind}")


def compose(base_map, next_map):
    """base ∘ next: apply next_map, then base_map."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is not None and ax2 is not None and ax1 != ax2:
        raise AxisMismatchException(f"maps on axes {ax1} and {ax2}")
    axis = ax2 if ax1 is None else ax1
    return axis, a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    axis, a, b = coord_map
    return axis, 1 / a, -b / a


def _bottoms(top):
    inputs = top.fn.inputs
    return inputs[:1] if top.fn.type_name == "Crop" else inputs  # a Crop's 2nd input: a size


def _ancestors(top):
    """{ancestor Top: map from its coordinates to top's}, walking back through mapped layers."""
    maps, frontier = {top: (None, 1, 0)}, [top]
    while frontier:
        current = frontier.pop()
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _bottoms(current):
            maps[bottom] = compose(maps[current], step)
            frontier.append(bottom)
    return maps


def coord_map_from_to(top_from, top_to):
    """The map from top_from's coordinates to top_to's, through a common ancestor."""
    from_maps = _ancestors(top_from)
    to_maps, frontier = {top_to: (None, 1, 0)}, [top_to]
    while frontier:
        current = frontier.pop(0)
        if current in from_maps:
            return compose(to_maps[current], inverse(from_maps[current]))
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _bottoms(current):
            to_maps[bottom] = compose(to_maps[current], step)
            frontier.append(bottom)
    raise RuntimeError("Could not compute map between tops; are they connected by spatial "
                       "layers?")


def crop(top_from, top_to):
    """A Crop layer taking top_from to top_to's extent and alignment (pycaffe's crop)."""
    axis, a, b = coord_map_from_to(top_from, top_to)
    a, b = np.asarray(a), np.asarray(b)
    assert (a == 1).all(), f"scale mismatch on crop (a = {a})"
    assert (b <= 0).all(), f"cannot crop negative offset (b = {b})"
    assert (np.round(b) == b).all(), f"cannot crop noninteger offset (b = {b})"
    offset = [int(v) for v in -np.round(b).astype(int)]
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis + 1, offset=offset))
