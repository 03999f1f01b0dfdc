"""Caffe's config upgrades: V0 -> V1 -> V2 layers, data and input fields, BatchNorm, solver_type.

`upgrade_net_param` follows Caffe's UpgradeNetAsNeeded in its order: V0 layers (padding layers
folded into the next conv/pool) -> V1; scale/mean_file/crop_size/mirror moved into
transform_param; V1 `layers {type: CONVOLUTION blobs_lr: 1}` -> V2 `layer {type: "Convolution"
param {lr_mult: 1}}`; net-level input/input_shape/input_dim -> a leading Input layer "input";
old 3-param BatchNorm -> lr_mult = decay_mult = 0. `upgrade_solver_param` turns the solver_type
enum into `type` and, unlike Caffe, also upgrades nets held inline in the solver.
"""
import os
import warnings

from ..errors import ConfigError
from ..proto import caffelite_pb2 as pb
from ..registry import suggest
from .config_errors import is_repeated

V1 = pb.V1LayerParameter
# V1LayerParameter.LayerType -> the V2 type string (Caffe's UpgradeV1LayerType).
V1_LAYER_TYPES = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct", V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss", V1.MVN: "MVN",
    V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split",
    V1.SLICE: "Slice", V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData", V1.THRESHOLD: "Threshold",
}
# V0 type strings -> V1 enums (Caffe's UpgradeV0LayerType).
V0_LAYER_TYPES = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}
_CONV_IP = {"conv": "convolution_param", "innerproduct": "inner_product_param"}
_CONV_POOL = {"conv": "convolution_param", "pool": "pooling_param"}
_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param", "images": "image_data_param",
            "window_data": "window_data_param"}
_ANY = {"*": "transform_param"}
# V0 field -> ({V0 type (or "*"): V1 sub-message}, field name there); the V0 layer's
# blobs/blobs_lr/weight_decay are copied as they are.
_V0_FIELDS = {
    "num_output": (_CONV_IP, "num_output"), "biasterm": (_CONV_IP, "bias_term"),
    "weight_filler": (_CONV_IP, "weight_filler"), "bias_filler": (_CONV_IP, "bias_filler"),
    "pad": (_CONV_POOL, "pad"), "kernelsize": (_CONV_POOL, "kernel_size"),
    "group": ({"conv": "convolution_param"}, "group"), "stride": (_CONV_POOL, "stride"),
    "pool": ({"pool": "pooling_param"}, "pool"),
    "dropout_ratio": ({"dropout": "dropout_param"}, "dropout_ratio"),
    "local_size": ({"lrn": "lrn_param"}, "local_size"), "alpha": ({"lrn": "lrn_param"}, "alpha"),
    "beta": ({"lrn": "lrn_param"}, "beta"), "k": ({"lrn": "lrn_param"}, "k"),
    "source": (dict(_SOURCES, infogain_loss="infogain_loss_param"), "source"),
    "scale": (_ANY, "scale"), "meanfile": (_ANY, "mean_file"), "cropsize": (_ANY, "crop_size"),
    "mirror": (_ANY, "mirror"), "batchsize": (_SOURCES, "batch_size"),
    "rand_skip": ({"data": "data_param", "images": "image_data_param"}, "rand_skip"),
    "shuffle_images": ({"images": "image_data_param"}, "shuffle"),
    "new_height": ({"images": "image_data_param"}, "new_height"),
    "new_width": ({"images": "image_data_param"}, "new_width"),
    "concat_dim": ({"concat": "concat_param"}, "concat_dim"),
    "det_fg_threshold": ({"window_data": "window_data_param"}, "fg_threshold"),
    "det_bg_threshold": ({"window_data": "window_data_param"}, "bg_threshold"),
    "det_fg_fraction": ({"window_data": "window_data_param"}, "fg_fraction"),
    "det_context_pad": ({"window_data": "window_data_param"}, "context_pad"),
    "det_crop_mode": ({"window_data": "window_data_param"}, "crop_mode"),
    "hdf5_output_param": ({"hdf5_output": "hdf5_output_param"}, None),
}
_V0_COPIED = ("name", "type", "blobs", "blobs_lr", "weight_decay")
_DATA_PARAMS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                V1.WINDOW_DATA: "window_data_param", "Data": "data_param",
                "ImageData": "image_data_param", "WindowData": "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
SOLVER_TYPES = {pb.SolverParameter.SGD: "SGD", pb.SolverParameter.NESTEROV: "Nesterov",
                pb.SolverParameter.ADAGRAD: "AdaGrad", pb.SolverParameter.RMSPROP: "RMSProp",
                pb.SolverParameter.ADADELTA: "AdaDelta", pb.SolverParameter.ADAM: "Adam"}


