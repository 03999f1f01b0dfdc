"""The base of data layers that stream records (Data over a database, ImageData): a
BatchMaker run by a Prefetcher, tops filled from the next ready batch."""
import functools
import weakref

import numpy as np

from ..errors import layer_error
from ..layer import Layer
from .batches import BatchMaker
from .errors import DataError
from .prefetch import PREFETCH_BYTES, Prefetcher
from .transformer import DataTransformer


class StreamedDataLayer(Layer):
    """Tops: data (batch, C, crop|H, crop|W) and an optional label (batch,).

    `data_wait` sums the seconds forward spent waiting for the prefetch thread and `batches`
    counts the batches handed out. `get_state()` is the reader position after the last batch
    handed out (not after those prefetched), with the batch number and seed that fix its
    random crops and flips; `set_state()` repositions the reader, so a resumed run reads what
    an unbroken one reads.
    """

    exact_num_bottom_blobs = 0
    min_top_blobs = 1
    max_top_blobs = 2

    def start_stream(self, source, batch_size, prefetch):
        """Peek at the first record for the shapes, then start prefetching."""
        self.source, self.batch_size = source, batch_size
        error = functools.partial(layer_error, self.layer_param)  # no reference to the layer
        try:
            first = source.peek()
            transformer = DataTransformer(self.layer_param.transform_param, self.phase,
                                          None, self.dtype, error=error)
            self.top_shape = transformer.output_shape((batch_size,) + first[0].shape)
        except DataError as exc:
            source.close()
            raise self.error(str(exc)) from None
        seed = int(self.rng.integers(2**63))
        self.maker = BatchMaker(source, batch_size, transformer, seed, first)
        self.prefetcher = Prefetcher(self.maker, prefetch_depth(prefetch, self.top_shape,
                                                                self.dtype),
                                     f"caffelite-data-{self.name}")
        self._finalizer = weakref.finalize(self, _shut_down, self.prefetcher, source)
        self.stream_state = self.maker.state()
        self.data_wait, self.batches = 0.0, 0
        self.last_plan = self.last_wheres = None
        self.prefetcher.start()

    def reshape(self, bottom, top):
        top[0].reshape(self.top_shape)
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    def forward(self, bottom, top):
        try:
            batch, waited = self.prefetcher.get()
        except DataError as exc:
            raise self.error(str(exc)) from None
        top[0].data[...] = batch.data
        if len(top) > 1:
            top[1].data[...] = batch.labels
        self.stream_state = batch.state
        self.last_plan, self.last_wheres = batch.plan, batch.wheres
        self.data_wait += waited
        self.batches += 1

    def get_state(self):
        return dict(self.stream_state)

    def set_state(self, state):
        if "position" not in state:
            raise ValueError(f"layer '{self.name}': not a {self.type} reader state: {state}")
        self.prefetcher.stop()
        try:
            self.maker.restore(state)
        except DataError as exc:
            raise self.error(str(exc)) from None
        self.stream_state = dict(state)
        self.prefetcher.start()

    def close(self):
        """Stop prefetching and close the source (also done when the layer is collected)."""
        self._finalizer()


def prefetch_depth(prefetch, shape, dtype):
    """Caffe's `prefetch` batches ahead (default 4), fewer when they would pass
    PREFETCH_BYTES (an ImageNet batch of 256 crops 227×227 is 158 MB), at least 1."""
    batch_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return max(1, min(prefetch or 4, PREFETCH_BYTES // max(1, batch_bytes)))


def _shut_down(prefetcher, source):
    prefetcher.stop()
    source.close()

