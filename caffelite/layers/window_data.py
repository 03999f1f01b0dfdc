"""WindowData: R-CNN's sampled windows of images, warped to crop_size², fg and bg labels."""
import io
import logging
import os

import numpy as np

from ..data.opencv_resize import resize_linear
from ..errors import CaffeliteError
from ..layer import Layer
from ..registry import register_layer

logger = logging.getLogger("caffelite")
# window_data_param fields Caffe 1.0 reads from transform_param instead.
DEPRECATED_FIELDS = ("mean_file", "crop_size", "mirror")


def read_window_file(source, root_folder, fg_threshold, bg_threshold, error):
    """(images, fg, bg): images [(path, (C, H, W))], windows as rows (image, label, overlap,
    x1, y1, x2, y2). Overlap ≥ fg_threshold: foreground (label > 0); < bg_threshold:
    background, label and overlap set to 0; windows in between are dropped."""
    from ..formats.config import resolve_path

    try:
        with open(source, encoding="utf-8") as f:
            tokens = f.read().split()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"window_data_param.source {source}: cannot read the window file "
                    f"({getattr(exc, 'strerror', None) or exc})") from None
    images, fg, bg, pos = [], [], [], 0

    def take(count, what, kind=int):
        nonlocal pos
        values = tokens[pos:pos + count]
        if len(values) < count:
            raise error(f"window file {source} ends inside image #{len(images)}: expected "
                        f"{what}")
        try:
            parsed = [kind(v) for v in values]
        except ValueError:
            raise error(f"window file {source}, image #{len(images)}: expected {what}, got "
                        f"{' '.join(values)!r}") from None
        pos += count
        return parsed

    while pos < len(tokens):
        hashtag, index = take(2, "'# image_index'", str)
        if hashtag != "#" or index != str(len(images)):
            raise error(f"window file {source}: expected '# {len(images)}', got "
                        f"'{hashtag} {index}' (images are numbered 0, 1, ... in order)")
        # root_folder + path as Caffe joins them; a relative result is looked up beside
        # the window file first, then from the working directory (Caffe's only choice)
        path = resolve_path(root_folder + take(1, "an image path", str)[0], source)
        shape = tuple(take(3, "channels height width"))
        for _ in range(take(1, "the number of windows")[0]):
            label, = take(1, "a class index")
            overlap, = take(1, "an overlap", float)
            box = take(4, "x1 y1 x2 y2")
            if overlap >= fg_threshold:
                if label <= 0:
                    raise error(f"window file {source}, image #{len(images)}: a foreground "
                                f"window (overlap {overlap}) has class {label}; foreground "
                                "classes are > 0")
                fg.append([len(images), label, overlap] + box)
            elif overlap < bg_threshold:
                bg.append([len(images), 0, 0.0] + box)
        images.append((path, shape))
    as_array = lambda rows: np.asarray(rows, np.float64).reshape(-1, 7)  # noqa: E731
    return images, as_array(fg), as_array(bg)


def _round(value):
    """C's round(): halves away from zero."""
    return int(np.copysign(np.floor(abs(value) + 0.5), value))


def window_geometry(box, image_hw, crop, context_pad, square, mirror):
    """Where a window lands in the crop×crop output: (x1, y1, x2, y2) of the image region
    read (inclusive), the (height, width) it is warped to, and its (row, column) offset.
    Caffe's arithmetic in float32: the box grows by crop / (crop − 2·context_pad) about its
    centre (square: both half-sides the larger), is clipped to the image, and the clipped
    part keeps its share of the output; what fell outside stays 0."""
    x1, y1, x2, y2 = (int(v) for v in box)
    if not (context_pad > 0 or square):
        return (x1, y1, x2, y2), (crop, crop), (0, 0)
    f32 = np.float32
    context_scale = f32(crop) / f32(crop - 2 * context_pad)
    half_h, half_w = f32(y2 - y1 + 1) / f32(2), f32(x2 - x1 + 1) / f32(2)
    center_x, center_y = f32(x1) + half_w, f32(y1) + half_h
    if square:
        half_h = half_w = max(half_h, half_w)
    x1, x2 = (_round(center_x - half_w * context_scale), _round(center_x + half_w * context_scale))
    y1, y2 = (_round(center_y - half_h * context_scale), _round(center_y + half_h * context_scale))
    height, width = image_hw
    unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
    pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
    pad_x2, pad_y2 = max(0, x2 - width + 1), max(0, y2 - height + 1)
    x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
    scale_x, scale_y = f32(crop) / f32(unclipped_w), f32(crop) / f32(unclipped_h)
    out_w = _round(f32(x2 - x1 + 1) * scale_x)
    out_h = _round(f32(y2 - y1 + 1) * scale_y)
    pad_x1, pad_x2 = _round(f32(pad_x1) * scale_x), _round(f32(pad_x2) * scale_x)
    pad_y1 = _round(f32(pad_y1) * scale_y)
    pad_h, pad_w = pad_y1, (pad_x2 if mirror else pad_x1)  # a mirror pads the other side
    out_h, out_w = min(out_h, crop - pad_h), min(out_w, crop - pad_w)  # rounding may overflow
    return (x1, y1, x2, y2), (out_h, out_w), (pad_h, pad_w)