def net_needs_upgrade(net):
    """True when read_net_param would change `net` (legacy layers, fields or BatchNorm params)."""
    return bool(net.layers or net.input or net.input_shape or net.input_dim
                or _data_fields_to_move(net) or _old_batch_norms(net))


def upgrade_net_param(net, filename=None):
    """Upgrade a NetParameter in place to the current (V2) form and return it."""
    where = filename or "<net>"
    if net.layer and net.layers:
        raise ConfigError(f"{where}: the net mixes 'layer' (current) and 'layers' (V1) entries; "
                          "write every layer in one form (`caffelite convert` upgrades V1 files)")
    if any(layer.HasField("layer") for layer in net.layers):
        _upgrade_v0(net, where)
    _move_transform_fields(net, where)
    if net.layers:
        upgraded = [_upgrade_v1_layer(layer) for layer in net.layers]
        net.ClearField("layers")
        net.layer.extend(upgraded)
    _upgrade_input(net, where)
    for layer in _old_batch_norms(net):
        # Caffe's BatchNorm keeps mean, variance and the moving-average factor as blobs that
        # the solver must not touch; old nets declared three params for them.
        for spec in layer.param:
            spec.lr_mult = spec.decay_mult = 0.0
    return net


def upgrade_solver_param(solver, filename=None):
    """Upgrade a SolverParameter in place (solver_type -> type, inline nets) and return it."""
    where = filename or "<solver>"
    if solver.HasField("solver_type"):
        new = SOLVER_TYPES[solver.solver_type]
        if solver.HasField("type"):
            raise ConfigError(f"{where}: both 'solver_type' (old enum) and 'type' are set; "
                              f"keep only type: {solver.type!r}")
        solver.type = new
        solver.ClearField("solver_type")
    for name in ("net_param", "train_net_param"):
        if solver.HasField(name):
            upgrade_net_param(getattr(solver, name), f"{where} {name}")
    for i, net in enumerate(solver.test_net_param):
        upgrade_net_param(net, f"{where} test_net_param[{i}]")
    return solver


def upgrade_snapshot_prefix(solver, solver_file):
    """Caffe's rule for a solver read from a file: no snapshot_prefix -> the solver path minus
    its extension; a prefix naming a directory -> that directory / the solver file's stem."""
    stem = os.path.splitext(str(solver_file))[0]
    if not solver.HasField("snapshot_prefix"):
        solver.snapshot_prefix = stem
    elif os.path.isdir(solver.snapshot_prefix):
        solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, os.path.basename(stem))
    return solver


def _upgrade_v0(net, where):
    """V0 `layers { layer { type: "conv" ... } }` -> V1, folding padding layers first."""
    folded = _fold_padding(net, where)
    net.ClearField("layers")
    for old in folded:
        new = net.layers.add()
        if old.HasField("layer"):
            _upgrade_v0_layer(old, new, where)
        else:
            new.CopyFrom(old)


def _fold_padding(net, where):
    """Drop V0 "padding" layers, moving their pad into the conv/pool layer that reads them."""
    last_producer = {name: -1 for name in net.input}
    kept = []
    for i, connection in enumerate(net.layers):
        v0 = connection.layer
        if v0.type != "padding":
            kept.append(V1())
            kept[-1].CopyFrom(connection)
        for j, blob in enumerate(connection.bottom):
            if blob not in last_producer:
                raise ConfigError(f"{where}: layer '{v0.name or connection.name}' reads blob "
                                  f"'{blob}', which no earlier layer or input produces")
            source = net.layers[last_producer[blob]] if last_producer[blob] >= 0 else None
            if source is None or source.layer.type != "padding":
                continue
            if v0.type not in ("conv", "pool") or len(connection.bottom) != 1 \
                    or len(source.bottom) != 1 or len(source.top) != 1:
                raise ConfigError(f"{where}: padding layer '{source.layer.name}' must feed a "
                                  "single-input conv or pool layer, with one bottom and one top")
            kept[-1].layer.pad = source.layer.pad
            kept[-1].bottom[j] = source.bottom[0]
        for blob in connection.top:
            last_producer[blob] = i
    return kept


def _upgrade_v0_layer(old, new, where):
    v0 = old.layer
    new.bottom.extend(old.bottom)
    new.top.extend(old.top)
    if v0.HasField("name"):
        new.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_LAYER_TYPES:
            raise ConfigError(f"{where}: unknown V0 layer type '{v0.type}' in layer '{v0.name}'"
                              f"{suggest(v0.type, V0_LAYER_TYPES)}")
        new.type = V0_LAYER_TYPES[v0.type]
    new.blobs.extend(v0.blobs)
    new.blobs_lr.extend(v0.blobs_lr)
    new.weight_decay.extend(v0.weight_decay)
    for field, value in v0.ListFields():
        if field.name in _V0_COPIED:
            continue
        targets, target_field = _V0_FIELDS.get(field.name, ({}, None))
        param_name = targets.get(v0.type, targets.get("*"))
        if param_name is None:
            # Caffe logs this and carries on with the rest of the layer; so do we.
            warnings.warn(f"{where}: V0 field '{field.name}' does not apply to layer "
                          f"'{v0.name}' of type '{v0.type}'; ignored", stacklevel=4)
            continue
        param = getattr(new, param_name)
        if target_field is None:
            param.CopyFrom(value)
            continue
        target = param.DESCRIPTOR.fields_by_name[target_field]
        if target.message_type is not None:
            getattr(param, target_field).CopyFrom(value)
        elif is_repeated(target):
            getattr(param, target_field).append(value)
        else:
            setattr(param, target_field, value)  # V0 PoolMethod numbers equal PoolingParameter's


