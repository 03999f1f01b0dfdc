"""Batches from a record source: read the records of this process's share of a global batch,
check their shapes, and transform them with the batch's own random draws.

A source (DatumSource, ImageListSource) yields records in order: `read()` -> (pixels C×H×W,
label, where), `skip()`, `position()` (JSON-safe) and `restore(position)`. BatchMaker turns it
into numbered batches; batch k draws its crop offsets and mirror flags from a generator seeded
by (seed, k), so a batch is the same whichever thread makes it and whenever, and a resumed run
(position + batch number + seed, see `state()`) makes the batches an unbroken run makes.
"""
from dataclasses import dataclass

import numpy as np

from . import shard
from .datum import datum_to_array, parse_datum
from .db import open_cursor
from .errors import DataError


@dataclass
class Batch:
    data: np.ndarray  # (N, C, crop|H, crop|W) in the layer dtype
    labels: np.ndarray  # (N,) floats
    plan: tuple  # (h_off, w_off, flip) as DataTransformer.plan gives them
    wheres: list  # where each record came from ("DB: record KEY", "LIST line 3: path")
    state: dict  # the reader state after this batch


def batch_rng(seed, index):
    """The generator of batch `index` of a reader seeded with `seed`."""
    return np.random.default_rng([int(seed), 0, int(index)])


def shape_text(shape):
    return "×".join(str(d) for d in shape)


class BatchMaker:
    """Callable: the next Batch of `source` (it owns the source while a Prefetcher runs it)."""

    def __init__(self, source, batch_size, transformer, seed, first):
        self.source, self.batch_size, self.transformer = source, batch_size, transformer
        self.seed, self.index = int(seed), 0
        self.shape, self.dtype, self.first_where = first[0].shape, first[0].dtype, first[2]
        # this process's records of each global batch (data-parallel training; one process:
        # all of them), counted from the shared cursor
        self.offset, self.step = shard.batch_offsets(batch_size)

    def state(self):
        return {"position": self.source.position(), "batch": self.index, "seed": self.seed}

    def restore(self, state):
        self.source.restore(state["position"])
        self.index, self.seed = int(state["batch"]), int(state["seed"])

    def __call__(self):
        for _ in range(self.offset):
            self.source.skip()
        images, labels, wheres = [], np.empty(self.batch_size, np.float64), []
        for i in range(self.batch_size):
            pixels, labels[i], where = self.source.read()
            self.check_shape(pixels.shape, where)
            images.append(pixels)
            wheres.append(where)
        for _ in range(self.step - self.offset - self.batch_size):
            self.source.skip()
        heights = np.array([image.shape[1] for image in images])
        widths = np.array([image.shape[2] for image in images])
        plan = self.transformer.plan(self.batch_size, heights, widths,
                                     batch_rng(self.seed, self.index))
        data = self.transformer.apply(images, plan)
        self.index += 1
        return Batch(data, labels, plan, wheres, self.state())

    def check_shape(self, shape, where):
        """Every record has the first's shape; with crop_size, as Caffe, the height and width
        may differ as long as they hold the crop."""
        if shape == self.shape:
            return
        crop = self.transformer.crop_size
        if crop and shape[0] == self.shape[0] and min(shape[1:]) >= crop:
            return
        rule = (f"the same channels and at least the crop {crop}×{crop}" if crop else
                "the same shape")
        raise DataError(f"{where} is {shape_text(shape)}, the first was "
                        f"{shape_text(self.shape)} ({self.first_where}); every record must "
                        f"have {rule}")


class DatumSource:
    """Datum records of an LMDB/LevelDB database in key order, wrapping at the end."""

    def __init__(self, path, backend=None, color=None):
        self.path, self.color = path, color
        self.cursor = open_cursor(path, backend)

    def where(self, key):
        return f"{self.path}: record {key.decode('utf-8', 'backslashreplace')}"

    def peek(self):
        """The current record, not moving on: (pixels, label, where)."""
        key = self.cursor.key()
        where = self.where(key)
        datum = parse_datum(self.cursor.value(), where)
        return datum_to_array(datum, where, self.color), datum.label, where

    def read(self):
        record = self.peek()
        self.cursor.next()
        return record

    def skip(self):
        self.cursor.next()

    def position(self):
        return {"key": self.cursor.key().hex()}

    def restore(self, position):
        self.cursor.seek(bytes.fromhex(position["key"]))

    def close(self):
        self.cursor.close()
