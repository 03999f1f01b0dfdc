"""Naive loop references for convolution: Caffe's im2col_cpu and direct conv/deconv sums."""
import itertools

import numpy as np


def out_size(size, k, pad, stride, dilation):
    return (size + 2 * pad - (dilation * (k - 1) + 1)) // stride + 1


def im2col_naive(img, kernel, pad, stride, dilation):
    """Caffe's im2col_cpu for one image (C, H, W) -> (C·kh·kw, out_h·out_w), element by element."""
    channels, height, width = img.shape
    (kh, kw), (ph, pw), (sh, sw), (dh, dw) = kernel, pad, stride, dilation
    oh, ow = out_size(height, kh, ph, sh, dh), out_size(width, kw, pw, sw, dw)
    cols = np.zeros((channels * kh * kw, oh * ow), img.dtype)
    row = 0
    for c in range(channels):
        for ki in range(kh):
            for kj in range(kw):
                col = 0
                for y in range(oh):
                    for x in range(ow):
                        h, w = y * sh - ph + ki * dh, x * sw - pw + kj * dw
                        if 0 <= h < height and 0 <= w < width:
                            cols[row, col] = img[c, h, w]
                        col += 1
                row += 1
    return cols


def conv_naive(x, weight, bias, stride, pad, dilation, group=1):
    """Direct N-D convolution: y[n, o, p] = Σ_{c,k} w[o, c, k]·x[n, g·C/G + c, p·s − pad + k·d]."""
    num, channels = x.shape[:2]
    spatial = x.shape[2:]
    nsp = len(spatial)
    num_output, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    outs = tuple(out_size(spatial[i], kernel[i], pad[i], stride[i], dilation[i])
                 for i in range(nsp))
    y = np.zeros((num, num_output) + outs, np.float64)
    og = num_output // group
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        ws = weight[g * og:(g + 1) * og].astype(np.float64)
        for pos in itertools.product(*(range(o) for o in outs)):
            for off in itertools.product(*(range(k) for k in kernel)):
                coord = tuple(pos[i] * stride[i] - pad[i] + off[i] * dilation[i]
                              for i in range(nsp))
                if all(0 <= coord[i] < spatial[i] for i in range(nsp)):
                    idx = (slice(None), slice(None)) + coord
                    y[(slice(None), slice(g * og, (g + 1) * og)) + pos] += (
                        xs[idx] @ ws[(slice(None), slice(None)) + off].T)
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * nsp)
    return y


def deconv_naive(x, weight, bias, stride, pad, dilation, group=1):
    """Direct N-D transposed convolution: input cell p adds w[c, o, k]·x to p·s − pad + k·d."""
    num, channels = x.shape[:2]
    spatial = x.shape[2:]
    nsp = len(spatial)
    og = weight.shape[1]
    kernel = weight.shape[2:]
    num_output = og * group
    outs = tuple(stride[i] * (spatial[i] - 1) + dilation[i] * (kernel[i] - 1) + 1 - 2 * pad[i]
                 for i in range(nsp))
    y = np.zeros((num, num_output) + outs, np.float64)
    cg = channels // group
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        ws = weight[g * cg:(g + 1) * cg].astype(np.float64)
        for pos in itertools.product(*(range(s) for s in spatial)):
            for off in itertools.product(*(range(k) for k in kernel)):
                coord = tuple(pos[i] * stride[i] - pad[i] + off[i] * dilation[i]
                              for i in range(nsp))
                if all(0 <= coord[i] < outs[i] for i in range(nsp)):
                    y[(slice(None), slice(g * og, (g + 1) * og)) + coord] += (
                        xs[(slice(None), slice(None)) + pos]
                        @ ws[(slice(None), slice(None)) + off])
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * nsp)
    return y