def _data_fields_to_move(net):
    """(layer, data sub-message) pairs that still hold transformation fields."""
    found = []
    for layer in list(net.layers) + list(net.layer):
        name = _DATA_PARAMS.get(layer.type)
        if name and layer.HasField(name):
            param = getattr(layer, name)
            if any(param.HasField(f) for f in _TRANSFORM_FIELDS):
                found.append((layer, param))
    return found


def _move_transform_fields(net, where):
    """scale/mean_file/crop_size/mirror from data_param (and image/window data) into
    transform_param. Caffe does this for V1 layers only and would silently ignore them in a
    V2 layer; moving them there too keeps such nets working."""
    for layer, param in _data_fields_to_move(net):
        for name in _TRANSFORM_FIELDS:
            if not param.HasField(name):
                continue
            value = getattr(param, name)
            transform = layer.transform_param
            if transform.HasField(name) and getattr(transform, name) != value:
                raise ConfigError(f"{where}: layer '{layer.name}' sets {name} in both "
                                  f"transform_param and the data parameters; keep the one in "
                                  "transform_param")
            setattr(transform, name, value)
            param.ClearField(name)


def _param(layer, i):
    while len(layer.param) <= i:
        layer.param.add()
    return layer.param[i]


def _upgrade_v1_layer(old):
    """One V1LayerParameter -> LayerParameter (Caffe's UpgradeV1LayerParameter)."""
    new = pb.LayerParameter()
    new.bottom.extend(old.bottom)
    new.top.extend(old.top)
    if old.HasField("name"):
        new.name = old.name
    new.include.extend(old.include)
    new.exclude.extend(old.exclude)
    if old.HasField("type"):
        new.type = V1_LAYER_TYPES[old.type]
    new.blobs.extend(old.blobs)
    for i, name in enumerate(old.param):
        _param(new, i).name = name
    for i, mode in enumerate(old.blob_share_mode):
        _param(new, i).share_mode = mode  # STRICT/PERMISSIVE have the same numbers in ParamSpec
    for i, lr in enumerate(old.blobs_lr):
        _param(new, i).lr_mult = lr
    for i, decay in enumerate(old.weight_decay):
        _param(new, i).decay_mult = decay
    new.loss_weight.extend(old.loss_weight)
    # Every V1 *_param (transform_param and loss_param included) exists in LayerParameter.
    for field, value in old.ListFields():
        if field.name.endswith("_param"):
            getattr(new, field.name).CopyFrom(value)
    return new


def _upgrade_input(net, where):
    """Net-level input + input_shape/input_dim -> a leading Input layer named "input"."""
    if not net.input:
        net.ClearField("input_shape")
        net.ClearField("input_dim")
        return
    inputs, shapes, dims = list(net.input), list(net.input_shape), list(net.input_dim)
    if shapes or dims:
        if shapes and len(shapes) != len(inputs):
            raise ConfigError(f"{where}: {len(inputs)} input(s) but {len(shapes)} input_shape(s);"
                              " give one input_shape per input")
        if not shapes and len(dims) != 4 * len(inputs):
            raise ConfigError(f"{where}: {len(inputs)} input(s) need {4 * len(inputs)} input_dim "
                              f"values (N, C, H, W each), got {len(dims)}")
        layer = pb.LayerParameter(name="input", type="Input", top=inputs)
        for i in range(len(inputs)):
            shape = layer.input_param.shape.add()
            if shapes:
                shape.CopyFrom(shapes[i])
            else:
                shape.dim.extend(dims[4 * i:4 * i + 4])
        rest = list(net.layer)
        net.ClearField("layer")
        net.layer.append(layer)
        net.layer.extend(rest)
    # An input without shape is a legacy caffemodel's: dropping the field is enough.
    for name in ("input", "input_shape", "input_dim"):
        net.ClearField(name)


def _old_batch_norms(net):
    """BatchNorm layers in the old form: three param specs, not all lr_mult = decay_mult = 0."""
    return [layer for layer in net.layer if layer.type == "BatchNorm" and len(layer.param) == 3
            and any(p.lr_mult or p.decay_mult for p in layer.param)]
