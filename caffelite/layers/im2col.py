"""Im2col: top[n, (c, i, j), y, x] = x_pad[n, c, y·stride + i·dilation, x·stride + j·dilation]."""
from math import prod

from ..kernels.im2col import Workspace, col2im, conv_out_size, im2col
from ..layer import Layer
from ..registry import register_layer
from .convolution import setup_conv_axes


@register_layer("Im2col")
class Im2colLayer(Layer):
    """Caffe's column buffer as a layer, reading convolution_param (kernel, stride, pad, dilation).

    bottom (N…, C, *spatial) with C on `axis`; top (N…, C·∏kernel, *out), rows ordered by
    channel, then kernel offset; out as Convolution's. N-D like Convolution. No parameters;
    backward is col2im (overlapping windows sum their diffs).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.convolution_param
        setup_conv_axes(self, bottom[0], param)
        self.ws = Workspace()

    def reshape(self, bottom, top):
        shape, axis = bottom[0].shape, self.channel_axis
        if len(shape) != axis + 1 + self.num_spatial:
            raise self.error(f"bottom num_axes may not change: got {shape}")
        self.image_shape = (bottom[0].count(0, axis),) + shape[axis:]  # (num, C, *spatial)
        out = conv_out_size(shape[axis + 1:], self.kernel, self.pad, self.stride, self.dilation)
        if min(out) <= 0:
            raise self.error(f"kernel {self.kernel} (dilation {self.dilation}) is larger than "
                             f"the padded input {shape[axis + 1:]} (pad {self.pad})")
        top[0].reshape(shape[:axis] + (shape[axis] * prod(self.kernel),) + out)

    def forward(self, bottom, top):
        im2col(bottom[0].data.reshape(self.image_shape), self.kernel, self.pad, self.stride,
               self.dilation, out=top[0].data, ws=self.ws)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            col2im(top[0].diff, self.image_shape, self.kernel, self.pad, self.stride,
                   self.dilation, out=bottom[0].diff, ws=self.ws)