def import_pillow(error):
    """Pillow's Image module, or `error` naming the pip command that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise error('needs Pillow to decode images, which is not installed: '
                    'pip install "caffelite[image]"') from None
    return Image


def decode_bgr(data, path, error):
    """An (H, W, 3) uint8 BGR image (OpenCV's imread colour) decoded with Pillow."""
    Image = import_pillow(error)
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise error(f"{path} is not a readable image ({exc})") from None
    return np.ascontiguousarray(rgb[:, :, ::-1])


@register_layer("WindowData")
class WindowDataLayer(Layer):
    """R-CNN's windows: each batch is bg samples, then int(batch_size·fg_fraction) fg ones.

    `window_data_param.source` is a window file: per image `# index` (0, 1, ... in order),
    its path (prefixed by `root_folder`; a relative one is looked up beside the window file,
    then from the working directory), `channels height width`, the number of windows,
    then one `class overlap x1 y1 x2 y2` line per window (0-based, inclusive). Windows with
    overlap ≥ fg_threshold are foreground, < bg_threshold background (label 0); the others
    are not used. Each sample draws a window uniformly (with replacement) from its pool,
    then, with `transform_param.mirror`, a coin flip to mirror it.

    The image is read in colour (BGR, as Caffe's OpenCV; decoded with Pillow, and once at
    setup when `cache_images`), the window cut out and warped to crop_size² (bilinear, as
    cv::resize INTER_LINEAR). `context_pad` and `crop_mode: "square"` grow the window
    first; what falls outside the image stays 0. Output: (pixel − mean)·window_data_param.
    scale, the mean from transform_param (`mean_file` read at offset ((W_mean − crop)/2 +
    padding), or `mean_value`); transform_param.scale is not used, as in Caffe. Tops: data
    (batch_size, 3, crop_size, crop_size) and label (batch_size,). Draws come from the net's
    random stream, so a resumed run samples as an unbroken one.
    """

    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 2

    def layer_setup(self, bottom, top):
        param, transform = self.layer_param.window_data_param, self.layer_param.transform_param
        for field in DEPRECATED_FIELDS:
            if param.HasField(field):
                raise self.error(f"window_data_param.{field} is not read by Caffe 1.0; move it "
                                 f"into transform_param {{ {field}: ... }}")
        self.crop = int(transform.crop_size)
        if self.crop <= 0:
            raise self.error("transform_param.crop_size must be > 0: the size windows are "
                             "warped to")
        if param.batch_size <= 0:
            raise self.error("window_data_param.batch_size must be a positive number")
        if 2 * param.context_pad >= self.crop:
            raise self.error(f"context_pad {param.context_pad} leaves no room in crop_size "
                             f"{self.crop}")
        if param.crop_mode not in ("warp", "square"):
            raise self.error(f"crop_mode '{param.crop_mode}' is not 'warp' or 'square'")
        if transform.scale != 1:
            logger.warning("layer '%s' (WindowData) scales by window_data_param.scale; "
                           "transform_param.scale is ignored, as in Caffe", self.name)
        import_pillow(self.error)  # a missing Pillow fails when the net is built
        self.param, self.mirror = param, bool(transform.mirror)
        self.batch_size, self.square = int(param.batch_size), param.crop_mode == "square"
        self.images, self.fg, self.bg = read_window_file(
            param.source, param.root_folder, param.fg_threshold, param.bg_threshold,
            lambda message: self.error(message))
        self._check_images()
        self.num_fg = int(np.float32(self.batch_size) * np.float32(param.fg_fraction))
        for pool, count, kind in ((self.bg, self.batch_size - self.num_fg, "background"),
                                  (self.fg, self.num_fg, "foreground")):
            if count and not len(pool):
                raise self.error(f"{param.source} has no {kind} windows for the {count} "
                                 f"{kind} samples of each batch (check fg_threshold/"
                                 "bg_threshold/fg_fraction)")
        self.mean = self._mean(transform)
        self.cache = ([self._read(k) for k in range(len(self.images))]
                      if param.cache_images else None)
        top[0].reshape((self.batch_size, 3, self.crop, self.crop))
        top[1].reshape((self.batch_size,))

    def _check_images(self):
        for k, (path, shape) in enumerate(self.images):
            if shape[0] != 3:
                raise self.error(f"{self.param.source}: image #{k} declares {shape[0]} "
                                 "channels; WindowData reads images in colour (3)")
            if not os.path.isfile(path):
                raise self.error(f"{self.param.source}: image #{k} {path} does not exist "
                                 "(check root_folder)")
        logger.info("layer '%s' (WindowData): %d images, %d foreground and %d background "
                    "windows", self.name, len(self.images), len(self.fg), len(self.bg))

    def _mean(self, transform):
        """The mean as a (3, H, W) array (mean_file) or (3, 1, 1) (mean_value), or None."""
        if transform.mean_file and len(transform.mean_value):
            raise self.error("transform_param sets both mean_file and mean_value; give one")
        if transform.mean_file:
            from ..formats.binary import read_binaryproto

            try:
                mean = np.asarray(read_binaryproto(transform.mean_file), self.dtype)
            except CaffeliteError as exc:
                raise self.error(f"transform_param.mean_file: {exc}") from None
            while mean.ndim > 3 and mean.shape[0] == 1:
                mean = mean[0]
            offset = (mean.shape[-1] - self.crop) // 2 if mean.ndim == 3 else -1
            if mean.ndim != 3 or mean.shape[0] != 3 or offset < 0 or \
                    mean.shape[1] < offset + self.crop:
                raise self.error(f"mean_file {transform.mean_file} has shape {mean.shape}; "
                                 f"WindowData needs 3 channels and at least crop_size "
                                 f"{self.crop} rows and columns about the centre")
            self.mean_offset, self.mean_is_image = offset, True
            return mean
        values = list(transform.mean_value)
        if values and len(values) not in (1, 3):
            raise self.error(f"{len(values)} mean_value entries; give one, or one per channel")
        self.mean_offset, self.mean_is_image = 0, False
        return np.asarray(values * (3 // len(values)), self.dtype).reshape(3, 1, 1) \
            if values else None

    def _read(self, k):
        path = self.images[k][0]
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise self.error(f"cannot read image #{k} {path} ({exc.strerror})") from None

    def reshape(self, bottom, top):
        pass  # shapes are fixed at setup

    def forward(self, bottom, top):
        data, labels = top[0].data, top[1].data
        data[...] = 0
        draws = []  # (window, mirror) per item: bg first, then fg, in Caffe's draw order
        for pool, count in ((self.bg, self.batch_size - self.num_fg), (self.fg, self.num_fg)):
            for _ in range(count):
                window = pool[int(self.rng.integers(len(pool)))]
                draws.append((window, bool(self.rng.integers(2)) if self.mirror else False))
        # Items grouped by image: each image of the batch is decoded once, one at a time.
        image_k, image = None, None
        for item in sorted(range(len(draws)), key=lambda i: int(draws[i][0][0])):
            window, mirror = draws[item]
            if int(window[0]) != image_k:
                image_k = int(window[0])
                raw = self.cache[image_k] if self.cache is not None else self._read(image_k)
                image = decode_bgr(raw, self.images[image_k][0], self.error)
            self._sample(window, mirror, image, data[item])
            labels[item] = window[1]

    def _sample(self, window, mirror, image, out):
        k = int(window[0])
        path = self.images[k][0]
        (x1, y1, x2, y2), (out_h, out_w), (pad_h, pad_w) = window_geometry(
            window[3:], image.shape[:2], self.crop, self.param.context_pad, self.square, mirror)
        if not (0 <= x1 <= x2 < image.shape[1] and 0 <= y1 <= y2 < image.shape[0]) or \
                out_h < 1 or out_w < 1:
            raise self.error(f"window ({', '.join(str(int(v)) for v in window[3:])}) of image "
                             f"#{k} {path} does not lie inside its {image.shape[1]}×"
                             f"{image.shape[0]} pixels")
        patch = resize_linear(image[y1:y2 + 1, x1:x2 + 1], out_h, out_w)
        if mirror:
            patch = patch[:, ::-1]
        values = patch.transpose(2, 0, 1).astype(self.dtype)
        if self.mean is not None:
            if self.mean_is_image:
                rows = slice(self.mean_offset + pad_h, self.mean_offset + pad_h + out_h)
                cols = slice(self.mean_offset + pad_w, self.mean_offset + pad_w + out_w)
                values -= self.mean[:, rows, cols]
            else:
                values -= self.mean
        out[:, pad_h:pad_h + out_h, pad_w:pad_w + out_w] = values * self.dtype.type(
            self.param.scale)
