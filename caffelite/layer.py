"""Layer base classes: Caffe's setup/reshape/forward/backward contract."""
import numpy as np

from .blob import BlobSizeError
from .errors import CaffeliteError, layer_error
from .proto import caffelite_pb2 as pb
from .random import default_rng

TRAIN = pb.TRAIN
TEST = pb.TEST


class Layer:
    """Base of every layer. Subclasses implement layer_setup, reshape, forward, backward.

    Never override __init__: `setup(bottom, top)` checks blob counts, runs `layer_setup`, then
    `reshape`, then writes the loss weights into the top diffs. Parameter diffs accumulate
    (`+=`) in backward; bottom diffs are overwritten (`=`).

    Class attributes declare the blob counts (-1 = no constraint) as Caffe's
    ExactNumBottomBlobs & co.
    """

    exact_num_bottom_blobs = -1
    min_bottom_blobs = -1
    max_bottom_blobs = -1
    exact_num_top_blobs = -1
    min_top_blobs = -1
    max_top_blobs = -1
    equal_num_bottom_top_blobs = False
    auto_top_blobs = False  # loss layers: the net makes anonymous tops when none are named
    # May a top share its bottom's Blob (top name == bottom name at the same index)? Off unless
    # the type computes the same forward and backward in place as out of place (the Net refuses
    # in-place use of every other type at build time, naming the layer).
    allow_in_place = False

    def __init__(self, layer_param, phase=None, dtype=np.float32, rng=None):
        if isinstance(layer_param, (bytes, str)):
            raise TypeError("Layer takes a LayerParameter message")
        self.layer_param = layer_param
        if phase is None:
            phase = layer_param.phase if layer_param.HasField("phase") else TRAIN
        self.phase = phase
        self.dtype = np.dtype(dtype)
        self.rng = rng if rng is not None else default_rng()
        self.blobs = []  # learnable parameters, in Caffe's order
        self.param_propagate_down = []
        self.loss_weights = []

    @property
    def type(self):
        return self.layer_param.type

    @property
    def name(self):
        return self.layer_param.name

    def error(self, message):
        """A NetError naming this layer; raise it for bad parameters or shapes."""
        return layer_error(self.layer_param, message)

    # -- the contract ---------------------------------------------------------------------
    def setup(self, bottom, top):
        self.check_blob_counts(bottom, top)
        for j, (b, t) in enumerate(zip(bottom, top)):
            if t is b and not self.allow_in_place:
                raise self.in_place_error(j)
        with self.naming_allocation_errors(bottom):
            self.layer_setup(bottom, top)
            if len(self.param_propagate_down) != len(self.blobs):
                self.param_propagate_down = [True] * len(self.blobs)
            self.reshape(bottom, top)
        self.set_loss_weights(top)

    def layer_setup(self, bottom, top):
        """Read `self.layer_param` once; create parameter blobs."""

    def reshape(self, bottom, top):
        raise NotImplementedError

    def forward(self, bottom, top):
        raise NotImplementedError

    def backward(self, top, propagate_down, bottom):
        """Default: no gradient (data, metric and Threshold-like layers)."""

    def allow_force_backward(self, bottom_index):
        return True

    def run_forward(self, bottom, top):
        """Reshape, forward, and return this layer's loss Σ top.data·top.diff over loss tops."""
        with self.naming_allocation_errors(bottom):
            self.reshape(bottom, top)
            self.forward(bottom, top)
        loss = 0.0
        for blob, weight in zip(top, self.loss_weights):
            if weight:
                loss += float((blob.data * blob.diff).sum())
        return loss

    # -- helpers --------------------------------------------------------------------------
    def check_blob_counts(self, bottom, top):
        nb, nt = len(bottom), len(top)
        checks = [
            (self.exact_num_bottom_blobs >= 0 and nb != self.exact_num_bottom_blobs,
             f"takes {self.exact_num_bottom_blobs} bottom blob(s), got {nb}"),
            (self.min_bottom_blobs >= 0 and nb < self.min_bottom_blobs,
             f"takes at least {self.min_bottom_blobs} bottom blob(s), got {nb}"),
            (self.max_bottom_blobs >= 0 and nb > self.max_bottom_blobs,
             f"takes at most {self.max_bottom_blobs} bottom blob(s), got {nb}"),
            (self.exact_num_top_blobs >= 0 and nt != self.exact_num_top_blobs,
             f"produces {self.exact_num_top_blobs} top blob(s), got {nt}"),
            (self.min_top_blobs >= 0 and nt < self.min_top_blobs,
             f"produces at least {self.min_top_blobs} top blob(s), got {nt}"),
            (self.max_top_blobs >= 0 and nt > self.max_top_blobs,
             f"produces at most {self.max_top_blobs} top blob(s), got {nt}"),
            (self.equal_num_bottom_top_blobs and nb != nt,
             f"needs as many tops as bottoms, got {nb} bottoms and {nt} tops"),
        ]
        for failed, message in checks:
            if failed:
                raise self.error(message)

    def naming_allocation_errors(self, bottom):
        """Context: inside, a size that cannot be allocated becomes a NetError naming this
        layer (a small class, not a generator: it wraps every layer's every pass)."""
        return _NamingAllocationErrors(self, bottom)

    def allocation_error(self, exc, bottom):
        """A NetError naming this layer for `exc` when it is a size that cannot be allocated
        (BlobSizeError, MemoryError, NumPy's "array is too big"), else None (re-raise exc)."""
        if isinstance(exc, BlobSizeError):
            return self.error(str(exc)).with_traceback(None)
        too_big = isinstance(exc, ValueError) and not isinstance(exc, CaffeliteError) and (
            "too big" in str(exc) or "Maximum allowed" in str(exc))
        if isinstance(exc, MemoryError) or too_big:
            shapes = ", ".join(str(b.shape) for b in bottom) or "none"
            detail = str(exc) or "allocation failed"
            return self.error(f"out of memory ({detail}) with bottom shapes {shapes}; check "
                              "the sizes in the layer's parameters and its inputs")
        return None

    def in_place_error(self, index, name=None):
        """The NetError for top `index` sharing bottom `index` on a type that cannot."""
        blob = f" '{name}'" if name else ""
        return self.error(f"{self.type} does not allow in-place computation (top{blob} is also "
                          f"bottom {index}); give the top its own name")

    def set_loss_weights(self, top):
        """Caffe's SetLossWeights: weight k goes into top[k].diff (the net reads it as the loss)."""
        weights = list(self.layer_param.loss_weight)
        if not weights:
            weights = [self.default_loss_weight(k) for k in range(len(top))]
        elif len(weights) != len(top):
            raise self.error(f"loss_weight has {len(weights)} values; give one per top "
                             f"({len(top)} tops)")
        self.loss_weights = weights
        for blob, weight in zip(top, weights):
            if weight:
                blob.diff[...] = weight

    def default_loss_weight(self, top_index):
        return 0.0

    def new_param_blob(self, shape):
        """A parameter Blob of this layer's dtype (fill it with a filler)."""
        from .blob import Blob

        return Blob(shape, dtype=self.dtype)


