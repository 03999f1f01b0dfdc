"""MemoryData: data, label = rows [pos, pos + batch_size) of arrays given from Python."""
import logging

import numpy as np

from ..errors import NetError
from ..layer import Layer
from ..registry import register_layer

logger = logging.getLogger("caffelite")


class InputArrayError(NetError, RuntimeError):
    """Arrays that set_input_arrays cannot use (pycaffe raises RuntimeError for these)."""


@register_layer("MemoryData")
class MemoryDataLayer(Layer):
    """Serves arrays held in memory: `net.set_input_arrays(data, labels)` (pycaffe) or the
    layer's `reset(data, labels)`.

    `memory_data_param`: batch_size, channels, height, width, all positive. Tops: data
    (batch_size, channels, height, width) and label, (batch_size,) at setup and
    (batch_size, 1, 1, 1) after a forward, as in Caffe. Each forward serves rows
    [pos, pos + batch_size) and moves pos on by batch_size, back to 0 after the last batch;
    the row count is a multiple of batch_size. The arrays are held, not copied, so changes a
    caller makes to them show in later forwards; they are served as given, with no
    `transform_param` (Caffe warns and ignores one). `get_state()/set_state()` carry pos.
    """

    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 2

    def layer_setup(self, bottom, top):
        param = self.layer_param.memory_data_param
        self.batch_size = int(param.batch_size)
        self.channels, self.height, self.width = (int(param.channels), int(param.height),
                                                  int(param.width))
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise self.error("batch_size, channels, height and width must be specified and "
                             "positive in memory_data_param")
        self.data = self.labels = None
        self.n = self.pos = 0
        top[0].reshape((self.batch_size, self.channels, self.height, self.width))
        top[1].reshape((self.batch_size,))

    def reshape(self, bottom, top):
        pass  # forward gives the tops their shapes, as Caffe's MemoryData does

    def reset(self, data, labels):
        """Serve `data` (N, C, H, W) and `labels` (N, 1, 1, 1) or (N,) from row 0 on; N a
        multiple of batch_size. Arrays of the net's float type, C-contiguous, kept as given."""
        if isinstance(labels, np.ndarray) and labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, None, None, None])
        self._check_array(data, "data array", (self.channels, self.height, self.width))
        self._check_array(labels, "labels array", (1, 1, 1))
        if len(data) != len(labels):
            raise self._input_error(f"data and labels must have the same first dimension "
                                    f"(data {len(data)}, labels {len(labels)})")
        if len(data) == 0 or len(data) % self.batch_size:
            raise self._input_error(f"first dimensions of input arrays must be a multiple of "
                                    f"batch size ({len(data)} rows, batch_size "
                                    f"{self.batch_size}); drop or pad rows")
        if self.layer_param.HasField("transform_param"):
            logger.warning("layer '%s' (MemoryData) does not transform array data; its "
                           "transform_param is ignored", self.name)
        self.data, self.labels, self.n, self.pos = data, labels, len(data), 0

    def _check_array(self, array, what, dims):
        if not isinstance(array, np.ndarray):
            raise self._input_error(f"{what} must be a NumPy array, not "
                                    f"{type(array).__name__}")
        if not array.flags.c_contiguous:
            raise self._input_error(f"{what} must be C contiguous (np.ascontiguousarray)")
        if array.ndim != 4:
            raise self._input_error(f"{what} must be 4-d, got shape {array.shape}")
        if array.dtype != self.dtype:
            raise self._input_error(f"{what} must be {self.dtype}, got {array.dtype} "
                                    f"(use .astype(np.{self.dtype}))")
        for axis, name, want in zip((1, 2, 3), ("channels", "height", "width"), dims):
            if array.shape[axis] != want:
                raise self._input_error(f"{what} has wrong number of {name} "
                                        f"({array.shape[axis]}, the layer takes {want})")

    def _input_error(self, message):
        return InputArrayError(f"layer '{self.name}' (MemoryData): {message}")

    def forward(self, bottom, top):
        if self.data is None:
            raise self.error("has no arrays to serve: call net.set_input_arrays(data, labels) "
                             "(or this layer's reset) before the forward")
        rows = slice(self.pos, self.pos + self.batch_size)
        top[0].reshape((self.batch_size, self.channels, self.height, self.width))
        top[1].reshape((self.batch_size, 1, 1, 1))
        top[0].data[...] = self.data[rows]
        top[1].data[...] = self.labels[rows]
        self.pos = (self.pos + self.batch_size) % self.n

    def get_state(self):
        return {"pos": int(self.pos)}

    def set_state(self, state):
        self.pos = int(state["pos"]) % self.n if self.n else int(state["pos"])


def set_input_arrays(net, data, labels):
    """pycaffe's Net.set_input_arrays: the net's first layer serves these arrays."""
    layer = net.layers[0] if net.layers else None
    if not isinstance(layer, MemoryDataLayer):
        first = f"'{layer.name}' ({layer.type})" if layer is not None else "none"
        raise InputArrayError(f"net '{net.name}': set_input_arrays may only be called if the "
                              f"first layer is a MemoryData layer (it is {first})")
    layer.reset(data, labels)
