"""caffelite.coord_map (pycaffe's coord_map) against offsets derived by hand, and the FCN crop it
inserts checked by running the net."""
import numpy as np
import pytest

import caffelite as caffe
from caffelite import coord_map as cm
from caffelite import layers as L
from caffelite import params as P


def data_top(shape=(1, 1, 20, 20)):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=list(shape)))
    return n


def test_single_layer_maps():
    n = data_top()
    # conv k=5 p=0 s=1: output y is centred at input y + 2 -> input x maps to x - 2
    n.conv = L.Convolution(n.data, kernel_size=5, num_output=1)
    ax, a, b = cm.coord_map(n.conv.fn)
    assert ax == 1 and a == 1 and b == -2
    # pool k=3 s=2 p=1: output y is centred at 2y - 1 + 1 = 2y -> x maps to x / 2
    n.pool = L.Pooling(n.conv, kernel_size=3, stride=2, pad=1, pool=P.Pooling.MAX)
    ax, a, b = cm.coord_map(n.pool.fn)
    assert (a, b) == (0.5, 0)
    # dilated conv k=3 d=2 (extent 5) p=1 s=1: centre at y - 1 + 2 -> x maps to x - 1
    n.dil = L.Convolution(n.pool, kernel_size=3, dilation=2, pad=1, num_output=1)
    assert cm.coord_map(n.dil.fn)[1:] == (1, -1)
    # deconv k=4 s=2 p=1: input x is centred at output 2x - 1 + 1.5 -> 2x + 0.5
    n.up = L.Deconvolution(n.dil, convolution_param=dict(kernel_size=4, stride=2, pad=1,
                                                         num_output=1))
    assert cm.coord_map(n.up.fn)[1:] == (2, 0.5)
    n.relu = L.ReLU(n.up)
    assert cm.coord_map(n.relu.fn) == (None, 1, 0)
    n.ip = L.InnerProduct(n.relu, num_output=2)
    with pytest.raises(cm.UndefinedMapException):
        cm.coord_map(n.ip.fn)
    n.crop = L.Crop(n.up, n.data, crop_param=dict(axis=2, offset=3))
    ax, a, b = cm.coord_map(n.crop.fn)
    assert ax == 1 and a == 1 and b == -3


def test_compose_and_inverse():
    assert cm.compose((1, 2, 3), (None, 5, 7)) == (1, 10, 17)  # 2(5x + 7) + 3
    assert cm.compose((None, 1, 0), (2, 0.5, 1)) == (2, 0.5, 1)
    with pytest.raises(cm.AxisMismatchException):
        cm.compose((1, 1, 0), (2, 1, 0))
    assert cm.inverse((1, 2.0, 3.0)) == (1, 0.5, -1.5)


def fcn_like():
    """data -> conv (k5 p2) -> pool (k2 s2) -> deconv (k4 s2): by hand, conv keeps x; pool
    maps to x/2 - 1/4; deconv maps z to 2z + 3/2, so data x lands at x + 1 on the upsampled
    score: the crop back to data takes offset 1."""
    n = data_top((1, 1, 16, 16))
    n.conv = L.Convolution(n.data, kernel_size=5, pad=2, num_output=2,
                           weight_filler=dict(type="gaussian", std=0.1))
    n.pool = L.Pooling(n.conv, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.up = L.Deconvolution(n.pool, convolution_param=dict(
        kernel_size=4, stride=2, num_output=2, weight_filler=dict(type="gaussian", std=0.1)))
    return n


def test_coord_map_from_to_and_crop():
    n = fcn_like()
    ax, a, b = cm.coord_map_from_to(n.up, n.data)
    assert ax == 1 and np.all(a == 1) and np.all(b == -1)
    ax, a, b = cm.coord_map_from_to(n.data, n.up)
    assert np.all(a == 1) and np.all(b == 1)
    n.score = cm.crop(n.up, n.data)
    proto = n.to_proto()
    crop = proto.layer[-1]
    assert crop.type == "Crop" and list(crop.bottom) == ["up", "data"]
    assert crop.crop_param.axis == 2 and list(crop.crop_param.offset) == [1]
    net = caffe.Net(proto, caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal((1, 1, 16, 16))
    out = net.forward()
    assert net.blobs["up"].data.shape == (1, 2, 18, 18)
    np.testing.assert_array_equal(out["score"], net.blobs["up"].data[:, :, 1:17, 1:17])


def test_crop_refusals():
    n = fcn_like()
    with pytest.raises(AssertionError, match="scale mismatch"):
        cm.crop(n.pool, n.data)  # a = 1/2
    with pytest.raises(AssertionError, match="negative offset"):
        cm.crop(n.data, n.up)  # b = +1
    m = data_top()
    m.conv = L.Convolution(m.data, kernel_size=4, pad=2, num_output=1)  # conv y is data y - 0.5
    with pytest.raises(AssertionError, match="noninteger"):
        cm.crop(m.conv, m.data)
    m.legacy = L.Convolution(m.data, kernel_h=3, kernel_w=3, num_output=1)
    with pytest.raises(AssertionError, match="_h/_w"):
        cm.coord_map_from_to(m.legacy, m.data)
    other = data_top()
    with pytest.raises(RuntimeError, match="Could not compute map"):
        cm.coord_map_from_to(m.conv, other.data)
