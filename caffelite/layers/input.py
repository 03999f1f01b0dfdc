"""Input: tops = net inputs of InputParameter.shape; forward and backward do nothing."""
from ..layer import Layer
from ..registry import register_layer


@register_layer("Input")
class InputLayer(Layer):
    """No bottoms; one or more tops, the net's inputs (deploy nets).

    `input_param.shape` gives one shape for every top, or one shape per top (none leaves the
    tops unshaped). As in Caffe, tops are shaped once in setup and `reshape` is a no-op, so a
    caller may reshape an input blob and then reshape the net.
    """

    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(f"input_param has {len(shapes)} shapes for {len(top)} tops; "
                             "give one shape for all tops or one per top")
        for i, blob in enumerate(top):
            if not shapes:
                break
            dims = tuple(int(d) for d in shapes[0 if len(shapes) == 1 else i].dim)
            if any(d < 0 for d in dims):
                raise self.error(f"input shape {list(dims)} has a negative dimension")
            blob.reshape(dims)

    def reshape(self, bottom, top):
        pass  # inputs keep whatever shape the caller gives them

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
