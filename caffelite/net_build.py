"""Net wiring (Caffe's Net::Init): layers in order, bottoms/tops by name, params, backward needs."""
from .blob import Blob
from .errors import CaffeliteError, layer_error
from .proto import caffelite_pb2 as pb
from .registry import LAYERS, suggest

AUTOMATIC = "(automatic)"  # Caffe's name for the anonymous tops of loss layers


def check_layer_types(net_param):
    """Every type is registered; else a NetError naming the layer and the closest type."""
    from . import layers  # noqa: F401  (registers the types)

    for lp in net_param.layer:
        if lp.type not in LAYERS:
            hint = suggest(lp.type, LAYERS.names())
            raise layer_error(lp, f"unknown layer type '{lp.type}'{hint} (`caffelite layers` "
                                  "lists the types)")


class NetWiring:
    """What Net::Init builds, kept as plain lists in Caffe's order (blob, layer, param ids).

    Blobs: `blobs` / `blob_names` (anonymous loss tops are named "(automatic)"), per-layer
    `bottom_ids` / `top_ids`. Params: `params` (every layer's blobs), `param_owners` (-1 for an
    owner, else the owner's net param id), `learnable_params` (owners only) with `params_lr`,
    `params_weight_decay`. Backward: `layer_need_backward`, `bottom_need_backward`,
    `blob_need_backward`. `available` ends as the blobs no layer consumed: the net outputs.
    """

    def __init__(self, net_param, phase, dtype, rng):
        self.dtype, self.rng = dtype, rng
        self.layers, self.blobs, self.blob_names = [], [], []
        self.bottom_ids, self.top_ids = [], []
        self.blob_index, self.available = {}, set()
        self.blob_need_backward, self.bottom_need_backward, self.layer_need_backward = [], [], []
        self.blob_loss_weights, self.input_ids = [], []
        self.params, self.param_owners, self.param_layer_indices = [], [], []
        self.param_display_names, self.param_names_index = [], {}
        self.learnable_params, self.learnable_param_ids = [], []
        self.params_lr, self.params_weight_decay = [], []
        self.has_params_lr, self.has_params_decay = [], []
        for lp in net_param.layer:
            if not lp.HasField("phase"):
                lp.phase = phase  # a layer without phase inherits the net's
            self._append_layer(lp)
        self._prune_backward()
        if net_param.force_backward:
            self._force_backward()
        self._share_weights()

    # -- layers and blobs -------------------------------------------------------------------
    def _append_layer(self, lp):
        if len(lp.propagate_down) and len(lp.propagate_down) != len(lp.bottom):
            raise layer_error(lp, f"propagate_down has {len(lp.propagate_down)} values; give "
                                  f"none or one per bottom ({len(lp.bottom)})")
        layer_id = len(self.layers)
        layer = LAYERS.get(lp.type)(lp, phase=lp.phase, dtype=self.dtype, rng=self.rng)
        self.layers.append(layer)
        self.bottom_ids.append([])
        self.top_ids.append([])
        self.bottom_need_backward.append([])
        need_backward = False
        for j, name in enumerate(lp.bottom):
            need_backward |= self._append_bottom(lp, layer_id, j, name)
        for j, name in enumerate(lp.top):
            self._append_top(lp, layer_id, j, name)
            if lp.type == "Input":
                self.input_ids.append(self.top_ids[layer_id][-1])
        if layer.auto_top_blobs:
            needed = max(layer.min_top_blobs, layer.exact_num_top_blobs)
            for _ in range(len(lp.top), needed):
                self._new_blob(AUTOMATIC, layer_id, register=False)
        bottom = [self.blobs[i] for i in self.bottom_ids[layer_id]]
        top = [self.blobs[i] for i in self.top_ids[layer_id]]
        try:
            layer.setup(bottom, top)
        except CaffeliteError:
            raise
        except Exception as exc:  # a layer bug or a shape NumPy refused: say which layer
            exc.add_note(f"while setting up layer '{lp.name}' ({lp.type})")
            raise
        for blob_id, weight in zip(self.top_ids[layer_id], layer.loss_weights):
            self.blob_loss_weights[blob_id] = float(weight)
        if len(lp.param) > len(layer.blobs):
            raise layer_error(lp, f"{len(lp.param)} param specs given but the layer has "
                                  f"{len(layer.blobs)} parameter blob(s)")
        for param_id in range(len(layer.blobs)):
            spec = lp.param[param_id] if param_id < len(lp.param) else pb.ParamSpec()
            learn = spec.lr_mult != 0  # a frozen param needs no gradient
            need_backward |= learn
            layer.param_propagate_down[param_id] = learn
        for param_id in range(len(layer.blobs)):
            self._append_param(lp, layer_id, param_id)
        self.layer_need_backward.append(need_backward)
        if need_backward:
            for blob_id in self.top_ids[layer_id]:
                self.blob_need_backward[blob_id] = True

    def _append_bottom(self, lp, layer_id, j, name):
        if name not in self.available:  # only reachable for a blob consumed twice in place
            raise layer_error(lp, f"bottom '{name}' (index {j}) is not available: it was "
                                  "consumed by an earlier layer")
        blob_id = self.blob_index[name]
        self.available.discard(name)
        self.bottom_ids[layer_id].append(blob_id)
        need = self.blob_need_backward[blob_id]
        if len(lp.propagate_down):
            need = bool(lp.propagate_down[j])  # forces (true) or skips (false) this bottom
        self.bottom_need_backward[layer_id].append(need)
        return need

    def _append_top(self, lp, layer_id, j, name):
        if j < len(lp.bottom) and lp.bottom[j] == name:  # in place: the same Blob
            if not self.layers[layer_id].allow_in_place:
                raise self.layers[layer_id].in_place_error(j, name)
            self.top_ids[layer_id].append(self.blob_index[name])
        elif name in self.blob_index:
            raise layer_error(lp, f"top '{name}' is produced by an earlier layer too; only an "
                                  "in-place layer (top == bottom at the same index) may reuse "
                                  "a blob name")
        else:
            self._new_blob(name, layer_id, register=True)
        self.available.add(name)

    def _new_blob(self, name, layer_id, register):
        blob_id = len(self.blobs)
        self.blobs.append(Blob((), dtype=self.dtype))
        self.blob_names.append(name)
        self.blob_need_backward.append(False)
        self.blob_loss_weights.append(0.0)
        if register:
            self.blob_index[name] = blob_id
        self.top_ids[layer_id].append(blob_id)

    # -- parameters -------------------------------------------------------------------------
    def _append_param(self, lp, layer_id, param_id):
        """Caffe's AppendParam: a named ParamSpec seen before shares the owner's blob."""
        spec = lp.param[param_id] if param_id < len(lp.param) else pb.ParamSpec()
        name = spec.name
        net_param_id = len(self.params)
        blob = self.layers[layer_id].blobs[param_id]
        self.params.append(blob)
        self.param_layer_indices.append((layer_id, param_id))
        self.param_display_names.append(name or str(param_id))
        if not name or name not in self.param_names_index:
            self.param_owners.append(-1)
            if name:
                self.param_names_index[name] = net_param_id
            self.learnable_param_ids.append(len(self.learnable_params))
            self.learnable_params.append(blob)
            self.has_params_lr.append(spec.HasField("lr_mult"))
            self.has_params_decay.append(spec.HasField("decay_mult"))
            self.params_lr.append(float(spec.lr_mult))
            self.params_weight_decay.append(float(spec.decay_mult))
            return
        owner_id = self.param_names_index[name]
        self.param_owners.append(owner_id)
        owner_layer, owner_param = self.param_layer_indices[owner_id]
        owner = self.params[owner_id]
        owner_name = self.layers[owner_layer].name
        where = f"cannot share param '{name}' owned by layer '{owner_name}' (param {owner_param})"
        if spec.share_mode == pb.ParamSpec.PERMISSIVE:
            if blob.count() != owner.count():
                raise layer_error(lp, f"{where}: count mismatch, owner shape {list(owner.shape)}"
                                      f", this shape {list(blob.shape)}")
        elif blob.shape != owner.shape:
            raise layer_error(lp, f"{where}: shape mismatch, owner shape {list(owner.shape)}, "
                                  f"this shape {list(blob.shape)} (share_mode: PERMISSIVE "
                                  "compares counts only)")
        learnable_id = self.learnable_param_ids[owner_id]
        self.learnable_param_ids.append(learnable_id)
        for field, has, values in (("lr_mult", self.has_params_lr, self.params_lr),
                                   ("decay_mult", self.has_params_decay,
                                    self.params_weight_decay)):
            if not spec.HasField(field):
                continue
            value = float(getattr(spec, field))
            if has[learnable_id] and values[learnable_id] != value:
                raise layer_error(lp, f"shared param '{name}' has {field} {value:g} but its "
                                      f"owner '{owner_name}' has {values[learnable_id]:g}")
            has[learnable_id] = True
            values[learnable_id] = value

    def _share_weights(self):
        for i, owner in enumerate(self.param_owners):
            if owner >= 0:
                self.params[i].share_data(self.params[owner])
                self.params[i].share_diff(self.params[owner])

    # -- backward needs ---------------------------------------------------------------------
    def _prune_backward(self):
        """Reverse sweep: a layer contributing to no loss, or whose tops all skip
        backpropagation, needs no backward (nor do its bottoms)."""
        under_loss, skip = set(), set()
        for layer_id in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[layer_id]
            contributes, skips_all = False, True
            for k, blob_id in enumerate(self.top_ids[layer_id]):
                name = self.blob_names[blob_id]
                if layer.loss_weights[k] or name in under_loss:
                    contributes = True
                if name not in skip:
                    skips_all = False
                if contributes and not skips_all:
                    break
            need = self.bottom_need_backward[layer_id]
            if self.layer_need_backward[layer_id] and skips_all:
                self.layer_need_backward[layer_id] = False
                need[:] = [False] * len(need)
            if not contributes:
                self.layer_need_backward[layer_id] = False
            for j, blob_id in enumerate(self.bottom_ids[layer_id]):
                name = self.blob_names[blob_id]
                if contributes:
                    under_loss.add(name)
                else:
                    need[j] = False
                if not need[j]:
                    skip.add(name)

    def _force_backward(self):
        """force_backward: every layer, every param and every bottom its layer allows
        (loss labels refuse)."""
        for layer_id, layer in enumerate(self.layers):
            self.layer_need_backward[layer_id] = True
            need = self.bottom_need_backward[layer_id]
            for j, blob_id in enumerate(self.bottom_ids[layer_id]):
                need[j] = need[j] or bool(layer.allow_force_backward(j))
                self.blob_need_backward[blob_id] = self.blob_need_backward[blob_id] or need[j]
            layer.param_propagate_down[:] = [True] * len(layer.blobs)
