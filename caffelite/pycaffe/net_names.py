"""The names pycaffe's C++ binding gives caffe.Net (`_layer_names`, `_blob_names`, `_inputs` ...)
and its Python helpers that Net itself does not define (`forward_backward_all`, HDF5 weights),
as a mixin of caffelite.Net."""
from itertools import zip_longest

import numpy as np

_HOOK_EVENTS = ("before_forward", "after_forward", "before_backward", "after_backward")


class PycaffeNetNames:
    """Read-only views in pycaffe's shapes: lists where pycaffe gives vectors, blob indices for
    `_inputs`/`_outputs`; and pycaffe's per-layer callbacks."""

    _hooks = None  # {event: [fn, ...]} once a callback is registered

    # -- callbacks: fn(layer_index) around each layer's forward/backward --------------------
    def _add_hook(self, event, fn):
        if self._hooks is None:
            self._hooks = {name: [] for name in _HOOK_EVENTS}
        self._hooks[event].append(fn)

    def _run_hooks(self, event, index):
        for fn in self._hooks[event]:
            fn(index)

    def before_forward(self, fn):
        """Call fn(layer_index) before each layer's forward."""
        self._add_hook("before_forward", fn)

    def after_forward(self, fn):
        """Call fn(layer_index) after each layer's forward."""
        self._add_hook("after_forward", fn)

    def before_backward(self, fn):
        """Call fn(layer_index) before each layer's backward (every layer in the range, as
        Caffe, whether or not it needs one)."""
        self._add_hook("before_backward", fn)

    def after_backward(self, fn):
        """Call fn(layer_index) after each layer's backward; its gradients are complete."""
        self._add_hook("after_backward", fn)

    @property
    def _layer_names(self):
        return list(self.layer_names)

    @property
    def _blob_names(self):
        return list(self.blob_names)

    @property
    def _blobs(self):
        return list(self.blob_list)

    @property
    def _blob_loss_weights(self):
        """Loss weight of every blob, in blob order."""
        return list(self.blob_loss_weights.values())

    @property
    def _inputs(self):
        return list(self._wiring.input_ids)

    @property
    def _outputs(self):
        index = {name: i for i, name in enumerate(self.blob_names)}
        return [index[name] for name in self.outputs]

    def _top_ids(self, i):
        return list(self._wiring.top_ids[i])

    def _bottom_ids(self, i):
        return list(self._wiring.bottom_ids[i])

    def _forward(self, start, end):
        return self.forward_from_to(start, end)

    def _backward(self, start, end):
        self.backward_from_to(start, end)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """pycaffe's forward_backward_all: inputs and output diffs given as arrays of any
        length, run in batches; ({output: data}, {input: diff}) with the padding dropped."""
        forward_in = {k: v for k, v in kwargs.items() if k in self.inputs}
        backward_in = {k: v for k, v in kwargs.items() if k in self.outputs}
        outs, grads = {}, {}
        for fb, bb in zip_longest(self.batches(forward_in), self.batches(backward_in),
                                  fillvalue={}):
            for name, value in self.forward(blobs=blobs, **fb).items():
                outs.setdefault(name, []).append(np.array(value, copy=True))
            for name, value in self.backward(diffs=diffs, **bb).items():
                grads.setdefault(name, []).append(np.array(value, copy=True))
        given = forward_in or backward_in
        total = len(next(iter(given.values()))) if given else None

        def package(parts):
            return {name: np.concatenate(chunks)[:total] for name, chunks in parts.items()}

        return package(outs), package(grads)

    # -- HDF5 weights (Caffe's Net::ToHDF5 / CopyTrainedLayersFromHDF5) ------------------------
    def save_hdf5(self, path, write_diff=False):
        """Write the weights as Caffe's .caffemodel.h5 (needs h5py)."""
        from ..formats.hdf5 import save_caffemodel_h5

        save_caffemodel_h5(self, path, write_diff=write_diff)

    def load_hdf5(self, path):
        """Load weights by layer name from a .caffemodel.h5 (needs h5py)."""
        from ..formats.hdf5 import copy_trained_layers_h5

        copy_trained_layers_h5(self, path)
