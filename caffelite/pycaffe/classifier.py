"""pycaffe's caffe.Classifier: a TEST net with a Transformer set up for H×W×K images, and
`predict(images, oversample=True)` averaging over 10 crops per image."""
import numpy as np

from ..layer import TEST
from ..net import Net
from . import io


def configure_transformer(net, mean=None, input_scale=None, raw_scale=None,
                          channel_swap=None):
    """A Transformer for the net's first input: H×W×K images in, (2, 0, 1) transpose."""
    name = net.inputs[0]
    transformer = io.Transformer({name: net.blobs[name].data.shape})
    transformer.set_transpose(name, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(name, mean)
    if input_scale is not None:
        transformer.set_input_scale(name, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(name, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(name, channel_swap)
    return transformer


class Classifier(Net):
    """`Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None)`: images are resized to image_dims (default: the net's
    input size) and cropped to the input size."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = configure_transformer(self, mean, input_scale, raw_scale,
                                                 channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].data.shape[2:])
        self.image_dims = self.crop_dims if image_dims is None or not len(image_dims) \
            else np.asarray(image_dims)

    def predict(self, inputs, oversample=True):
        """The first output for each image (N×classes): with oversample, the mean over the 10
        crops of io.oversample; without, the centre crop. No softmax is added."""
        inputs = list(inputs)
        height, width = (int(d) for d in self.image_dims)
        resized = np.zeros((len(inputs), height, width, np.shape(inputs[0])[2]), np.float32)
        for k, image in enumerate(inputs):
            resized[k] = io.resize_image(image, (height, width))
        if oversample:
            crops = io.oversample(resized, self.crop_dims)
        else:
            y0, x0, y1, x1 = io.crop_boxes((height, width), self.crop_dims)[4]
            crops = resized[:, y0:y1, x0:x1, :]
        name = self.inputs[0]
        batch = np.asarray([self.transformer.preprocess(name, c) for c in crops], np.float32)
        predictions = self.forward_all(**{name: batch})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape(len(predictions) // 10, 10, -1).mean(axis=1)
        return predictions
