"""Net: layers wired by blob name; loss = Σ_layers Σ_tops top.data · top.diff (the loss weights)."""
import logging
import os
from collections import OrderedDict
from contextlib import nullcontext

import numpy as np

from .errors import CaffeliteError, NetError
from .formats import binary as io
from .net_build import NetWiring, check_layer_types
from .net_filter import filter_net, insert_splits
from .proto import caffelite_pb2 as pb
from .pycaffe.net_names import PycaffeNetNames
from .random import default_rng, make_rng
from .registry import suggest
from .runtime import deferring, flush_denormals, single_blas_thread

_PHASES = {"TRAIN": pb.TRAIN, "TEST": pb.TEST}
logger = logging.getLogger("caffelite")


class Net(PycaffeNetNames):
    """A Caffe net built from a prototxt/YAML path or a pb.NetParameter (pycaffe's caffe.Net).

    `Net(model, phase=TEST, weights=None, level=0, stages=())`; pycaffe's positional
    `Net(model, weights, phase)` works too. Without phase/level the model's own `state` (default
    TEST, 0) applies; stages are added to the state's. Building follows Caffe's Net::Init:
    FilterNet by the state, InsertSplits for blobs used more than once, then each layer set up
    in order (a layer without `phase` inherits the net's).

    pycaffe's attributes: `blobs` (OrderedDict name -> Blob), `params` (layer -> [Blob...],
    layers with parameters), `layers`, `layer_dict`, `inputs`, `outputs` (the never-consumed
    blobs, alphabetical), `top_names`, `bottom_names`, `blob_loss_weights`. For solvers:
    `learnable_params` (owners of shared params only), `params_lr`, `params_weight_decay`.

    Each net owns `rng` (all of its layers draw from it); by default it is seeded from the
    process default, so `caffelite.set_random_seed(s)` before building makes fillers repeat.
    With `debug_info` (the NetParameter field, or set on the net) every forward and backward
    logs the mean |value| of each top, bottom diff and parameter, as Caffe does.
    """

    def __init__(self, model, phase=None, weights=None, level=None, stages=(), *, rng=None,
                 dtype=np.float32, strict=False):
        if isinstance(phase, os.PathLike) or (isinstance(phase, str) and ("." in phase or
                                                                         os.sep in phase)):
            phase, weights = weights, phase  # pycaffe's legacy Net(model, weights, phase)
        self.dtype = np.dtype(dtype)
        self.rng = rng if rng is not None else make_rng(int(default_rng().integers(2**63)))
        self.source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        param = self._read_model(model)
        if phase is not None:
            param.state.phase = _phase(phase)
        if level is not None:
            param.state.level = int(level)
        param.state.stage.extend([stages] if isinstance(stages, str) else list(stages or ()))
        self.phase = param.state.phase
        self.state = param.state
        try:
            self._build(param)
        except CaffeliteError as exc:
            if self.source and not str(exc).startswith(self.source):
                raise type(exc)(f"{self.source}: {exc}") from None
            raise
        if weights:
            self.copy_from(weights, strict=strict)

    # -- building ---------------------------------------------------------------------------
    def _read_model(self, model):
        if isinstance(model, pb.NetParameter):
            param = pb.NetParameter()
            param.CopyFrom(model)
            from .formats.upgrade import net_needs_upgrade, upgrade_net_param

            if net_needs_upgrade(param):  # V1 layers, net-level inputs ... (files are upgraded
                param = upgrade_net_param(param, f"NetParameter '{param.name}'")  # on reading)
            return param
        if isinstance(model, (str, os.PathLike)):
            from .formats.config import read_net_param, resolve_net_paths

            path = os.fspath(model)
            return resolve_net_paths(read_net_param(path), path)
        raise TypeError(f"Net takes a path or a NetParameter, not {type(model).__name__}")

    def _build(self, param):
        self.name = param.name
        self.debug_info = param.debug_info
        filtered = filter_net(param)
        self.net_param = insert_splits(filtered, unfiltered=param)
        check_layer_types(self.net_param)
        wiring = NetWiring(self.net_param, self.phase, self.dtype, self.rng)
        self._wiring = wiring
        self.layers = wiring.layers
        self.layer_names = [layer.name for layer in self.layers]
        self.layer_dict = OrderedDict(zip(self.layer_names, self.layers))
        self.blob_list = wiring.blobs  # Caffe's blobs(), anonymous tops included
        self.blob_names = wiring.blob_names
        self.blobs = OrderedDict(zip(self.blob_names, self.blob_list))
        self.bottom_vecs = [[wiring.blobs[i] for i in ids] for ids in wiring.bottom_ids]
        self.top_vecs = [[wiring.blobs[i] for i in ids] for ids in wiring.top_ids]
        self.bottom_names = OrderedDict(
            (name, [self.blob_names[i] for i in ids])
            for name, ids in zip(self.layer_names, wiring.bottom_ids))
        self.top_names = OrderedDict(
            (name, [self.blob_names[i] for i in ids])
            for name, ids in zip(self.layer_names, wiring.top_ids))
        self.inputs = [self.blob_names[i] for i in wiring.input_ids]
        self.outputs = sorted(wiring.available)  # Caffe keeps them in a std::set
        self.input_blobs = [self.blobs[n] for n in self.inputs]
        self.output_blobs = [self.blobs[n] for n in self.outputs]
        self.blob_loss_weights = OrderedDict(zip(self.blob_names, wiring.blob_loss_weights))
        self.params = OrderedDict((layer.name, layer.blobs) for layer in self.layers
                                  if layer.blobs)
        self.learnable_params = wiring.learnable_params
        self.params_lr = wiring.params_lr
        self.params_weight_decay = wiring.params_weight_decay
        self.param_owners = wiring.param_owners
        # A layer may compute its weight gradient on a second thread during backward
        # (runtime.defer) unless it shares parameters with another layer.
        sharing = set()
        for i, owner in enumerate(wiring.param_owners):
            if owner >= 0:
                sharing.update((wiring.param_layer_indices[i][0],
                                wiring.param_layer_indices[owner][0]))
        for i, layer in enumerate(self.layers):
            layer.defer_param_grads = i not in sharing
        self.layer_need_backward = wiring.layer_need_backward
        self.bottom_need_backward = wiring.bottom_need_backward
        self.blob_need_backward = OrderedDict(zip(self.blob_names, wiring.blob_need_backward))
        # (blob, weight) of each weighted top, per layer: the loss weight lives in the diff
        self._loss_tops = [[(top, w) for top, w in zip(self.top_vecs[i], layer.loss_weights) if w]
                           for i, layer in enumerate(self.layers)]
        self._loss_diffs = [[top.diff for top, _ in tops] for tops in self._loss_tops]

    # -- forward / backward -----------------------------------------------------------------
    def _layer_index(self, name):
        try:
            return self.layer_names.index(name)
        except ValueError:
            raise NetError(f"net '{self.name}' has no layer '{name}'"
                           f"{suggest(name, self.layer_names)}") from None

    def _refresh_loss_weights(self, i):
        """A reshape that reallocates a weighted top also drops its loss weight: put it back."""
        for k, (top, weight) in enumerate(self._loss_tops[i]):
            if top.diff is not self._loss_diffs[i][k]:
                top.diff[...] = weight
                self._loss_diffs[i][k] = top.diff

    def forward_from_to(self, start=0, end=None):
        """Run layers start..end (inclusive) and return their summed loss."""
        end = len(self.layers) - 1 if end is None else end
        loss = 0.0
        hooks = self._hooks  # pycaffe's before_forward/after_forward callbacks, if any
        with single_blas_thread(), flush_denormals():
            for i in range(start, end + 1):
                layer, bottom, top = self.layers[i], self.bottom_vecs[i], self.top_vecs[i]
                if hooks:
                    self._run_hooks("before_forward", i)
                with layer.naming_allocation_errors(bottom):
                    layer.reshape(bottom, top)
                    if self._loss_tops[i]:
                        self._refresh_loss_weights(i)
                    layer.forward(bottom, top)
                for blob, _ in self._loss_tops[i]:
                    loss += float((blob.data * blob.diff).sum())
                if self.debug_info:
                    self._log_debug("Forward", i)
                if hooks:
                    self._run_hooks("after_forward", i)
        return loss

    def backward_from_to(self, start=None, end=0):
        """Run backward of layers start down to end (inclusive) that need it."""
        start = len(self.layers) - 1 if start is None else start
        hooks = self._hooks  # with callbacks, gradients are complete when each one runs
        with single_blas_thread(), flush_denormals(), deferring() if not hooks else nullcontext():
            for i in range(start, end - 1, -1):
                if hooks:
                    self._run_hooks("before_backward", i)
                if self.layer_need_backward[i]:
                    self.layers[i].backward(self.top_vecs[i], self.bottom_need_backward[i],
                                            self.bottom_vecs[i])
                    if self.debug_info:
                        self._log_debug("Backward", i)
                if hooks:
                    self._run_hooks("after_backward", i)

    def _log_debug(self, direction, i):
        """Caffe's Forward/BackwardDebugInfo: mean |data| of tops and params after forward,
        mean |diff| of the bottoms and params that got gradients after backward."""
        layer = self.layers[i]
        ids = self._wiring.top_ids[i] if direction == "Forward" else self._wiring.bottom_ids[i]
        for k, blob_id in enumerate(ids):
            if direction == "Forward" or self.bottom_need_backward[i][k]:
                blob, kind = self.blob_list[blob_id], "top" if direction == "Forward" else "bottom"
                values = blob.data if direction == "Forward" else blob.diff
                logger.info("    [%s] Layer %s, %s blob %s %s: %g", direction, layer.name, kind,
                            self.blob_names[blob_id], "data" if kind == "top" else "diff",
                            _abs_mean(values))
        for j, blob in enumerate(layer.blobs):
            if direction == "Forward":
                logger.info("    [Forward] Layer %s, param blob %d data: %g", layer.name, j,
                            _abs_mean(blob.data))
            elif layer.param_propagate_down[j]:
                logger.info("    [Backward] Layer %s, param blob %d diff: %g", layer.name, j,
                            _abs_mean(blob.diff))

    def _set_arrays(self, values, allowed, kind):
        for name, array in values.items():
            if name not in allowed:
                raise NetError(f"{name!r} is not one of the net's {kind} {allowed}"
                               f"{suggest(name, allowed)}")
            blob = self.blobs[name]
            array = np.asarray(array)
            if kind == "inputs" and array.shape != blob.shape:
                blob.reshape(array.shape)  # the layers reshape to it in forward
            elif array.shape != blob.shape:
                raise NetError(f"diff for {name!r} has shape {array.shape}, the blob has "
                               f"{blob.shape}")
            (blob.data if kind == "inputs" else blob.diff)[...] = array

    def _check_blob_names(self, names):
        for name in names:
            if name not in self.blobs:
                raise NetError(f"net '{self.name}' has no blob '{name}'"
                               f"{suggest(name, self.blobs)}")

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """pycaffe's forward: set the given inputs (reshaping them to the arrays given), run
        layers start..end and return {name: data} of the outputs (or of `end`'s tops) plus
        `blobs`. The arrays are the blobs' own memory, overwritten by the next forward."""
        blobs = list(blobs or [])
        self._check_blob_names(blobs)
        start_i = 0 if start is None else self._layer_index(start)
        end_i = len(self.layers) - 1 if end is None else self._layer_index(end)
        names = (self.top_names[end] if end is not None else self.outputs) + blobs
        self._set_arrays(inputs, self.inputs, "inputs")
        self.forward_from_to(start_i, end_i)
        return {name: self.blobs[name].data for name in dict.fromkeys(names)}

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        """pycaffe's backward: set the given output diffs, run layers start down to end and
        return {name: diff} of the inputs (or of `end`'s bottoms) plus `diffs`."""
        diffs = list(diffs or [])
        self._check_blob_names(diffs)
        start_i = len(self.layers) - 1 if start is None else self._layer_index(start)
        end_i = 0 if end is None else self._layer_index(end)
        names = (self.bottom_names[end] if end is not None else self.inputs) + diffs
        self._set_arrays(top_diffs, self.outputs, "outputs")
        self.backward_from_to(start_i, end_i)
        return {name: self.blobs[name].diff for name in dict.fromkeys(names)}

    def forward_prefilled(self):
        """Forward over the whole net with the inputs as they are; the loss."""
        return self.forward_from_to(0, len(self.layers) - 1)

    def forward_backward(self):
        """Caffe's ForwardBackward: forward, backward, and the loss."""
        loss = self.forward_prefilled()
        self.backward_from_to()
        return loss

    def forward_all(self, blobs=None, **inputs):
        """Forward arrays of any length through the net in batches of the input batch size
        (the last batch zero-padded, as pycaffe); concatenated outputs."""
        if not inputs:
            return self.forward(blobs=blobs)
        lengths = {len(a) for a in inputs.values()}
        if len(lengths) != 1:
            raise NetError(f"forward_all inputs have different lengths {sorted(lengths)}")
        total = lengths.pop()
        results = {}
        for chunk in self.batches(inputs):
            for name, out in self.forward(blobs=blobs, **chunk).items():
                results.setdefault(name, []).append(np.array(out, copy=True))
        return {name: np.concatenate(parts)[:total] if parts[0].ndim else parts[-1]
                for name, parts in results.items()}

    def batches(self, arrays):
        """{name: array} of any length in chunks of the net's batch size (the first blob's
        leading dimension), the last chunk zero-padded, as pycaffe's forward_all runs them."""
        if not arrays:
            return
        total = len(next(iter(arrays.values())))
        first = self.blobs.get(next(iter(arrays)))  # an unknown name: forward says so
        batch = (first.shape[0] if first is not None else 0) or total
        for begin in range(0, total, batch):
            chunk = {}
            for name, array in arrays.items():
                part = np.asarray(array[begin:begin + batch])
                if len(part) < batch:
                    pad = np.zeros((batch - len(part),) + part.shape[1:], part.dtype)
                    part = np.concatenate([part, pad])
                chunk[name] = part
            yield chunk

    def reshape(self):
        """Reshape every layer to its bottoms (after an input blob was reshaped)."""
        for i, layer in enumerate(self.layers):
            with layer.naming_allocation_errors(self.bottom_vecs[i]):
                layer.reshape(self.bottom_vecs[i], self.top_vecs[i])
            if self._loss_tops[i]:
                self._refresh_loss_weights(i)

    # -- parameters -------------------------------------------------------------------------
    def clear_param_diffs(self):
        for param in self.learnable_params:  # shared params use their owner's diff
            param.diff[...] = 0

    def update(self):
        """data -= diff for every owned parameter (Caffe's Net::Update)."""
        for param in self.learnable_params:
            param.data[...] -= param.diff

    def copy_from(self, path, strict=False):
        """Load weights by layer name from a .caffemodel, or a .caffemodel.h5 (an HDF5 file,
        whatever its name, as Caffe decides) (pycaffe's copy_from). Learnable layers a
        .caffemodel lacks are a warning, or a WeightsError with strict=True."""
        path = os.fspath(path)
        from .formats.hdf5 import copy_trained_layers_h5, is_hdf5

        if is_hdf5(path):
            return copy_trained_layers_h5(self, path)
        return io.copy_trained_layers(self, io.load_caffemodel(path), source=path,
                                      strict=strict)

    def copy_trained_layers_from(self, net_param, strict=False):
        """Load weights by layer name from a pb.NetParameter holding blobs."""
        return io.copy_trained_layers(self, net_param, strict=strict,
                                      source=f"NetParameter '{net_param.name}'")

    def share_trained_layers_with(self, other):
        """Use other's parameter data (not diffs) for layers of the same name, as Caffe's
        ShareTrainedLayersWith does for test nets."""
        by_name = {}
        for layer in self.layers:
            by_name.setdefault(layer.name, layer)
        for source in other.layers:
            target = by_name.get(source.name)
            if target is None:
                continue
            if len(target.blobs) != len(source.blobs):
                raise NetError(f"cannot share layer '{source.name}': {len(source.blobs)} "
                               f"blob(s) in the source net, {len(target.blobs)} here")
            for j, (mine, theirs) in enumerate(zip(target.blobs, source.blobs)):
                if mine.shape != theirs.shape:
                    raise NetError(f"cannot share param {j} of layer '{source.name}': shape "
                                   f"mismatch, source {list(theirs.shape)}, target "
                                   f"{list(mine.shape)}")
                mine.share_data(theirs)

    share_with = share_trained_layers_with  # pycaffe's name

    def to_proto(self, write_diff=False):
        """Caffe's ToProto: the net's layers with their parameter blobs as a NetParameter."""
        return pb.NetParameter.FromString(io.net_param_bytes(self, write_diff))

    def save(self, path, write_diff=False):
        """Write a .caffemodel (binary NetParameter, float32 blobs) atomically."""
        io.save_caffemodel(self, path, write_diff=write_diff)

    def set_input_arrays(self, data, labels):
        """pycaffe's set_input_arrays: the first layer, a MemoryData, serves `data`
        (N, C, H, W) and `labels` ((N,) or (N, 1, 1, 1)) from row 0, batch_size rows per
        forward. Both float32 (the net's type), C-contiguous, N a multiple of batch_size;
        anything else raises an error that is also a RuntimeError, as pycaffe's."""
        from .layers.memory_data import set_input_arrays

        set_input_arrays(self, data, labels)

    # -- layer state (data cursors ...) -----------------------------------------------------
    def layer_states(self):
        """{layer name: state} of the layers that have one (Data's cursor ...)."""
        return {layer.name: layer.get_state() for layer in self.layers
                if hasattr(layer, "get_state")}

    def load_layer_states(self, states):
        for name, state in states.items():
            layer = self.layer_dict.get(name)
            if layer is None or not hasattr(layer, "set_state"):
                raise NetError(f"net '{self.name}' has no layer '{name}' with a state to load"
                               f"{suggest(name, self.layer_names)}")
            layer.set_state(state)

    def __repr__(self):
        return (f"Net('{self.name}', phase={pb.Phase.Name(self.phase)}, "
                f"{len(self.layers)} layers, inputs={self.inputs}, outputs={self.outputs})")


def _abs_mean(values):
    return float(abs(values).sum()) / max(values.size, 1)


def _phase(phase):
    if isinstance(phase, str):
        try:
            return _PHASES[phase.upper()]
        except KeyError:
            raise NetError(f"phase must be TRAIN or TEST, not {phase!r}") from None
    if phase not in (pb.TRAIN, pb.TEST):
        raise NetError(f"phase must be caffelite.TRAIN or caffelite.TEST, not {phase!r}")
    return int(phase)
