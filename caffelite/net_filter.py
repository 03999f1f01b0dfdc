"""NetParameter rewrites before a net is built: keep = include ? any(rule) : not any(exclude)."""
from .errors import layer_error
from .proto import caffelite_pb2 as pb
from .registry import suggest


def state_meets_rule(state, rule):
    """Caffe's StateMeetsRule: phase equal (if set), min_level <= level <= max_level (where
    set), every `stage` present in the state and no `not_stage` present."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def layer_included(layer_param, state):
    """Kept unless an exclude rule matches; with include rules, kept only if one matches."""
    if len(layer_param.include) and len(layer_param.exclude):
        raise layer_error(layer_param, "specify either include rules or exclude rules, not both")
    if len(layer_param.include):
        return any(state_meets_rule(state, rule) for rule in layer_param.include)
    return not any(state_meets_rule(state, rule) for rule in layer_param.exclude)


def filter_net(net_param):
    """Caffe's FilterNet: a copy of net_param holding only the layers its `state` keeps."""
    filtered = pb.NetParameter()
    filtered.CopyFrom(net_param)
    del filtered.layer[:]
    kept = [lp for lp in net_param.layer if layer_included(lp, net_param.state)]
    filtered.layer.extend(kept)
    return filtered


def describe_state(state):
    phase = pb.Phase.Name(state.phase)
    return f"phase {phase}, level {state.level}, stages {list(state.stage)}"


def split_layer_name(layer_name, blob_name, top_index):
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name, blob_name, top_index, split_index):
    return f"{blob_name}_{layer_name}_{top_index}_split_{split_index}"


def _unknown_bottom(layer_param, index, produced, excluded_param):
    """A NetError naming the layer and the bottom, the blobs that exist, and the layer that
    would produce it in another net state (the usual cause: a TRAIN-only data layer)."""
    name = layer_param.bottom[index]
    hint = suggest(name, produced)
    message = (f"bottom '{name}' (index {index}) is produced by no earlier layer"
               f"{hint or '.'} Available blobs: {', '.join(sorted(produced)) or '(none)'}.")
    if excluded_param is not None:
        owners = [lp.name for lp in excluded_param.layer if name in lp.top]
        if owners:
            message += (f" Layer '{owners[0]}' produces it but is excluded in this net state "
                        f"({describe_state(excluded_param.state)}).")
    return layer_error(layer_param, message)


def insert_splits(net_param, unfiltered=None):
    """Caffe's InsertSplits: a top consumed more than once feeds a Split layer
    `<blob>_<layer>_<top>_split` whose tops `..._split_<k>` replace it in each consumer, in
    order. A non-zero loss_weight on the top counts as one more consumer and moves to split
    top 0, so the loss gradient and the consumers' gradients sum in the Split's backward.

    `unfiltered` (the net before filtering) only improves the unknown-bottom message.
    """
    last_top = {}            # blob name -> (layer index, top index) of its latest producer
    source_of_bottom = {}    # (layer, bottom index) -> (layer, top index)
    consumers = {}           # (layer, top index) -> number of uses
    loss_weight_of = {}      # (layer, top index) -> loss weight
    for i, lp in enumerate(net_param.layer):
        for j, name in enumerate(lp.bottom):
            if name not in last_top:
                raise _unknown_bottom(lp, j, last_top, unfiltered)
            source = last_top[name]
            source_of_bottom[i, j] = source
            consumers[source] = consumers.get(source, 0) + 1
        for j, name in enumerate(lp.top):
            last_top[name] = (i, j)
        for j in range(min(len(lp.loss_weight), len(lp.top))):
            source = last_top[lp.top[j]]
            loss_weight_of[source] = lp.loss_weight[j]
            if lp.loss_weight[j]:
                consumers[source] = consumers.get(source, 0) + 1

    out = pb.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    next_split = {}  # (layer, top index) -> next split top to hand out
    for i, source_lp in enumerate(net_param.layer):
        lp = out.layer.add()
        lp.CopyFrom(source_lp)
        for j in range(len(lp.bottom)):
            src = source_of_bottom[i, j]
            if consumers[src] > 1:
                k = next_split.get(src, 0)
                next_split[src] = k + 1
                lp.bottom[j] = split_blob_name(net_param.layer[src[0]].name, lp.bottom[j],
                                               src[1], k)
        for j, blob in enumerate(lp.top):
            count = consumers.get((i, j), 0)
            if count <= 1:
                continue
            weight = loss_weight_of.get((i, j), 0.0)
            split = out.layer.add()
            split.name = split_layer_name(lp.name, blob, j)
            split.type = "Split"
            split.bottom.append(blob)
            for k in range(count):
                split.top.append(split_blob_name(lp.name, blob, j, k))
                if weight:
                    split.loss_weight.append(weight if k == 0 else 0.0)
            if weight:
                # Caffe clears every loss weight of the producer, and the split's top 0
                # (the loss use) is never handed to a consumer.
                del lp.loss_weight[:]
                next_split[i, j] = next_split.get((i, j), 0) + 1
    return out

