"""Data: batches of records from an LMDB/LevelDB database (streamed and prefetched), an .npz or
a bundled dataset (held in memory), transformed by transform_param."""
import os

import numpy as np

from ..data.batches import DatumSource
from ..data.errors import DataError
from ..data.shard import batch_offsets
from ..data.sources import SCHEME, describe_sources, load_source
from ..data.streamed import StreamedDataLayer
from ..data.transformer import DataTransformer
from ..errors import CaffeliteError
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer

# DataParameter fields that Caffe 1.0 no longer reads (V1 nets had them; upgrade moves them).
DEPRECATED_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
BACKENDS = {pb.DataParameter.LMDB: "lmdb", pb.DataParameter.LEVELDB: "leveldb"}


def in_memory(source):
    """Whether a source is a bundled dataset or an .npz file (else: a database directory)."""
    return (source.startswith(SCHEME) or source.endswith(".npz") or os.path.isfile(source))


@register_layer("Data")
class DataLayer(StreamedDataLayer):
    """Reads a dataset in order, `batch_size` records per forward, wrapping at the end.

    Tops: data (batch_size, C, H, W) — (C, crop_size, crop_size) when cropping — and an
    optional label (batch_size,), labels stored as floats as in Caffe.

    `data_param.source` is a database directory (`backend: LMDB` or `LEVELDB`; the files
    decide when the backend is left at its default) of serialised Datums: raw C×H×W bytes,
    float_data, or an encoded JPEG/PNG (`force_color`/`force_gray` in transform_param). It is
    read record by record in key order on a prefetch thread (`prefetch` batches ahead) and
    never loaded whole; every record must have the shape of the first (with crop_size only
    its channels: each is cropped from its own size). Or it names a bundled
    set ("caffelite://mnist10k/train" = the first 8,000 digits of the shipped sample,
    "caffelite://mnist10k/test" = the last 2,000) or an .npz with `images` and `labels`, which
    are normalised ((x − mean)·scale) once in setup and sliced per forward.

    `rand_skip` starts at a random record in [0, rand_skip) (Caffe 1.0 ignores it).
    `get_state()/set_state()` carry the reader position, which Caffe does not save, so a resumed
    run reads the same batches as an unbroken one.
    """

    def layer_setup(self, bottom, top):
        param = self.layer_param.data_param
        for field in DEPRECATED_TRANSFORM_FIELDS:
            if param.HasField(field):
                raise self.error(f"data_param.{field} is deprecated (Caffe 1.0 ignores it); "
                                 f"move it into transform_param {{ {field}: ... }}")
        if not param.source:
            raise self.error(f"data_param.source is empty; {describe_sources()}")
        if param.batch_size <= 0:
            raise self.error("data_param.batch_size must be a positive number of records")
        self.batch_size = param.batch_size
        self.source = param.source
        self.memory = in_memory(param.source)
        if self.memory:
            self.setup_in_memory(param, top)
        else:
            self.setup_database(param)

    def setup_database(self, param):
        transform = self.layer_param.transform_param
        if transform.force_color and transform.force_gray:
            raise self.error("transform_param sets both force_color and force_gray; give one")
        color = True if transform.force_color else False if transform.force_gray else None
        backend = BACKENDS[param.backend] if param.HasField("backend") else None
        try:
            source = DatumSource(param.source, backend, color)
        except DataError as exc:
            hint = "" if os.path.exists(param.source) else f"; {describe_sources()}"
            raise self.error(f"data_param.source: {exc}{hint}") from None
        if param.rand_skip:
            for _ in range(int(self.rng.integers(param.rand_skip))):
                source.skip()
        self.start_stream(source, param.batch_size, param.prefetch)

    # -- the in-memory path (.npz, bundled) ------------------------------------------------
    def setup_in_memory(self, param, top):
        try:
            images, labels = load_source(param.source)
        except CaffeliteError as exc:
            raise self.error(f"data_param.source: {exc}") from None
        if len(images) == 0:
            raise self.error(f"data_param.source {param.source} holds no images")
        if len(top) > 1 and labels is None:
            raise self.error(f"{param.source} has no 'labels' array for the label top "
                             f"'{self.layer_param.top[1]}'")
        self.transformer = DataTransformer(self.layer_param.transform_param, self.phase,
                                           self.rng, self.dtype, error=self.error)
        self.top_shape = self.transformer.output_shape((self.batch_size,) + images.shape[1:])
        self.images = self.transformer.normalize(images)  # (N, C, H, W), the layer dtype
        self.labels = None if labels is None else labels.astype(self.dtype)
        self.cursor = int(self.rng.integers(param.rand_skip)) if param.rand_skip else 0
        self.cursor %= len(self.images)
        self.data_wait, self.batches = 0.0, 0

    def forward(self, bottom, top):
        if not self.memory:
            return super().forward(bottom, top)
        count = len(self.images)
        # Data-parallel ranks read their own share of each global batch (data/shard.py).
        first, step = batch_offsets(self.batch_size)
        start, stop = self.cursor + first, self.cursor + first + self.batch_size
        if stop <= count:
            rows = slice(start, stop)  # a view: no copy before the transform
        else:
            rows = np.arange(start, stop) % count  # wraps, as often as a tiny set needs
        top[0].data[...] = self.transformer.crop_mirror(self.images[rows], self.rng)
        if len(top) > 1:
            top[1].data[...] = self.labels[rows]
        self.cursor = (self.cursor + step) % count
        self.batches += 1

    def get_state(self):
        if not self.memory:
            return super().get_state()
        return {"cursor": int(self.cursor)}

    def set_state(self, state):
        if not self.memory:
            return super().set_state(state)
        self.cursor = int(state["cursor"]) % len(self.images)

    def close(self):
        if not self.memory:
            super().close()
