"""DataTransformer: out = mirror(crop((x − mean) · scale)), Caffe's TransformationParameter."""
import os
import stat

import numpy as np

from ..errors import CaffeliteError
from ..proto import caffelite_pb2 as pb

MAX_MEAN_FILE_BYTES = 2**30  # a mean of 3x1024x1024 float32 is 12 MiB; /dev/zero is endless


def check_mean_file(path):
    """A CaffeliteError unless path is a regular file of plausible size: a device or a FIFO
    (`/dev/zero`) would be read forever."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CaffeliteError(f"{path}: cannot read the .binaryproto file "
                             f"({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise CaffeliteError(f"{path} is {kind}; give the .binaryproto file of the mean image")
    if info.st_size > MAX_MEAN_FILE_BYTES:
        raise CaffeliteError(f"{path} is {info.st_size} bytes, more than the "
                             f"{MAX_MEAN_FILE_BYTES} a mean image may have; is it the "
                             ".binaryproto of the mean?")

class DataTransformer:
    """Applies a TransformationParameter to batches of images (N, C, H, W).

    Caffe's order (data_transformer.cpp): subtract the mean (a full-size `mean_file` blob,
    cropped at the same offset as the image, or one `mean_value` per channel, a single value
    serving every channel), multiply by `scale`, crop to `crop_size` (a random offset per
    image in TRAIN, the centre — integer division — in TEST), and flip horizontally with
    probability ½ when `mirror` is set, in **any** phase. The per-pixel part (mean and scale)
    is deterministic, so data layers run `normalize` once over a whole dataset and
    `crop_mirror` per batch. `force_color`/`force_gray` concern encoded images only and have
    no effect on raw arrays. Randomness comes from the owning layer's `rng`.
    """

    def __init__(self, transform_param, phase, rng, dtype=np.float32, error=CaffeliteError):
        self.scale = transform_param.scale
        self.crop_size = transform_param.crop_size
        self.mirror = transform_param.mirror
        self.mean_values = list(transform_param.mean_value)
        self.mean_file = transform_param.mean_file
        self.phase = phase
        self.rng = rng
        self.dtype = np.dtype(dtype)
        self.error = error
        if self.mean_file and self.mean_values:
            raise error("transform_param sets both mean_file and mean_value; give only one")
        self.mean = None
        if self.mean_file:
            from ..formats.binary import (
                read_binaryproto,  # binaryproto reading lives with the other formats
            )

            try:
                check_mean_file(self.mean_file)
                self.mean = np.asarray(read_binaryproto(self.mean_file))
            except CaffeliteError as exc:
                raise error(f"transform_param.mean_file: {exc}") from None

    def output_shape(self, shape):
        """Shape of transformed images for input `shape` (N, C, H, W); checks it fits."""
        n, c, h, w = shape
        self.mean_array(shape[1:])  # validates the mean against the image shape
        if self.crop_size:
            if self.crop_size > h or self.crop_size > w:
                raise self.error(f"crop_size {self.crop_size} is larger than the images "
                                 f"({h}×{w})")
            return (n, c, self.crop_size, self.crop_size)
        return (n, c, h, w)

    def mean_array(self, image_shape):
        """The mean to subtract, broadcastable to (C, H, W), in the layer dtype; or None."""
        c, h, w = image_shape
        if self.mean is not None:
            mean = self.mean
            while mean.ndim > 3 and mean.shape[0] == 1:
                mean = mean[0]  # the legacy 4-D header (num = 1)
            if mean.shape not in ((c, h, w),) + (((h, w),) if c == 1 else ()):
                raise self.error(f"mean_file {self.mean_file} has shape {self.mean.shape}; the "
                                 f"images are {c}×{h}×{w} (the mean is taken before cropping)")
            return mean.reshape(c, h, w).astype(self.dtype)
        if self.mean_values:
            if len(self.mean_values) not in (1, c):
                raise self.error(f"{len(self.mean_values)} mean_value entries for {c} "
                                 "channel(s); give one, or one per channel")
            values = self.mean_values * c if len(self.mean_values) == 1 else self.mean_values
            return np.asarray(values, self.dtype).reshape(c, 1, 1)
        return None

    def normalize(self, images):
        """(images − mean) · scale in the layer dtype; images (N, C, H, W), any real dtype."""
        out = np.asarray(images).astype(self.dtype)  # always a fresh array
        mean = self.mean_array(out.shape[1:])
        if mean is not None:
            out -= mean
        if self.scale != 1:
            out *= self.dtype.type(self.scale)
        return out

    @property
    def crops_or_mirrors(self):
        """Whether crop_mirror does anything (else it returns its input unchanged)."""
        return bool(self.crop_size or self.mirror)

    def crop_mirror(self, batch, rng=None):
        """Crop and/or mirror a normalized batch (N, C, H, W) drawing from rng (default: the
        transformer's); a new array, or `batch` itself when there is nothing to do."""
        if not self.crops_or_mirrors:
            return batch
        rng = self.rng if rng is None else rng
        n, _, h, w = batch.shape
        return self.gather(batch, self.plan(n, h, w, rng))

    def plan(self, n, h, w, rng):
        """(h_off, w_off, flip) for n images of h×w: Caffe's draws, mirror flags first, then the
        crop offsets (random in TRAIN, the centre in TEST); flip is None without `mirror`."""
        flip = rng.integers(0, 2, size=n).astype(bool) if self.mirror else None
        size_h, size_w = (self.crop_size, self.crop_size) if self.crop_size else (h, w)
        if self.crop_size and self.phase == pb.TRAIN:
            h_off = rng.integers(0, h - size_h + 1, size=n)
            w_off = rng.integers(0, w - size_w + 1, size=n)
        else:  # TEST crops the centre; no crop is a crop at offset 0
            h_off = np.full(n, (h - size_h) // 2)
            w_off = np.full(n, (w - size_w) // 2)
        return h_off, w_off, flip

    def gather(self, batch, plan):
        """The crops of a batch (N, C, H, W) at plan's offsets, mirrored where it says; any
        dtype. A mean (C, H, W) broadcast to (N, C, H, W) is gathered the same way."""
        h_off, w_off, flip = plan
        n, c, h, w = batch.shape
        size_h, size_w = (self.crop_size, self.crop_size) if self.crop_size else (h, w)
        rows = np.asarray(h_off)[:, None] + np.arange(size_h)  # (N, crop_h)
        cols = np.asarray(w_off)[:, None] + np.arange(size_w)  # (N, crop_w)
        if flip is not None:
            # Caffe writes column j of the crop to crop_w − 1 − j: read the columns reversed.
            cols = np.where(flip[:, None], cols[:, ::-1], cols)
        return batch[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                     rows[:, None, :, None], cols[:, None, None, :]]  # (N, C, crop_h, crop_w)

    def apply(self, raw, plan):
        """(raw[crop, mirror] − mean[same pixels]) · scale for stored images (a batch
        (N, C, H, W) or a list of (C, H, W) of any dtype, their sizes differing only when
        cropped): the values of gather(normalize(raw)), image by image with slices (far less
        work than fancy indexing), for streamed batches. The mean is taken at each output's
        source pixel, as Caffe does."""
        n = len(raw)
        h_off, w_off, flip = plan
        c, h, w = raw[0].shape
        size_h, size_w = (self.crop_size, self.crop_size) if self.crop_size else (h, w)
        out = np.empty((n, c, size_h, size_w), self.dtype)
        shape = mean = None
        for i in range(n):
            if raw[i].shape != shape:  # a mean file must match each image's size
                shape = raw[i].shape
                mean = self.mean_array(shape)
            window = (slice(None), slice(h_off[i], h_off[i] + size_h),
                      slice(w_off[i], w_off[i] + size_w))
            image = raw[i][window]
            image_mean = mean if mean is None or mean.shape[1:] == (1, 1) else mean[window]
            if flip is not None and flip[i]:
                image = image[:, :, ::-1]
                image_mean = None if image_mean is None else image_mean[:, :, ::-1]
            if image_mean is None:
                out[i] = image
            else:
                np.subtract(image, image_mean, out=out[i], dtype=self.dtype)
        if self.scale != 1:
            out *= self.dtype.type(self.scale)
        return out

    def transform(self, images, rng=None):
        """The full transform of a batch (N, C, H, W): normalize, then crop/mirror."""
        return self.crop_mirror(self.normalize(images), rng)
