"""Data: data = transform(images[i : i + batch]), label = labels[i : i + batch], i wrapping."""
import numpy as np

from ..data.shard import batch_offsets
from ..data.sources import describe_sources, load_source
from ..data.transformer import DataTransformer
from ..errors import CaffeliteError
from ..layer import Layer
from ..registry import register_layer

# DataParameter fields that Caffe 1.0 no longer reads (V1 nets had them; upgrade moves them).
DEPRECATED_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


@register_layer("Data")
class DataLayer(Layer):
    """Reads a dataset in order, `batch_size` records per forward, wrapping at the end.

    Tops: data (batch_size, C, H, W) — (C, crop_size, crop_size) when cropping — and an
    optional label (batch_size,), labels stored as floats as in Caffe. `data_param.source`
    names a bundled set ("caffelite://mnist10k/train" = the first 8,000 digits of the shipped
    sample, "caffelite://mnist10k/test" = the last 2,000) or an .npz with `images` and
    `labels`; LMDB/LevelDB databases are not read yet. `rand_skip` starts at a random record
    in [0, rand_skip). `transform_param` applies as in DataTransformer.

    The whole dataset is normalised ((x − mean)·scale) once in setup, so a forward is a
    slice plus the random crop/mirror. `get_state()/set_state()` carry the cursor, which
    Caffe does not save, so a resumed run reads the same batches as an unbroken one.
    """

    exact_num_bottom_blobs = 0
    min_top_blobs = 1
    max_top_blobs = 2

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

    def reshape(self, bottom, top):
        top[0].reshape(self.top_shape)
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    def forward(self, bottom, top):
        count = len(self.images)
        # Data-parallel ranks read their own share of each global batch (data/shard.py).
        first, step = batch_offsets(self.batch_size)
        start = self.cursor + first
        stop = start + self.batch_size
        if stop <= count:
            rows = slice(start, stop)  # a view: no copy before the transform
        else:
            rows = np.arange(start, stop) % count  # wraps, as often as a tiny set needs
        top[0].data[...] = self.transformer.crop_mirror(self.images[rows], self.rng)
        if len(top) > 1:
            top[1].data[...] = self.labels[rows]
        self.cursor = (self.cursor + step) % count

    def get_state(self):
        return {"cursor": int(self.cursor)}

    def set_state(self, state):
        self.cursor = int(state["cursor"]) % len(self.images)
