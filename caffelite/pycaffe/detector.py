"""pycaffe's caffe.Detector: classify windows of images (R-CNN style). Each window is cropped
(optionally with context around it, padded with the mean), warped to the net's input size and
run through the net."""
import numpy as np

from ..errors import CaffeliteError
from ..layer import TEST
from ..net import Net
from . import io
from .classifier import configure_transformer


class Detector(Net):
    """`Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
    channel_swap=None, context_pad=None)`; windows are (ymin, xmin, ymax, xmax)."""

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = configure_transformer(self, mean, input_scale, raw_scale,
                                                 channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """[(filename, [window, ...]), ...] -> [{'window', 'prediction', 'filename'}, ...]:
        the net's first output for every window, in the order given."""
        crops, owners = [], []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            for window in windows:
                crops.append(self.crop(image, window))
                owners.append((filename, window))
        name = self.inputs[0]
        batch = np.asarray([self.transformer.preprocess(name, c) for c in crops], np.float32)
        predictions = self.forward_all(**{name: batch})[self.outputs[0]]
        return [{"window": window, "prediction": predictions[k], "filename": filename}
                for k, (filename, window) in enumerate(owners)]

    def detect_selective_search(self, image_fnames):
        """pycaffe proposes windows with the selective_search_ijcv_with_python package (MATLAB
        based); caffelite does not ship it."""
        raise CaffeliteError("detect_selective_search needs selective search proposals, which "
                             "caffelite does not provide; compute windows yourself and call "
                             "detect_windows([(filename, windows), ...])")

    def configure_crop(self, context_pad):
        """Crop size (the input's H×W×K) and, with context padding, the mean in image space
        (before raw_scale, channel swap and transpose) for padding outside the image."""
        name = self.inputs[0]
        order = self.transformer.transpose[name]
        self.crop_dims = np.array(self.blobs[name].data.shape[1:])[np.argsort(order)]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(name)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, dtype=np.float32).transpose(np.argsort(order))
        swap = self.transformer.channel_swap.get(name)
        if swap is not None:
            crop_mean = crop_mean[:, :, np.argsort(swap)]
        raw_scale = self.transformer.raw_scale.get(name)
        if raw_scale is not None:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean

    def crop(self, im, window):
        """The window of im; with context_pad, the window grown so that after warping to the
        crop size `context_pad` pixels of context surround it, the part outside the image
        filled with the mean (as Caffe's WindowData does)."""
        window = np.asarray(window)
        if not self.context_pad:
            return im[window[0]:window[2], window[1]:window[3]]
        size = int(self.blobs[self.inputs[0]].data.shape[3])  # square crops
        grow = size / (size - 2.0 * self.context_pad)
        half = np.array([window[2] - window[0] + 1, window[3] - window[1] + 1]) / 2.0
        centre = window[:2] + half
        box = np.round(np.concatenate([centre - grow * half, centre + grow * half]))
        scale_h = size / (box[2] - box[0] + 1)
        scale_w = size / (box[3] - box[1] + 1)
        pad_y = round(max(0, -box[0]) * scale_h)  # rows of the crop that lie above the image
        pad_x = round(max(0, -box[1]) * scale_w)
        height, width = im.shape[:2]
        box = np.clip(box, 0, [height, width, height, width])
        crop_h = min(round((box[2] - box[0] + 1) * scale_h), size - pad_y)
        crop_w = min(round((box[3] - box[1] + 1) * scale_w), size - pad_x)
        if crop_h <= 0 or crop_w <= 0:
            raise CaffeliteError(f"window {window.tolist()} lies outside the image "
                                 f"({height}x{width})")
        y0, x0, y1, x1 = (int(v) for v in box)
        context = io.resize_image(im[y0:y1, x0:x1], (crop_h, crop_w))
        out = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        out[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return out
