"""Tile: top = the bottom repeated `tiles` times along `axis` (whole blocks, as np.tile)."""
from ..layer import Layer
from ..registry import register_layer
from ..runtime import get_array_module


@register_layer("Tile")
class TileLayer(Layer):
    """Bottom (..., d_axis, ...) -> top (..., tiles·d_axis, ...), axis default 1.

    The block of all axes from `axis` on is copied `tiles` times in a row (so [a, b] tiled
    twice on the last axis is [a, b, a, b]). Backward sums the copies.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.tile_param
        if not param.HasField("tiles"):
            raise self.error("tile_param.tiles must be given (the number of copies)")
        self.tiles = int(param.tiles)
        if self.tiles < 1:
            raise self.error(f"tile_param.tiles must be positive, got {self.tiles}")

    def reshape(self, bottom, top):
        axis = self.layer_param.tile_param.axis
        try:
            self.axis = bottom[0].canonical_axis_index(axis)
        except IndexError:
            raise self.error(f"axis {axis} is out of range for bottom shape "
                             f"{bottom[0].shape}") from None
        shape = list(bottom[0].shape)
        shape[self.axis] *= self.tiles
        top[0].reshape(shape)
        self.outer = bottom[0].count(0, self.axis)
        self.inner = bottom[0].count(self.axis)

    def forward(self, bottom, top):
        xp = get_array_module(bottom[0].data)
        x = bottom[0].data.reshape(self.outer, 1, self.inner)
        out = top[0].data.reshape(self.outer, self.tiles, self.inner)  # a view of the top
        out[...] = xp.broadcast_to(x, out.shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dy = top[0].diff.reshape(self.outer, self.tiles, self.inner)
            bottom[0].diff[...] = dy.sum(axis=1).reshape(bottom[0].shape)