class NeuronLayer(Layer):
    """One bottom, one top of the same shape; may run in place."""

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    allow_in_place = True

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])


class ViewLayer(Layer):
    """top[0] is a reshaped view of bottom[0] (Flatten, Reshape): data and diff are shared, so
    forward and backward have nothing to do. Subclasses give `top_shape(bottom)`. In-place use is
    an error, as in Caffe."""

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error(f"{self.type} does not allow in-place computation; name the top "
                             "differently from the bottom")
        top[0].reshape(self.top_shape(bottom[0]))
        top[0].share_data(bottom[0])
        top[0].share_diff(bottom[0])

    def top_shape(self, bottom):
        raise NotImplementedError

    def forward(self, bottom, top):
        pass  # top shares the bottom's data

    def backward(self, top, propagate_down, bottom):
        pass  # top shares the bottom's diff


class LossLayer(Layer):
    """Bottoms (prediction, label, ...); top[0] is a scalar loss with default weight 1."""

    min_bottom_blobs = 2
    exact_num_top_blobs = -1
    min_top_blobs = 1
    auto_top_blobs = True

    def reshape(self, bottom, top):
        for i, name in ((0, "prediction"), (1, "label")):
            if bottom[i].num_axes == 0:
                raise self.error(f"the {name} (bottom {i}) is a scalar; a loss needs a first "
                                 "(batch) axis on the prediction and the labels")
        if bottom[0].count() == 0:  # Caffe would divide 0 by 0 (a NaN loss)
            raise self.error(f"the prediction {bottom[0].shape} is empty; a loss needs at least "
                             "one value to average over")
        if bottom[0].shape[:1] != bottom[1].shape[:1]:
            raise self.error(f"the prediction's first axis ({bottom[0].shape}) must equal the "
                             f"label's ({bottom[1].shape})")
        top[0].reshape(())

    def default_loss_weight(self, top_index):
        return 1.0 if top_index == 0 else 0.0

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1  # labels are never backpropagated to


class _NamingAllocationErrors:
    __slots__ = ("layer", "bottom")

    def __init__(self, layer, bottom):
        self.layer, self.bottom = layer, bottom

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if not isinstance(exc, Exception):
            return False
        converted = self.layer.allocation_error(exc, self.bottom)
        if converted is None:
            return False
        raise converted from None
