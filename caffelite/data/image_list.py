"""Image lists as ImageData and convert_imageset read them: `path label` lines, images read
from root_folder + path, optionally resized (OpenCV's bilinear, INTER_LINEAR)."""
import os

import numpy as np

from . import opencv_resize
from .datum import decode_image
from .errors import DataError

# Existence of every listed image is checked up front for lists up to this size (a mistyped
# root_folder then fails at once, not hours into training); longer lists fail at the read.
CHECK_FILES_UP_TO = 200_000


def read_list(path):
    """[(image path, label, line number)] of a list file; each line splits at its last space
    (paths may hold spaces), the label an integer. DataError naming the line otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such image list file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the image list ({exc})") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip()
        if not line:
            continue
        name, _, label = line.rpartition(" ")
        if not name:
            raise DataError(f"{path} line {number}: '{line}' has no label; each line is "
                            "'image_path label'")
        try:
            entries.append((name, int(label), number))
        except ValueError:
            raise DataError(f"{path} line {number}: the label '{label}' is not an integer; "
                            "each line is 'image_path label'") from None
    if not entries:
        raise DataError(f"{path}: the image list is empty")
    return entries


def check_files(list_path, entries, root_folder):
    """DataError naming the first listed image that is not a file."""
    if len(entries) > CHECK_FILES_UP_TO:
        return
    for name, _, number in entries:
        full = root_folder + name
        if not os.path.isfile(full):
            raise DataError(f"{list_path} line {number}: {full}: no such image file"
                            + ("" if root_folder else " (set root_folder?)"))


def read_image(full_path, where, color=True, new_height=0, new_width=0):
    """(C, H, W) uint8 BGR (color) or grey pixels of an image file, resized when both new
    sizes are > 0 (as Caffe's ReadImageToCVMat)."""
    try:
        with open(full_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{where}: {full_path}: no such image file") from None
    except OSError as exc:
        raise DataError(f"{where}: {full_path}: cannot read ({exc.strerror or exc})") from None
    pixels = decode_image(data, f"{where}: {full_path}", color)
    if new_height > 0 and new_width > 0:
        pixels = resize_linear(pixels, new_height, new_width)
    return pixels


def resize_linear(chw, height, width):
    """(C, height, width) uint8: OpenCV's INTER_LINEAR resize, bit for bit (opencv_resize.py),
    as Caffe's ImageData and convert_imageset resize."""
    if chw.shape[1:] == (height, width):
        return chw
    hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
    return np.ascontiguousarray(opencv_resize.resize_linear(hwc, height, width).transpose(2, 0, 1))


class ImageListSource:
    """The images of a list in order (a fresh seeded shuffle each epoch when `shuffle`), as
    ImageData reads them; position = (epoch, index in the epoch's order, shuffle seed)."""

    def __init__(self, list_path, root_folder="", color=True, new_height=0, new_width=0,
                 shuffle=False, seed=0):
        self.list_path, self.root_folder, self.color = list_path, root_folder, color
        self.new_height, self.new_width = new_height, new_width
        self.entries = read_list(list_path)
        check_files(list_path, self.entries, root_folder)
        self.shuffle, self.seed = shuffle, int(seed)
        self.epoch, self.index = 0, 0
        self.order = self._order(0)

    def _order(self, epoch):
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, 1, int(epoch)]).permutation(len(self.entries))

    def _entry(self):
        k = self.index if self.order is None else int(self.order[self.index])
        return k, self.entries[k]

    def peek(self):
        _, (name, label, number) = self._entry()
        where = f"{self.list_path} line {number}"
        return read_image(self.root_folder + name, where, self.color, self.new_height,
                          self.new_width), label, where

    def read(self):
        record = self.peek()
        self.skip()
        return record

    def skip(self):
        self.index += 1
        if self.index == len(self.entries):  # a new epoch, reshuffled as Caffe does
            self.epoch, self.index = self.epoch + 1, 0
            self.order = self._order(self.epoch)

    def position(self):
        return {"epoch": self.epoch, "index": self.index, "shuffle_seed": self.seed}

    def restore(self, position):
        self.epoch, self.index = int(position["epoch"]), int(position["index"])
        self.seed = int(position.get("shuffle_seed", self.seed))
        self.order = self._order(self.epoch)

    def close(self):
        pass
