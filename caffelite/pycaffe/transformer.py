"""pycaffe's caffe.io.Transformer: images (H×W×K, RGB, [0, 1]) to net inputs (C×H×W, e.g. BGR,
[0, 255], mean subtracted) and back.

preprocess, per input: float32 -> resize to the input's H×W when it differs -> transpose ->
channel swap -> ×raw_scale -> −mean -> ×input_scale. deprocess undoes all but the resize.
"""
import numpy as np


class Transformer:
    """`Transformer({input name: input shape})`, e.g. `{'data': net.blobs['data'].data.shape}`;
    configure with the set_* methods, then preprocess/deprocess single images."""

    def __init__(self, inputs):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, name):
        if name not in self.inputs:
            raise ValueError(f"{name} is not one of the net inputs: {list(self.inputs)}")

    # -- configuration ----------------------------------------------------------------------
    def set_transpose(self, name, order):
        """The axis order taking the image to the input, e.g. (2, 0, 1) for H×W×K -> K×H×W."""
        self._check_input(name)
        if len(order) != len(self.inputs[name]) - 1:
            raise ValueError("Transpose order needs to have the same number of dimensions as "
                             f"the input: {len(self.inputs[name]) - 1}, got {tuple(order)}")
        self.transpose[name] = tuple(order)

    def set_channel_swap(self, name, order):
        """The channel order after transposing, e.g. (2, 1, 0) for RGB -> BGR."""
        self._check_input(name)
        if len(order) != self.inputs[name][1]:
            raise ValueError("Channel swap needs to have the same number of dimensions as the "
                             f"input channels: {self.inputs[name][1]}, got {tuple(order)}")
        self.channel_swap[name] = tuple(order)

    def set_raw_scale(self, name, scale):
        """Multiply the (transposed, swapped) image by scale, e.g. 255 for [0, 1] -> [0, 255]."""
        self._check_input(name)
        self.raw_scale[name] = scale

    def set_mean(self, name, mean):
        """Subtract a mean: per channel (length C) or a C×H×W (or H×W) image; a mean image of
        another size is resized to the input's."""
        self._check_input(name)
        mean = np.asarray(mean)
        channels, dims = self.inputs[name][1], self.inputs[name][2:]
        if mean.ndim == 1:
            if mean.shape[0] != channels:
                raise ValueError(f"Mean channels incompatible with input: the mean has "
                                 f"{mean.shape[0]}, the input {channels}")
            mean = mean[:, None, None]
        else:
            if mean.ndim == 2:
                mean = mean[None]
            if mean.ndim != 3:
                raise ValueError(f"Mean shape invalid: {mean.shape}; give C, C×H×W or H×W")
            if mean.shape[0] != channels:
                raise ValueError(f"Mean channels incompatible with input: the mean has "
                                 f"{mean.shape[0]}, the input {channels}")
            if mean.shape != (channels,) + tuple(dims):
                from .io import resize_image

                mean = resize_image(mean.transpose(1, 2, 0), dims).transpose(2, 0, 1)
        self.mean[name] = mean

    def set_input_scale(self, name, scale):
        """Multiply the mean-subtracted input by scale (e.g. 1/std)."""
        self._check_input(name)
        self.input_scale[name] = scale

    # -- the transformation -----------------------------------------------------------------
    def preprocess(self, name, data):
        """One image (H×W×K) as the net input `name` wants it (C×H×W float32)."""
        self._check_input(name)
        image = np.asarray(data, dtype=np.float32)
        dims = self.inputs[name][2:]
        if image.shape[:2] != tuple(dims):
            from .io import resize_image

            image = resize_image(image, dims)
        if name in self.transpose:
            image = image.transpose(self.transpose[name])
        if name in self.channel_swap:
            image = image[list(self.channel_swap[name])]
        image = np.array(image, dtype=np.float32)  # a copy: never the caller's array
        if self.raw_scale.get(name) is not None:
            image *= self.raw_scale[name]
        if self.mean.get(name) is not None:
            image -= self.mean[name]
        if self.input_scale.get(name) is not None:
            image *= self.input_scale[name]
        return image

    def deprocess(self, name, data):
        """The inverse of preprocess (without the resize): net input -> image. Leading axes of
        length 1 are dropped first, so a batch of one works (pycaffe squeezes every unit axis,
        which fails for one-channel inputs)."""
        self._check_input(name)
        image = np.array(data, dtype=np.float32)
        while image.ndim > len(self.inputs[name]) - 1 and image.shape[0] == 1:
            image = image[0]
        if self.input_scale.get(name) is not None:
            image /= self.input_scale[name]
        if self.mean.get(name) is not None:
            image += self.mean[name]
        if self.raw_scale.get(name) is not None:
            image /= self.raw_scale[name]
        if name in self.channel_swap:
            image = image[np.argsort(self.channel_swap[name])]
        if name in self.transpose:
            image = image.transpose(np.argsort(self.transpose[name]))
        return image
