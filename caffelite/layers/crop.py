"""Crop: top = bottom[0][…, o_a : o_a + bottom[1].shape[a], …] on every axis a >= axis."""
from ..layer import Layer
from ..registry import register_layer


@register_layer("Crop")
class CropLayer(Layer):
    """Crops bottom[0] to bottom[1]'s shape on the axes from crop_param.axis (default 2) on.

    Offsets: none (0), one for every cropped axis, or one per cropped axis. bottom[1] only
    gives the shape; it gets no gradient (its diff is zeroed if asked for one).
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.crop_param
        try:
            self.axis = bottom[0].canonical_axis_index(param.axis)
        except IndexError as exc:
            raise self.error(f"crop_param.axis: {exc}") from None
        self.offsets = [int(o) for o in param.offset]
        cropped = bottom[0].num_axes - self.axis
        if len(self.offsets) > 1 and len(self.offsets) != cropped:
            raise self.error(f"crop_param.offset has {len(self.offsets)} values; give one, or "
                             f"one per cropped axis ({cropped}: axes {self.axis}.."
                             f"{bottom[0].num_axes - 1})")

    def reshape(self, bottom, top):
        big, ref = bottom[0].shape, bottom[1].shape
        if len(big) != len(ref):
            raise self.error(f"bottoms must have the same number of axes: {big} vs {ref}")
        self.slices, shape = [], []
        for i, size in enumerate(big):
            if i < self.axis:
                self.slices.append(slice(None))
                shape.append(size)
                continue
            offset = self.offsets[0 if len(self.offsets) == 1 else i - self.axis] \
                if self.offsets else 0
            if size - offset < ref[i]:
                raise self.error(f"invalid crop on axis {i}: offset {offset} + size {ref[i]} "
                                 f"exceeds bottom[0]'s {size}")
            self.slices.append(slice(offset, offset + ref[i]))
            shape.append(ref[i])
        self.slices = tuple(self.slices)
        top[0].reshape(shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.slices]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 0
            bottom[0].diff[self.slices] = top[0].diff
        if propagate_down[1]:
            bottom[1].diff[...] = 0
