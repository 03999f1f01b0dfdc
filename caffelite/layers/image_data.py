"""ImageData: batches of the images a list file names, decoded with Pillow and prefetched."""
import logging

from ..data.errors import DataError
from ..data.image_list import ImageListSource
from ..data.streamed import StreamedDataLayer
from ..registry import register_layer

logger = logging.getLogger("caffelite")


@register_layer("ImageData")
class ImageDataLayer(StreamedDataLayer):
    """Reads `image_data_param.source`, a list of `path label` lines (split at the last space),
    loading root_folder + path: 3-channel BGR when `is_color` (the default), else grey, resized
    bilinearly to new_height × new_width when both are set.

    Tops: data (batch_size, C, crop|H, crop|W) and label (batch_size,), as Caffe (which always
    has both). `shuffle` permutes the list at setup and again at every wrap, from a generator
    seeded by the net's (random_seed), so a run is reproducible; `rand_skip` starts at a random
    line in [0, rand_skip) after the shuffle. Batches are made on a prefetch thread
    (`data_param.prefetch`, default 4, as Caffe reads it) and transformed per batch by
    transform_param. Every image must have the shape of the first (resize them), or, with
    crop_size, its channels and at least the crop.
    """

    exact_num_top_blobs = 2
    min_top_blobs = max_top_blobs = -1

    def layer_setup(self, bottom, top):
        param = self.layer_param.image_data_param
        if not param.source:
            raise self.error("image_data_param.source is empty; give a list file of "
                             "'image_path label' lines")
        if param.batch_size <= 0:
            raise self.error("image_data_param.batch_size must be a positive number of images")
        if (param.new_height > 0) != (param.new_width > 0):
            raise self.error(f"image_data_param sets new_height {param.new_height} and "
                             f"new_width {param.new_width}; set both to resize, or neither")
        transform = self.layer_param.transform_param
        if transform.force_color or transform.force_gray:
            logger.warning("layer '%s' (ImageData): transform_param force_color/force_gray "
                           "apply to encoded Datums and are ignored here; ImageData reads "
                           "colour or grey by image_data_param.is_color", self.name)
        seed = int(self.rng.integers(2**63))  # the shuffle's own stream
        try:
            source = ImageListSource(param.source, param.root_folder, param.is_color,
                                     param.new_height, param.new_width, param.shuffle, seed)
        except DataError as exc:
            raise self.error(f"image_data_param.source: {exc}") from None
        if param.rand_skip:
            for _ in range(int(self.rng.integers(param.rand_skip))):
                source.skip()
        prefetch = self.layer_param.data_param.prefetch  # Caffe reads it from data_param
        self.start_stream(source, param.batch_size, prefetch)
