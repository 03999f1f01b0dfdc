"""DummyData: top_i = a draw of its data_filler (constant 0 by default), refilled per forward."""
from ..fillers import fill, get_filler
from ..layer import Layer
from ..proto import caffelite_pb2 as pb
from ..registry import register_layer


@register_layer("DummyData")
class DummyDataLayer(Layer):
    """No bottoms; one or more tops of fixed shapes filled by fillers.

    dummy_data_param: `shape` (one for all tops or one per top) or the legacy num/channels/
    height/width (each one value or one per top; not both). `data_filler`: none (constant 0),
    one for all tops, or one per top. As in Caffe, tops with a constant filler are filled
    once at setup; the others are refilled on every forward, from the layer's rng.
    """

    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        param = self.layer_param.dummy_data_param
        num_top = len(top)
        if len(param.data_filler) not in (0, 1, num_top):
            raise self.error(f"{len(param.data_filler)} data_fillers for {num_top} tops; give "
                             "none, one for all tops, or one per top")
        self.fillers = list(param.data_filler) or [pb.FillerParameter(type="constant", value=0)]
        for filler in self.fillers:  # a bad filler fails at setup, not at the first forward
            get_filler(filler, self._where())
        for i, blob in enumerate(top):
            blob.reshape(self._shape(param, i, num_top))
        # Caffe fills the constant tops here, once, and only the others in forward.
        self.refill = [f.type != "constant" for f in self.fillers]
        self._fill(top, constant=True)

    def _shape(self, param, i, num_top):
        legacy = {f: list(getattr(param, f)) for f in ("num", "channels", "height", "width")}
        if any(legacy.values()):
            if len(param.shape):
                raise self.error("both shape and legacy num/channels/height/width were "
                                 "specified; use shape only")
            dims = []
            for field, values in legacy.items():
                if len(values) not in (1, num_top):
                    raise self.error(f"dummy_data_param.{field} needs one value or one per top "
                                     f"({num_top}), got {len(values)}")
                dims.append(values[0 if len(values) == 1 else i])
            return tuple(dims)
        if len(param.shape) not in (1, num_top):
            raise self.error(f"dummy_data_param needs one shape or one per top ({num_top}), "
                             f"got {len(param.shape)}")
        dims = tuple(int(d) for d in param.shape[0 if len(param.shape) == 1 else i].dim)
        if any(d < 0 for d in dims):
            raise self.error(f"shape {list(dims)} has a negative dimension")
        return dims

    def _fill(self, top, constant):
        for i, blob in enumerate(top):
            k = i if len(self.fillers) > 1 else 0
            if self.refill[k] != constant:
                fill(blob, self.fillers[k], self.rng, where=self._where())

    def _where(self):
        return f"layer '{self.name}' ({self.type}) data_filler"

    def reshape(self, bottom, top):
        pass  # shapes are fixed at setup, as Caffe's data layers

    def forward(self, bottom, top):
        self._fill(top, constant=False)
