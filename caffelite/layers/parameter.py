"""Parameter: top = a learnable blob (parameter_param.shape), with no bottoms."""
from ..layer import Layer
from ..registry import register_layer


@register_layer("Parameter")
class ParameterLayer(Layer):
    """No bottoms -> one top of parameter_param.shape, which is blobs[0] itself.

    blobs[0] starts at zero (Caffe has no filler here; weights come from a caffemodel or the
    solver). Forward makes the top share blobs[0]'s data and diff, so the diff the layers above
    write into the top is the parameter's gradient.
    """

    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        shape = tuple(int(d) for d in self.layer_param.parameter_param.shape.dim)
        if any(d < 0 for d in shape):
            raise self.error(f"parameter_param.shape has a negative dimension: {shape}")
        if not self.blobs:
            self.blobs = [self.new_param_blob(shape)]
        top[0].reshape(shape)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        # Caffe shares in Forward (not Reshape), after SetLossWeights has written the top diff.
        top[0].reshape(self.blobs[0].shape)
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])
